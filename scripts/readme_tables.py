"""Regenerate the README's measured tables: run the sweeps they come from, time them, and write the
Markdown between the README's ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers of each block
(``--write``) or print it: ``measured`` (the default sweep), ``measured-linf`` (PGD and noise on the CIFAR
checkpoints), ``measured-robust`` and ``measured-robust-fmnist`` (the adversarially trained pairs under APGD and
Square), ``measured-corruptions`` (the default checkpoints under the 15 common corruptions).

    python scripts/readme_tables.py [--write] [--threads 2] [--blocks measured,measured-robust]

Rerun it whenever a checkpoint, an attack or the engine changes a number; the machine it ran on is
recorded under the tables.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from readme_blocks import marked, write_block
from robust_attn.results import accuracy_table
from robust_attn.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
CIFAR = [str(ROOT / "models" / "*_c10s.pt")]  # every small CIFAR checkpoint (not the seed replicas, *_c10s_seed<k>)


def markdown(frame, attack: str, value: str, with_dataset: bool) -> str:
    wide = accuracy_table(frame, attack, value)
    datasets = frame.groupby("model")["dataset"].first()
    head = "| model" + (" (evaluated on)" if with_dataset else "") + " | " + " | ".join(wide.columns) + " |"
    rule = "| --- |" + " ---: |" * len(wide.columns)
    lines = [head, rule]
    for model, values in wide.iterrows():
        name = f"`{model}`" + (f" ({datasets[model]})" if with_dataset else "")
        lines.append(f"| {name} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
    return "\n".join(lines)


DEVICE = {"name": "cpu"}  # --device: where every sweep of this run goes


def timed_sweep(*args, **kwargs):
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        frame = run_sweep(*args, out=out, per_example=True, models_dir=ROOT / "models", device=DEVICE["name"], **kwargs)
        seconds = time.perf_counter() - start
        examples = pd.read_csv(Path(out) / "per_example.csv", dtype={"eps_label": str})
        return frame, seconds, examples


def mcnemar_lines(examples: pd.DataFrame, attack: str, eps_label: str) -> list[str]:
    """Per variant model (``FAMILY-..._c10s``): per-eps accuracy difference to its backbone's checkpoint
    (``FAMILY_c10s``) and the exact McNemar p on the same images (a binomial test on the discordant pairs)."""
    from scipy.stats import binomtest

    rows = examples[(examples["attack"] == attack) & (examples["eps_label"] == eps_label)]
    robust = {m: g.set_index("index")["robust"].astype(bool) for m, g in rows.groupby("model")}
    lines = []
    for model in sorted(robust, key=lambda m: (m.split("-")[0], m)):
        family, _, suffix = model.partition("_")
        baseline = f"{family.split('-')[0]}_{suffix}"
        if baseline == model or baseline not in robust:
            continue
        att, base = robust[model], robust[baseline]
        b, c = int((base & ~att).sum()), int((~base & att).sum())
        p = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
        diff = 100 * (att.mean() - base.mean())
        lines.append(f"`{model}` {diff:+.1f} points vs `{baseline}` (p = {p:.2g})")
    return lines


ROBUST = {  # README block -> (label, the adversarially trained pair in models/, its training eps); one block per pair,
    # so retraining one pair re-measures only its own block (scripts/train_robust_checkpoints.sh)
    "measured-robust": ("CIFAR-10 subset, fast FGSM at 8/255", ["vgg_c10s_ffgsm", "vgg-att3-concat-pc_c10s_ffgsm"], "8/255"),
    "measured-robust-fmnist": ("Fashion-MNIST, PGD at 0.1", ["vgg_fmnist_pgd", "vgg-att3-concat-pc_fmnist_pgd"], "0.1"),
}
SQUARE_N = 100  # default --square-n: Square's 5,000 queries on every image take hours on a CPU


def worst_over(examples: pd.DataFrame, attacks: list[str]) -> pd.Series:
    """Per model, the share of points robust to every attack of ``attacks`` (AutoAttack's per-point worst case)."""
    rows = examples[examples["attack"].isin(attacks) & (examples["eps"] > 0)]
    robust = rows.groupby(["model", "index"])["robust"].all()
    return robust.groupby("model").mean()


def robust_block(block: str, threads: int, square_n: int = SQUARE_N) -> str:
    """One adversarially trained pair (``ROBUST[block]``) under PGD, APGD-CE and the Square check."""
    label, models, eps = ROBUST[block]
    where = f"the first {square_n}" if square_n else "every image"
    lines = [f"| model | clean | PGD-10 | APGD-CE | {where}: APGD-CE | APGD-DLR | Square (5,000 queries) | "
             "worst of the three |", "| --- |" + " ---: |" * 7]
    every, t1, _ = timed_sweep(models, ["pgd", "apgd-ce"], f"0,{eps}", eps_unit="raw")
    first, t2, ex_first = timed_sweep(models, ["apgd-ce", "apgd-dlr", "square"], f"0,{eps}", eps_unit="raw",
                                      n=square_n or None)
    seconds = t1 + t2
    at = every[every["eps"] > 0].set_index(["model", "attack"])["accuracy"]
    few = first[first["eps"] > 0].set_index(["model", "attack"])["accuracy"]
    clean = every.groupby("model")["clean_accuracy"].first()
    worst3 = worst_over(ex_first, ["apgd-ce", "apgd-dlr", "square"])
    lines.append(f"| *{label}* |" + " |" * 7)
    for m in models:
        cells = [clean[m], at[(m, "pgd")], at[(m, "apgd-ce")], few[(m, "apgd-ce")], few[(m, "apgd-dlr")],
                 few[(m, "square")], worst3[m]]
        lines.append(f"| `{m}` | " + " | ".join(f"{100 * v:.1f}" for v in cells) + " |")
    table = "\n".join(lines)
    grid = f"--eps 0,{eps} --eps-unit raw" if "/" not in eps else f"--eps 0,{eps.split('/')[0]}"
    n_images = "932 CIFAR-10" if "/" in eps else "1,000 Fashion-MNIST"
    return f"""Accuracy (%) of the {label} pair at its training eps, each attack at its defaults:
PGD-10 (random start) and APGD-CE (100 steps) on every embedded test image ({n_images});
on {where}, APGD-CE, APGD-DLR (AutoAttack's two gradient attacks) and Square (5,000 queries, no gradients),
and the worst case over the three per image ({seconds:.0f} s of sweeps, {threads} thread(s)):

{table}

The sweeps: `robust-attn sweep --models {",".join(models)} --attack pgd,apgd-ce {grid}`
and, with `--attack apgd-ce,apgd-dlr,square{f" --n {square_n}" if square_n else ""} --per-example`, the Square check."""


def default_block(threads: int) -> str:
    default, t_default, _ = timed_sweep(None, ["fgsm"], "0:8:1")
    return f"""`robust-attn sweep --attack fgsm --eps 0:8:1` (the first command above: {t_default:.0f} s of sweep on this
machine), every checkpoint on the embedded images of the dataset it was trained on (932 CIFAR-10 or 1,000
Fashion-MNIST test images). **Accuracy (%) under FGSM at each eps** (/255), FGSM run at that eps alone:

{markdown(default, "fgsm", "accuracy", True)}

Beside it, the **worst case (%)**: robust clean and under FGSM at every eps' <= eps of the grid:

{markdown(default, "fgsm", "worst_case_accuracy", False)}"""


def linf_block(threads: int) -> str:
    linf, t_linf, examples = timed_sweep(CIFAR, ["fgsm", "pgd", "noise"], "0:8:1")
    return f"""Under PGD-10 (`robust-attn sweep --models 'models/*_c10s.pt' --attack fgsm,pgd,noise --eps 0:8:1 --out results/linf`,
{t_linf:.0f} s), accuracy (%) at each eps (computed on the still-robust points, so it is also the worst case):

{markdown(linf, "pgd", "accuracy", False)}

Per-eps PGD at 1/255, each variant minus its own backbone's checkpoint on the same 932 images, with the
exact McNemar p-value: {"; ".join(mcnemar_lines(examples, "pgd", "1/255"))}.

Under random sign noise of the same Linf size (`noise`, the baseline every attack must beat):

{markdown(linf, "noise", "accuracy", False)}"""


def corruptions_block(threads: int) -> str:
    """The default checkpoints under the 15 common corruptions at severities 1-5 (the default sweep's models and
    images): mean corruption accuracy, per group, and mCE against each attention model's own baseline."""
    from robust_attn.report.corruption import summary, with_groups
    from robust_attn.run import attack_catalog

    frame, seconds, _ = timed_sweep(None, ["corruptions"], None)
    table = summary(with_groups(frame, attack_catalog()))
    lines = ["| model (evaluated on) | clean | mean corruption accuracy | noise | blur | weather | digital "
             "| mCE (%) vs |", "| --- |" + " ---: |" * 6 + " --- |"]
    for r in table.sort_values("model").itertuples():
        mce = f"{100 * r.mce:.1f} vs `{r.mce_baseline}`" if r.mce_baseline and r.mce_baseline != r.model else "-"
        cells = [r.clean_accuracy, r.mean_corruption_accuracy, r.noise_accuracy, r.blur_accuracy, r.weather_accuracy,
                 r.digital_accuracy]
        lines.append(f"| `{r.model}` ({r.dataset}) | " + " | ".join(f"{100 * v:.1f}" for v in cells) + f" | {mce} |")
    return f"""`robust-attn sweep --attack corruptions` ({seconds:.0f} s of sweep): every checkpoint of the default sweep on its
embedded test images, under the 15 common corruptions at severities 1-5 (and 0, the clean images). Accuracy (%):
clean, the **mean corruption accuracy** over the 75 (corruption, severity) cells (RobustBench's corruptions
number), the mean of each group, and the mCE of each attention model relative to its own baseline model (100%:
as corruption-robust as the baseline; lower is better):

{chr(10).join(lines)}"""


# README blocks, each between <!-- NAME:start --> and <!-- NAME:end -->, each regenerated on its own
BLOCKS = {"measured": default_block, "measured-linf": linf_block, "measured-corruptions": corruptions_block} | \
    {name: robust_block for name in ROBUST}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite README.md between the markers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", default=",".join(BLOCKS), help=f"which blocks to regenerate (default: all of {', '.join(BLOCKS)})")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (the sweeps' device)")
    parser.add_argument("--square-n", type=int, default=SQUARE_N, help="measured-robust: Square on the first N images (0: every image)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    DEVICE["name"] = args.device
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads"
    for name in args.blocks.split(","):
        if name not in BLOCKS:
            raise SystemExit(f"--blocks: no block {name!r} (blocks: {', '.join(BLOCKS)})")
        block = robust_block(name, args.threads, args.square_n) if name in ROBUST else BLOCKS[name](args.threads)
        device = f", {torch.cuda.get_device_name()}" if args.device != "cpu" and torch.cuda.is_available() else ""
        extra = f" --square-n {args.square_n}" if name in ROBUST and args.square_n != SQUARE_N else ""
        extra += f" --device {args.device}" if args.device != "cpu" else ""
        text = f"{block}\n\nMeasured by `python scripts/readme_tables.py --write --blocks {name}{extra}` ({machine}{device})."
        if not args.write:
            print(marked(name, text))
            continue
        print(f"rewrote {name} in {write_block(name, text)}")


if __name__ == "__main__":
    main()
