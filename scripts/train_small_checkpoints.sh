#!/usr/bin/env bash
# Trains the small checkpoints shipped in models/ (issue: real small checkpoints).
# Every CIFAR model is trained identically: 30 one-cycle epochs, width 0.125, seed 0, 2 threads,
# on the 4,660 genuine CIFAR-10 training images of ../shared; Fashion-MNIST models on all 60,000.
# Each command is recorded verbatim in models/manifest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSET=../shared/datasets/cifar10-subset
FMNIST=../shared/datasets/fashion-mnist
for arch in vgg vgg-att2-concat-pc vgg-att3-concat-pc vgg-att3-concat-dp vgg-att3-indep-pc; do
  robust-attn train "$arch" --dataset cifar10-subset --data-dir "$SUBSET" --epochs 30 --width 0.125 \
    --seed 0 --threads 2 --out "models/${arch}_c10s.pt" --manifest
done
for arch in vgg vgg-att3-concat-pc; do
  robust-attn train "$arch" --dataset fashion-mnist --data-dir "$FMNIST" --epochs 3 --width 0.125 \
    --seed 0 --threads 2 --out "models/${arch}_fmnist.pt" --manifest
done
