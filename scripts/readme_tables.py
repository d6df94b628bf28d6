"""Regenerate the README's measured tables: run the sweeps they come from, time them, and write the
Markdown between the README's ``<!-- measured:start -->`` and ``<!-- measured:end -->`` markers
(``--write``) or print it.

    python scripts/readme_tables.py [--write] [--threads 2]

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

from robust_attn.results import accuracy_table
from robust_attn.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- measured:start -->", "<!-- measured:end -->"
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


def timed_sweep(*args, **kwargs):
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        frame = run_sweep(*args, out=out, per_example=True, models_dir=ROOT / "models", **kwargs)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite README.md between the markers")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    default, t_default, _ = timed_sweep(None, ["fgsm"], "0:8:1")
    linf, t_linf, examples = timed_sweep(CIFAR, ["fgsm", "pgd", "noise"], "0:8:1")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads"
    text = f"""{START}
`robust-attn sweep --attack fgsm --eps 0:8:1` (the first command above: {t_default:.0f} s of sweep on this
machine), every checkpoint on the embedded images of the dataset it was trained on (932 CIFAR-10 or 1,000
Fashion-MNIST test images). **Accuracy (%) under FGSM at each eps** (/255), FGSM run at that eps alone:

{markdown(default, "fgsm", "accuracy", True)}

Beside it, the **worst case (%)**: robust clean and under FGSM at every eps' <= eps of the grid:

{markdown(default, "fgsm", "worst_case_accuracy", False)}

Under PGD-10 (`robust-attn sweep --models 'models/*_c10s.pt' --attack fgsm,pgd,noise --eps 0:8:1 --out results/linf`,
{t_linf:.0f} s), accuracy (%) at each eps (computed on the still-robust points, so it is also the worst case):

{markdown(linf, "pgd", "accuracy", False)}

Per-eps PGD at 1/255, each variant minus its own backbone's checkpoint on the same 932 images, with the
exact McNemar p-value: {"; ".join(mcnemar_lines(examples, "pgd", "1/255"))}.

Under random sign noise of the same Linf size (`noise`, the baseline every attack must beat):

{markdown(linf, "noise", "accuracy", False)}

Measured by `python scripts/readme_tables.py --write` ({machine}).
{END}"""
    if not args.write:
        print(text)
        return
    readme = ROOT / "README.md"
    body = readme.read_text()
    if START not in body or END not in body:
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    before, rest = body.split(START, 1)
    _, after = rest.split(END, 1)
    readme.write_text(before + text + after)
    print(f"rewrote the measured tables in {readme}")


if __name__ == "__main__":
    main()
