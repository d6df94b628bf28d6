"""Sweep engine speed, measured in one run on one checkpoint, one set of images, one grid.

(a) naive: one torchattacks attack built and run per eps on every image, then evaluated: the
    per-eps accuracy as torchattacks and foolbox define it;
(b) robust-attn's sweep (the clean pass shares FGSM's forward+backward; iterative attacks use the
    still-robust fast path where it is allowed);
(c) the floor for FGSM: a clean forward+backward over every image, then one forward per nonzero eps
    over every image: the least any per-eps FGSM evaluation must do.

Prints the ratios; targets: FGSM (a)/(b) >= 3 with identical per-eps counts and (b)/(c) <= 1.15;
PGD-10 (a)/(b) >= 8 with the sweep's per-eps number (still-robust path) within 0.5 points of the
naive per-eps loop.

    python benchmarks/sweep_speed.py [--checkpoint vgg_c10s] [--n 932] [--threads 2]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torchattacks

from robust_attn.attacks import parse_eps_grid
from robust_attn.checkpoints import load_checkpoint, resolve_checkpoints
from robust_attn.data import load_dataset
from robust_attn.sweep import predict, run_sweep

ROOT = Path(__file__).resolve().parents[1]


def naive(model, make_attack, x, y, grid, batch_size):
    """Per-eps correct counts: a fresh attack per eps over every image (eps 0 included)."""
    counts = []
    for eps in grid.values:
        attack = make_attack(model, eps)
        adv = torch.cat([attack(x[s:s + batch_size], y[s:s + batch_size]) for s in range(0, len(x), batch_size)])
        counts.append(int((predict(model, adv, batch_size) == y).sum()))
    return counts


def floor_fgsm(model, x, y, grid, batch_size):
    """A clean forward+backward over every image, then one forward per nonzero eps over every image."""
    loss_fn = torch.nn.CrossEntropyLoss()
    model.eval()
    signs = []
    for s in range(0, len(x), batch_size):
        xb = x[s:s + batch_size].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(loss_fn(model(xb), y[s:s + batch_size]), xb)
        signs.append(grad.sign())
    sign = torch.cat(signs)
    for eps in grid.values:
        if eps:
            predict(model, (x + eps * sign).clamp(0, 1), batch_size)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="vgg_c10s")
    parser.add_argument("--n", type=int, default=932)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ref = next(r for r in resolve_checkpoints([args.checkpoint], ROOT / "models"))
    ckpt = load_checkpoint(ref.path, ref.sha256, ref.name)
    model = ckpt.model.eval().to(memory_format=torch.channels_last)
    images = load_dataset("cifar10-embedded").test
    x, y = images.float_batch(slice(0, args.n))
    x = x.contiguous(memory_format=torch.channels_last)
    grid = parse_eps_grid("0:8:1")
    bs = args.batch_size
    print(f"checkpoint {ckpt.name} ({ckpt.metadata['architecture']}, width {ckpt.metadata['width']}), "
          f"{args.n} cifar10-embedded images, eps 0:8:1 (/255), {args.threads} threads")

    t_floor, _ = timed(lambda: floor_fgsm(model, x, y, grid, bs))
    t_naive, naive_counts = timed(lambda: naive(model, lambda m, e: torchattacks.FGSM(m, eps=e), x, y, grid, bs))
    t_sweep, frame = timed(lambda: run_sweep([ckpt], ["fgsm"], grid, n=args.n, batch_size=bs))
    same = frame["n_correct"].tolist() == naive_counts
    print(f"FGSM  naive {t_naive:6.2f}s  sweep {t_sweep:6.2f}s  floor {t_floor:6.2f}s  "
          f"naive/sweep {t_naive / t_sweep:5.2f}x (target >= 3)  sweep/floor {t_sweep / t_floor:5.2f}x (target <= 1.15)  "
          f"identical counts: {same}")

    def pgd(m, e):
        return torchattacks.PGD(m, eps=e, alpha=e / 4, steps=10, random_start=True)

    torch.manual_seed(0)
    t_naive, naive_counts = timed(lambda: naive(model, pgd, x, y, grid, bs))
    t_sweep, frame = timed(lambda: run_sweep([ckpt], ["pgd"], grid, n=args.n, batch_size=bs))
    gap = max(abs(s - a) / args.n * 100 for s, a in zip(frame["n_correct"], naive_counts))
    print(f"PGD10 naive {t_naive:6.2f}s  sweep {t_sweep:6.2f}s  naive/sweep {t_naive / t_sweep:5.2f}x (target >= 8)  "
          f"per-eps accuracy, largest |sweep - naive| {gap:.2f} points (target <= 0.5; sweep method: "
          f"{frame['accuracy_method'].iloc[-1]})")
    print("per-eps accuracy, naive vs sweep (PGD-10):")
    for label, a, s in zip(grid.labels, naive_counts, frame["n_correct"]):
        print(f"  {label:>6}: {100 * a / args.n:5.1f}%  {100 * s / args.n:5.1f}%")


if __name__ == "__main__":
    main()
