#!/usr/bin/env bash
# Trains the compact-transformer checkpoints shipped in models/ (the self-attention issue) and the seed
# replicas of studies/cct-sequence-pooling.toml.
# Sizes: CCT-2/3x2 of Hassani et al. 2021 (width 0.5 = embedding 128, 2 blocks, 2 heads, MLP ratio 1, two
# conv layers in the tokenizer: 8 x 8 = 64 tokens; 0.28M parameters, as their table), its pooling ablation at
# the same sizes, and a ViT at the same sizes (patches of 4 x 4: 64 tokens plus the class token; 0.22M).
# Recipe: the CNN checkpoints' (scripts/train_small_checkpoints.sh: 30 one-cycle epochs, batch 32, peak lr 0.05,
# SGD momentum 0.9, weight decay 5e-4, crop + flip), on the 4,660 genuine CIFAR-10 training images of
# ../shared, one thread each, two at a time on a 2-core machine; so the transformers and the CNNs differ in
# architecture alone (Hassani et al. train 300 epochs with AdamW, AutoAugment, CutMix and Mixup).
# Seed 0 of each is a shipped model (cct_c10s, cct-gap_c10s, vit_c10s); seeds 1-4 of cct and cct-gap are
# its replicas (out of the default model set; the study finds them by their recorded recipe).
# Each command is recorded verbatim in models/manifest.json; CPU training is deterministic for a given
# thread count, so re-running a command reproduces its checkpoint's weights.
#   bash scripts/train_transformer_checkpoints.sh [shipped|replicas|all]
set -euo pipefail
cd "$(dirname "$0")/.."
SUBSET=../shared/datasets/cifar10-subset
SIZES=(--width 0.5 --model-arg depth=2 --model-arg heads=2 --model-arg mlp_ratio=1.0)
register() {  # checkpoint command [replica_of]
  python -c 'import sys; from robust_attn.checkpoints import register_in_manifest as r; r(sys.argv[1], command=sys.argv[2], replica_of=(sys.argv[3] or None))' \
    "$1" "$2" "${3:-}"
}
train() {  # architecture seed
  local name="$1_c10s" replica="" sizes=("${SIZES[@]}")
  if (( $2 > 0 )); then replica="$name"; name="${name}_seed$2"; fi
  [[ $1 == cct* ]] && sizes+=(--model-arg conv_layers=2)
  local cmd=(robust-attn train "$1" --dataset cifar10-subset --data-dir "$SUBSET" --epochs 30 --batch-size 32 --lr 0.05
             "${sizes[@]}" --seed "$2" --threads 1 --out "models/$name.pt" --force)
  "${cmd[@]}"
  register "models/$name.pt" "${cmd[*]}" "$replica"
}
jobs_=()
what="${1:-all}"
[[ $what == shipped || $what == all ]] && jobs_+=("cct 0" "cct-gap 0" "vit 0")
if [[ $what == replicas || $what == all ]]; then
  for seed in 1 2 3 4; do jobs_+=("cct $seed" "cct-gap $seed"); done
fi
for job in "${jobs_[@]}"; do
  train $job &
  while (( $(jobs -rp | wc -l) >= 2 )); do wait -n; done  # at most two at once, one per core
done
while (( $(jobs -rp | wc -l) > 0 )); do wait -n; done  # a failed training fails the script
