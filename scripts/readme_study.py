"""Regenerate the README's study tables: run a shipped study from scratch (a fresh output folder, so
its wall time is the whole run), and write its verdicts between the README's ``<!-- BLOCK:start -->``
and ``<!-- BLOCK:end -->`` markers (``--write``) or print them. Blocks: ``study``
(studies/attention-vs-baseline.toml), ``study-robust`` (studies/attention-under-adversarial-training.toml) and
``study-cct`` (studies/cct-sequence-pooling.toml) and ``study-corruptions``
(studies/attention-under-corruptions.toml).

    python scripts/readme_study.py [--write] [--threads 2] [--block study-robust]

The table shows whatever the study says; the machine and the wall time are recorded under it.
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

from readme_blocks import write_block
from robust_attn.attacks import is_corruption
from robust_attn.study import run_study

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {"study": ROOT / "studies" / "attention-vs-baseline.toml",
           "study-robust": ROOT / "studies" / "attention-under-adversarial-training.toml",
           "study-cct": ROOT / "studies" / "cct-sequence-pooling.toml",
           "study-corruptions": ROOT / "studies" / "attention-under-corruptions.toml"}


def _pct(v: float) -> str:
    return "-" if pd.isna(v) else f"{100 * v:.1f}"


def _interval(low: float, high: float, signed: bool = False) -> str:
    if pd.isna(low):
        return "-"
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"[{fmt.format(100 * low)}, {fmt.format(100 * high)}]"


def verdict_table(result, metrics: tuple[str, ...] = ("accuracy", "worst_case_accuracy")) -> str:
    """One row per attack x metric (of ``metrics``): each arm's mean normalised AUC (95% interval across seeds),
    the difference with Welch's interval, Holm's p, the verdict; then clean accuracy the same way."""
    table = result.study.set_index(["architecture", "attack", "metric", "summary", "eps_label"])
    metric_names = {"accuracy": "per-eps accuracy", "worst_case_accuracy": "worst case"}
    pairs = result.effects.drop_duplicates(["architecture", "baseline"])
    assert len(pairs) == 1, "one comparison per shipped study"
    arch, base = pairs["architecture"].iloc[0], pairs["baseline"].iloc[0]
    head = (f"| attack | curve | baseline `{base}` AUC (%) | attention `{arch}` AUC (%) | difference (points) "
            "| Welch p (Holm) | verdict |")
    lines = [head, "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    effects = result.effects[(result.effects["summary"] == "auc") & result.effects["metric"].isin(metrics)]
    for r in effects.itertuples():
        base = table.loc[(r.baseline, r.attack, r.metric, "auc", "auc")]
        mine = table.loc[(r.architecture, r.attack, r.metric, "auc", "auc")]
        lines.append(
            f"| {r.attack} | {metric_names[r.metric]} | {_pct(base['mean'])} {_interval(base.ci_low, base.ci_high)} "
            f"| {_pct(mine['mean'])} {_interval(mine.ci_low, mine.ci_high)} "
            f"| {100 * r.difference:+.1f} {_interval(r.ci_low, r.ci_high, signed=True)} "
            f"| {r.p_value:.2g} ({r.p_holm:.2g}) | {r.verdict} |")
    clean = result.members.groupby("architecture")["clean_accuracy"]
    clean_line = "; ".join(f"`{a}` " + " / ".join(_pct(v) for v in g) for a, g in clean)
    return "\n".join(lines) + f"\n\nClean accuracy per seed (0-4, %): {clean_line}."


def main() -> None:
    from robust_attn.study import load_study

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite README.md between the markers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block", default="study", choices=sorted(STUDIES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    file = STUDIES[args.block]
    spec = load_study(file)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = run_study(spec, out, report=True)
        seconds = time.perf_counter() - start
        assert not result.members["trained"].any(), "the shipped study trained a model"
        natural = all(is_corruption(a.name) for a in spec.evaluation.attacks)
        # corruptions: the per-severity curves (their worst case, robust at every severity <= s, is in effects.csv)
        table = verdict_table(result, ("accuracy",) if natural else ("accuracy", "worst_case_accuracy"))
    load = os.getloadavg()[0]
    grid = spec.evaluation.grid
    attacks = " and ".join(f"{a.name} ({a.params['steps']} steps)" if "steps" in a.params else a.name
                           for a in spec.evaluation.attacks)
    n = result.members.shape[0]
    images = f"the first {spec.evaluation.n}" if spec.evaluation.n else "the 932"
    if natural:
        attacks = f"the {len(spec.evaluation.attacks)} common corruptions"
    axis = "severity" if natural else "eps"
    text = (f"`robust-attn study {file.relative_to(ROOT)}` ({seconds:.0f} s from an empty output folder, "
            f"nothing trained; {n} checkpoints x {attacks} x {len(grid)} {'severities' if natural else 'eps'} on "
            f"{images} embedded CIFAR-10 test images). AUC is the normalised area under the accuracy-vs-{axis} curve "
            f"over 0..{grid.labels[-1]} ({axis} 0, the clean images, included); intervals are 95% across the {len(spec.seeds)} training seeds (t for each arm, Welch for "
            f"the difference):\n\n{table}\n\n"
            f"Measured by `python scripts/readme_study.py --write --block {args.block}` ({platform.machine()}, "
            f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, load average {load:.1f} at the end).")
    if not args.write:
        print(text)
        return
    print(f"wrote {write_block(args.block, text)}")


if __name__ == "__main__":
    main()
