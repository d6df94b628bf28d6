"""Training throughput (images/s) at width 0.125 on 2 CPU threads, data pipeline included.

For each model, in one run: (1) the model step alone on a fixed in-memory batch, (2) the full
training step as `robust-attn train` runs it (index the uint8 dataset, batched crop+flip, to
float, channels_last, step). Prints images/s, the pipeline's share, and the attention model's
step cost relative to the baseline's. Targets: pipeline < 10%, attention <= 1.2x baseline.

    python benchmarks/train_speed.py [--steps 15] [--threads 2] [--width 0.125]
"""
from __future__ import annotations

import argparse
import time

import torch

from robust_attn.data import load_dataset
from robust_attn.models import create_model
from robust_attn.train import augment_batch


def step_fn(model, optimizer):
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(x, y):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def measure(name: str, width: float, steps: int, batch: int, train_set) -> tuple[float, float]:
    torch.manual_seed(0)
    model = create_model(name, width=width).to(memory_format=torch.channels_last).train()
    step = step_fn(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4))
    g = torch.Generator().manual_seed(0)
    fixed_x = train_set.x[:batch].float().div(255).contiguous(memory_format=torch.channels_last)
    fixed_y = train_set.y[:batch]

    def model_only():
        step(fixed_x, fixed_y)

    def full():
        idx = torch.randint(0, len(train_set), (batch,), generator=g)
        x = augment_batch(train_set.x[idx], g).float().div_(255).contiguous(memory_format=torch.channels_last)
        step(x, train_set.y[idx])

    rates = []
    for fn in (model_only, full):
        for _ in range(3):
            fn()
        start = time.perf_counter()
        for _ in range(steps):
            fn()
        rates.append(steps * batch / (time.perf_counter() - start))
    return rates[0], rates[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=float, default=0.125)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train_set = load_dataset("synthetic").train  # same shapes as CIFAR; content does not change speed
    train_set = type(train_set)(train_set.x.repeat(20, 1, 1, 1), train_set.y.repeat(20))
    results = {}
    for name in ("vgg", "vgg-att3-concat-pc"):
        model_rate, full_rate = measure(name, args.width, args.steps, args.batch_size, train_set)
        results[name] = full_rate
        print(f"{name:20s} model step {model_rate:7.1f} img/s  with data pipeline {full_rate:7.1f} img/s  "
              f"pipeline share {100 * (1 - full_rate / model_rate):5.1f}% (target < 10%)")
    ratio = results["vgg"] / results["vgg-att3-concat-pc"]
    print(f"attention step cost / baseline step cost: {ratio:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
