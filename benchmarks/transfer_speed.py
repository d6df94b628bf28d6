"""Transfer speed, measured in one run on shipped checkpoints: one source, k targets, one eps grid.

(a) per pair: the attack run once for every (source, target) pair, k transfers of one target each
    (``run_transfer(source, [target])`` k times: k attacks, k forwards);
(b) robust-attn's transfer: the attack run once per source and eps, each batch of adversarial
    examples put through all k targets (one attack, k forwards).

The attack is PGD-10 run for all its steps (``early_stop=false``), as transfer attacks are run: the
default early stop keeps the first iterate that fools the source, which on a weak source is one or
two steps, leaving forwards to dominate and weaker examples to transfer. Eps 0 is left out of the
grid (no crafting there: PGD stops at once).

Prints (a)/(b) in CPU time of this process (what the work costs, whatever else the machine runs)
and in wall time; target >= 0.8 x k (k = 4: >= 3.2) with identical numbers in both. Each call is
timed --repeats times, alternating (a) and (b): (a) is the sum over targets of each target's fastest
call, (b) the fastest call. On the shared 2-core machine the same call's time varies by up to 1.6x
from one call to the next (CPU time too), so single timings can put the ratio anywhere from 2.9 to
5.4; the fastest of several is the estimate of what the work costs, and the median ratio is printed
beside it.

    python benchmarks/transfer_speed.py [--source vgg_c10s] [--targets A,B,C,D] [--attack pgd] [--n 64] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from robust_attn.attacks import parse_attack_args
from robust_attn.checkpoints import load_checkpoint, resolve_checkpoints
from robust_attn.transfer import run_transfer

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
    parser.add_argument("--attack-arg", action="append", default=None,
                        help="KEY=VALUE, repeatable (default: early_stop=false; given ones replace it)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    args.attack_arg = args.attack_arg if args.attack_arg is not None else ["early_stop=false"]
    torch.set_num_threads(args.threads)
    source, *targets = [load_checkpoint(r.path, r.sha256, r.name)
                        for r in resolve_checkpoints([args.source, *args.targets.split(",")], ROOT / "models")]
    common = {"n": args.n, "batch_size": args.batch_size, "attack_args": parse_attack_args(args.attack_arg)}
    k = len(targets)
    print(f"source {source.name}, {k} targets ({', '.join(t.name for t in targets)}), {args.attack} "
          f"{' '.join(args.attack_arg)} eps {args.eps} "
          f"(/255), {args.n} cifar10-embedded images, batch {args.batch_size}, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.2f}")
    run_transfer([source], [targets[0]], args.attack, "0", n=8, attack_args=common["attack_args"])  # warm-up: imports, first-call allocations

    pair_times = [[] for _ in targets]  # per target: (wall, cpu) of each repeat
    once_times = []
    for _ in range(args.repeats):
        frames = []
        for i, target in enumerate(targets):
            *t, f = timed(lambda: run_transfer([source], [target], args.attack, args.eps, **common))
            pair_times[i].append(t)
            frames.append(f)
        *t, frame = timed(lambda: run_transfer([source], targets, args.attack, args.eps, **common))
        once_times.append(t)
    keys = ["target", "eps_label"]
    per_pair = pd.concat(frames).sort_values(keys, kind="stable")["n_correct"].tolist()
    same = per_pair == frame.sort_values(keys, kind="stable")["n_correct"].tolist()
    best = [[sum(min(r[j] for r in times) for times in pair_times), min(r[j] for r in once_times)] for j in (0, 1)]
    median = [[sum(statistics.median(r[j] for r in times) for times in pair_times),
               statistics.median(r[j] for r in once_times)] for j in (0, 1)]
    (pairs_wall, once_wall), (pairs_cpu, once_cpu) = best
    print(f"fastest of {args.repeats}: per pair {pairs_cpu:7.2f}s CPU ({pairs_wall:.2f}s wall)  transfer {once_cpu:7.2f}s "
          f"CPU ({once_wall:.2f}s wall)")
    print(f"per-pair/transfer: {pairs_cpu / once_cpu:5.2f}x CPU time, {pairs_wall / once_wall:5.2f}x wall time "
          f"(target >= {0.8 * k:.1f} = 0.8 x k; at most k)  identical numbers: {same}  "
          f"load average after {os.getloadavg()[0]:.2f}")
    print(f"medians of {args.repeats}: {median[1][0] / median[1][1]:5.2f}x CPU time, "
          f"{median[0][0] / median[0][1]:5.2f}x wall time")
    print("accuracy (%) of each target on the source's examples:")
    wide = frame.pivot_table(index="target", columns="eps_label", values="accuracy", sort=False) * 100
    print(wide.round(1).to_string())


if __name__ == "__main__":
    main()
