#!/usr/bin/env bash
# Trains the small ResNet checkpoints shipped in models/ (issue 14, item 5): the pre-activation ResNet-20
# baseline, the paper's attention on it (RN-att2, concat, pc), and the SE and CBAM variants.
# One recipe for all four, the VGG checkpoints' recipe (scripts/train_small_checkpoints.sh) at ResNet scale:
# depth 20 (basic blocks), width 0.5 (stages of 8, 16 and 32 channels), 30 one-cycle epochs, peak lr 0.05,
# batch 32, seed 0, one thread each, on the 4,660 genuine CIFAR-10 training images of ../shared, two models
# at a time on a 2-core machine. Each command is recorded verbatim in models/manifest.json.
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSET=../shared/datasets/cifar10-subset
train_cifar() {
  robust-attn train "$1" --dataset cifar10-subset --data-dir "$SUBSET" --epochs 30 --batch-size 32 --lr 0.05 \
    --width 0.5 --depth 20 --seed 0 --threads 1 --out "models/$1_c10s.pt" --manifest --force
}
for arch in resnet resnet-att2-concat-pc resnet-se resnet-cbam; do
  train_cifar "$arch" &
  while (( $(jobs -rp | wc -l) >= 2 )); do wait -n; done  # at most two at once, one per core
done
while (( $(jobs -rp | wc -l) > 0 )); do wait -n; done  # a failed training fails the script
