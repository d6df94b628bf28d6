"""Regenerate the README's transfer between CNNs and transformers (block ``transfer-transformers``): the shipped
run, every one of ``vgg_c10s``, ``resnet_c10s``, ``cct_c10s`` and ``vit_c10s`` as source and as target, PGD-10
without early stop (the usual transfer setting) at 4/255 and 8/255 on the 932 embedded CIFAR-10 test images;
writes the transfer folder and its report (``--out``), and the README block between ``<!-- transfer-transformers:start
-->`` and ``<!-- transfer-transformers:end -->`` (``--write``) or prints it.

    python scripts/readme_transfer.py [--write] [--threads 2] [--out results/transfer-transformers]

The run is the same as
``robust-attn transfer --sources vgg_c10s,resnet_c10s,cct_c10s,vit_c10s --targets vgg_c10s,resnet_c10s,cct_c10s,vit_c10s
--attack pgd --attack-arg early_stop=false --eps 4,8 --out results/transfer-transformers``.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch

from readme_blocks import marked, write_block
from robust_attn.report.transfer import build_transfer_report
from robust_attn.transfer import run_transfer

ROOT = Path(__file__).resolve().parents[1]
CNNS = ["vgg_c10s", "resnet_c10s"]
TRANSFORMERS = ["cct_c10s", "vit_c10s"]
MODELS = CNNS + TRANSFORMERS
EPS = "4,8"


def success(cells: pd.DataFrame, source: str, target: str, eps: str) -> float:
    """The share of the target's clean-correct images that the source's examples fool: 1 - transferred accuracy
    / the target's clean accuracy, so targets of different clean accuracy compare."""
    row = cells[(cells["source"] == source) & (cells["target"] == target) & (cells["eps_label"] == eps)].iloc[0]
    return 1 - row["accuracy"] / row["clean_accuracy"]


def block(cells: pd.DataFrame, seconds: float) -> str:
    top = cells["eps_label"].unique()[-1]
    head = "| source \\ target | " + " | ".join(f"`{t}`" for t in MODELS) + " |"
    lines = [head, "| --- |" + " ---: |" * len(MODELS)]
    for s in MODELS:
        row = cells[(cells["source"] == s) & (cells["eps_label"] == top)].set_index("target")["accuracy"]
        lines.append(f"| `{s}` | " + " | ".join(f"{100 * row[t]:.1f}" for t in MODELS) + " |")
    pairs = []
    for c in CNNS:
        for t in TRANSFORMERS:
            for eps in cells["eps_label"].unique():
                c_to_t, t_to_c = success(cells, c, t, eps), success(cells, t, c, eps)
                pairs.append(f"| `{c}` / `{t}` | {eps} | {100 * c_to_t:.1f} | {100 * t_to_c:.1f} | "
                             f"{100 * (c_to_t - t_to_c):+.1f} |")
    cnns = [(a, b) for a in CNNS for b in CNNS if a != b]
    transformers = [(a, b) for a in TRANSFORMERS for b in TRANSFORMERS if a != b]
    across = [(a, b) for a in MODELS for b in MODELS if (a in CNNS) != (b in CNNS)]
    mean = lambda ab: sum(success(cells, a, b, top) for a, b in ab) / len(ab)  # noqa: E731
    return f"""PGD-10 without early stop, crafted on the source, evaluated on the target, on the 932 embedded CIFAR-10 test
images ({seconds:.0f} s). Accuracy (%) of each target at {top} (the diagonal is white-box):

{chr(10).join(lines)}

Transfer success: the share of the target's clean-correct images the source's examples fool (1 - transferred /
clean accuracy), CNN -> transformer and back:

| pair (CNN / transformer) | eps | CNN -> transformer (%) | transformer -> CNN (%) | asymmetry (points) |
| --- | --- | ---: | ---: | ---: |
{chr(10).join(pairs)}

Mean transfer success at {top} (both directions): {100 * mean(cnns):.1f}% between the two CNNs, {100 * mean(transformers):.1f}%
between the two transformers, {100 * mean(across):.1f}% across the families."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite README.md between the markers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "results" / "transfer-transformers"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    cells = run_transfer(MODELS, MODELS, "pgd", EPS, attack_args={"early_stop": False}, models_dir=ROOT / "models",
                         out=args.out)
    seconds = time.perf_counter() - start
    build_transfer_report(args.out, Path(args.out) / "report")
    name = "transfer-transformers"
    text = (f"{block(cells, seconds)}\n\nMeasured by `python scripts/readme_transfer.py --write` "
            f"({platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads).")
    if not args.write:
        print(marked(name, text))
        return
    print(f"wrote {write_block(name, text)}")


if __name__ == "__main__":
    main()
