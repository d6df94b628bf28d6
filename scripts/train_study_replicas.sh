#!/usr/bin/env bash
# Trains the seed replicas of studies/attention-vs-baseline.toml: seeds 1-4 of vgg and vgg-att3-concat-pc
# with the recipe of scripts/train_small_checkpoints.sh (seed 0 is the shipped vgg_c10s /
# vgg-att3-concat-pc_c10s), two at a time on a 2-core machine, one thread each, and registers them in
# models/manifest.json as replicas of their seed-0 checkpoint (kept out of the default model set; the
# study finds them by their recorded training configuration). `robust-attn study` would train the same
# models itself into its own folder; this script puts them in models/ so the shipped study trains nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSET=../shared/datasets/cifar10-subset
train_seed() {  # architecture seed
  local out="models/$1_c10s_seed$2.pt"
  local cmd=(robust-attn train "$1" --dataset cifar10-subset --data-dir "$SUBSET" --epochs 30 --batch-size 32
             --lr 0.05 --width 0.125 --seed "$2" --threads 1 --out "$out" --force)
  "${cmd[@]}"
  python -c 'import sys; from robust_attn.checkpoints import register_in_manifest as r; r(sys.argv[1], command=sys.argv[2], replica_of=sys.argv[3])' \
    "$out" "${cmd[*]}" "$1_c10s"
}
for seed in 1 2 3 4; do
  train_seed vgg "$seed" &
  train_seed vgg-att3-concat-pc "$seed" &
  wait -n && wait -n  # a failed training fails the script
done
