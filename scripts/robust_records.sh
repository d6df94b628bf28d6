#!/usr/bin/env bash
# RobustBench-style records of the shipped adversarially trained checkpoints (the claims issue): standard
# AutoAttack (torchattacks' version) at each pair's training budget on the whole embedded test split (932 CIFAR-10,
# 1,000 Fashion-MNIST images, one batch each), then `robust-attn export`. Three sweeps side by side (the CIFAR pair
# in one), one thread each; the folders (admission.csv, results.csv, per_example.csv, runs.jsonl) and the records
# land in reports/records/ (records under reports/records/model_info/).
#   bash scripts/robust_records.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=reports/records
common=(--attack autoattack --batch-size 1024 --threads 1 --no-report)
robust-attn sweep --models vgg_c10s_ffgsm,vgg-att3-concat-pc_c10s_ffgsm --eps 8 "${common[@]}" --out "$OUT/runs/cifar10" &
robust-attn sweep --models vgg_fmnist_pgd --eps 0.1 --eps-unit raw "${common[@]}" --out "$OUT/runs/fashion-mnist-vgg" &
robust-attn sweep --models vgg-att3-concat-pc_fmnist_pgd --eps 0.1 --eps-unit raw "${common[@]}" \
  --out "$OUT/runs/fashion-mnist-att" &
wait -n && wait -n && wait -n  # a failed sweep fails the script
robust-attn export "$OUT"/runs/* --out "$OUT"
