"""Training throughput (images/s) at width 0.125, data pipeline included, on the CPU or a GPU.

For each model, in one run: (1) the model step alone on a fixed batch already on the device, (2) the
full training step as `robust-attn train` runs it (the uint8 training set on the device, each epoch's
shuffle and crop/flip draws from the seed's CPU generator, gathered and augmented on the device, to
float, channels_last, the step, the running loss and accuracy), (3) that full step for each training
threat model of robust_attn.threat_models, with train()'s own crafters and losses. Prints images/s,
the pipeline's share, the attention model's step cost relative to the baseline's and each threat
model's step cost relative to standard training.

Targets: pipeline < 10% on the CPU, on a GPU the pipeline's rate >= 85% of the model-only rate at
batch 256; attention <= 1.2x baseline; fast FGSM <= 2.3x standard, PGD-K and TRADES-K <= 1.1 x (K+1).

    python benchmarks/train_speed.py [--steps 15] [--threads 2] [--width 0.125] [--batch-size 128]
        [--device auto|cpu|cuda] [--threat-steps 5]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from robust_attn.data import ImageSet, load_dataset
from robust_attn.devices import resolve_device
from robust_attn.distributed import Ranks
from robust_attn.models import create_model
from robust_attn.threat_models import THREAT_MODELS, Threat, resolve_threat
from robust_attn.threat_training import make_crafter
from robust_attn.train import RunningNumbers, load_batch, plan_epoch, training_step

GPU_PIPELINE_TARGET = 0.85  # the pipeline's rate / the model-only rate, at batch 256
ONE_STEP_TARGET = 2.3  # fast FGSM: one attack step, its random start and clamps


def cost_target(threat: Threat) -> float | None:
    """The target cost of a training step under ``threat`` relative to standard training: a K-step
    attack adds K forward-backward passes to the step's one, so 1.1 x (K + 1); a fixed one-step attack
    (fast FGSM) 2.3x; none for standard training."""
    if not threat.adversarial:
        return None
    return ONE_STEP_TARGET if threat.cfg.fixed_steps else 1.1 * (threat.steps + 1)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[], None], steps: int, batch: int, device: torch.device) -> float:
    """Images per second of ``steps`` calls of ``fn`` after 3 warm-up calls, the device drained at both ends."""
    for _ in range(3):
        fn()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync(device)
    return steps * batch / (time.perf_counter() - start)


def pipeline(name: str, width: float, batch: int, images: ImageSet, threat: Threat,
             device: torch.device) -> tuple[Callable[[], None], Callable[[], None]]:
    """(model step on a fixed batch, full training step as train() runs it) for a fresh ``name``."""
    torch.manual_seed(0)
    model = create_model(name, width=width).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    craft = make_crafter(threat, model) if threat.adversarial else None
    generator = torch.Generator().manual_seed(0)
    n, ranks = len(images), Ranks()
    fixed = load_batch(images, plan_epoch(n, batch, False, generator, device), 0, batch, ranks)
    state = {"plan": plan_epoch(n, batch, True, generator, device), "start": 0, "running": RunningNumbers(device)}

    def model_only() -> None:
        training_step(model, optimizer, *fixed, threat, craft)

    def full() -> None:
        if state["start"] + batch > n:  # a new epoch: its draws, its running numbers
            state.update(plan=plan_epoch(n, batch, True, generator, device), start=0, running=RunningNumbers(device))
        x, y = load_batch(images, state["plan"], state["start"], state["start"] + batch, ranks)
        state["start"] += batch
        state["running"].add(*training_step(model, optimizer, x, y, threat, craft), y)

    return model_only, full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--threat-steps", type=int, default=None,
                        help="timed steps per adversarial threat model (default: --steps; 0: none measured)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    batch = args.batch_size
    threat_steps = args.steps if args.threat_steps is None else args.threat_steps
    train_set = load_dataset("synthetic").train  # same shapes as CIFAR; content does not change speed
    reps = max(20, -(-4 * batch // len(train_set)))  # at least four batches per epoch
    images = ImageSet(train_set.x.repeat(reps, 1, 1, 1).to(device), train_set.y.repeat(reps).to(device))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads} threads"
    print(f"device {where}, width {args.width}, batch {batch}")
    threats = [resolve_threat(name) for name in THREAT_MODELS]
    results = {}
    for name in ("vgg", "vgg-att3-concat-pc"):
        standard = next(t for t in threats if not t.adversarial)
        model_only, full = pipeline(name, args.width, batch, images, standard, device)
        model_rate, full_rate = rate(model_only, args.steps, batch, device), rate(full, args.steps, batch, device)
        results[name] = full_rate
        print(f"{name:20s} model step {model_rate:7.1f} img/s  with data pipeline {full_rate:7.1f} img/s  "
              f"pipeline share {100 * (1 - full_rate / model_rate):5.1f}% (target < 10%)")
        if device.type == "cuda":
            share = full_rate / model_rate
            print(f"{'':20s} pipeline rate / model-only rate {100 * share:5.1f}% (target >= "
                  f"{100 * GPU_PIPELINE_TARGET:.0f}% at batch 256){'' if batch == 256 else ' [not batch 256]'}")
        for threat in threats:
            if not threat.adversarial or threat_steps == 0:
                continue
            _, step = pipeline(name, args.width, batch, images, threat, device)
            cost = full_rate / rate(step, threat_steps, batch, device)
            target = cost_target(threat)
            verdict = "ok" if cost <= target else "OVER"
            print(f"{'':20s} {threat.name:10s} (K={threat.steps:2d}) step cost {cost:5.2f}x standard "
                  f"(target <= {target:.2f}x) {verdict}")
    ratio = results["vgg"] / results["vgg-att3-concat-pc"]
    print(f"attention step cost / baseline step cost: {ratio:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
