#!/usr/bin/env bash
# RobustBench-style records of the shipped adversarially trained checkpoints (the claims issue): standard
# AutoAttack (torchattacks' version) at each pair's training budget on the whole embedded test split, then
# `robust-attn export`. Writes reports/records/ (the sweep folders, with admission.csv, results.csv,
# per_example.csv and runs.jsonl, and the records under reports/records/model_info/).
#   bash scripts/robust_records.sh            # about N min on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=reports/records
robust-attn sweep --models vgg_c10s_ffgsm,vgg-att3-concat-pc_c10s_ffgsm --attack autoattack --eps 8 \
  --batch-size 1024 --threads 1 --no-report --out "$OUT/runs/cifar10" &
robust-attn sweep --models vgg_fmnist_ffgsm,vgg-att3-concat-pc_fmnist_ffgsm --attack autoattack --eps 0.1 --eps-unit raw \
  --batch-size 1024 --threads 1 --no-report --out "$OUT/runs/fashion-mnist" &
wait -n && wait -n  # a failed sweep fails the script
robust-attn export "$OUT/runs/cifar10" "$OUT/runs/fashion-mnist" --out "$OUT"
