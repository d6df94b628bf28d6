"""Transfer speed, measured in one run on shipped checkpoints: one source, k targets, one eps grid.

(a) per pair: the attack run once for every (source, target) pair, k transfers of one target each
    (``transfer(source, [target])`` k times: k attacks, k forwards);
(b) robust-attn's transfer: the attack run once per source and eps, each batch of adversarial
    examples put through all k targets (one attack, k forwards).

The attack is PGD-10 run for all its steps (``early_stop=false``), as transfer attacks are run: the
default early stop keeps the first iterate that fools the source, which on a weak source is one or
two steps, leaving forwards to dominate and weaker examples to transfer. Eps 0 is left out of the
grid (no crafting there: PGD stops at once).

Prints (a)/(b) in CPU time of this process (what the work costs, whatever else the machine runs)
and in wall time; target >= 0.8 x k (k = 4: >= 3.2) with identical numbers in both. Each is timed
--repeats times, alternating, and the fastest kept.

    python benchmarks/transfer_speed.py [--source vgg_c10s] [--targets A,B,C,D] [--attack pgd] [--n 64] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch

from robust_attn.attacks import parse_attack_args
from robust_attn.checkpoints import load_checkpoint, resolve_checkpoints
from robust_attn.transfer import transfer

ROOT = Path(__file__).resolve().parents[1]


def timed(fn):
    """(wall seconds, CPU seconds of this process, fn())."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="vgg_c10s")
    parser.add_argument("--targets", default="vgg-att2-concat-pc_c10s,vgg-att3-concat-dp_c10s,vgg-att3-concat-pc_c10s,"
                                              "vgg-att3-indep-pc_c10s", help="k comma-separated target checkpoints")
    parser.add_argument("--attack", default="pgd")
    parser.add_argument("--eps", default="2:8:2")
    parser.add_argument("--attack-arg", action="append", default=["early_stop=false"], help="KEY=VALUE")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    source, *targets = [load_checkpoint(r.path, r.sha256, r.name)
                        for r in resolve_checkpoints([args.source, *args.targets.split(",")], ROOT / "models")]
    common = {"n": args.n, "batch_size": args.batch_size, "attack_args": parse_attack_args(args.attack_arg)}
    k = len(targets)
    print(f"source {source.name}, {k} targets ({', '.join(t.name for t in targets)}), {args.attack} "
          f"{' '.join(args.attack_arg)} eps {args.eps} "
          f"(/255), {args.n} cifar10-embedded images, batch {args.batch_size}, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    transfer([source], [targets[0]], args.attack, "0", n=8, attack_args=common["attack_args"])  # warm-up: imports, first-call allocations

    pairs, once = [float("inf")] * 2, [float("inf")] * 2  # (wall, cpu)
    for _ in range(args.repeats):
        *t, frames = timed(lambda: [transfer([source], [t], args.attack, args.eps, **common) for t in targets])
        pairs = [min(a, b) for a, b in zip(pairs, t)]
        *t, frame = timed(lambda: transfer([source], targets, args.attack, args.eps, **common))
        once = [min(a, b) for a, b in zip(once, t)]
    keys = ["target", "eps_label"]
    per_pair = pd.concat(frames).sort_values(keys, kind="stable")["n_correct"].tolist()
    same = per_pair == frame.sort_values(keys, kind="stable")["n_correct"].tolist()
    print(f"best of {args.repeats}: per pair {pairs[1]:7.2f}s CPU ({pairs[0]:.2f}s wall)  transfer {once[1]:7.2f}s CPU "
          f"({once[0]:.2f}s wall)")
    print(f"per-pair/transfer: {pairs[1] / once[1]:5.2f}x CPU time, {pairs[0] / once[0]:5.2f}x wall time "
          f"(target >= {0.8 * k:.1f} = 0.8 x k; at most k)  identical numbers: {same}  "
          f"load average after {os.getloadavg()[0]:.2f}")
    print("accuracy (%) of each target on the source's examples:")
    wide = frame.pivot_table(index="target", columns="eps_label", values="accuracy", sort=False) * 100
    print(wide.round(1).to_string())


if __name__ == "__main__":
    main()
