#!/usr/bin/env bash
# The README's evaluation numbers: the default pretraining (what
# scripts/run.sh runs), then moco knn and moco lincls on Fashion-MNIST.
#   bench/fashion_mnist_eval.sh [BUILD_DIR] [OUT_DIR]   (env: LINCLS_EPOCHS, default 10)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-runs/fm-eval}
EPOCHS=${LINCLS_EPOCHS:-10}
DATA=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
t0=$(date +%s)
"$BUILD/moco" pretrain --no-progress --output "$OUT/pretrain"
t1=$(date +%s)
"$BUILD/moco" knn "$DATA" --pretrained "$OUT/pretrain/checkpoint.pth.tar"
t2=$(date +%s)
# main_lincls.py's recipe (lr 30, momentum 0.9, wd 0, b 256) with the
# schedule scaled to EPOCHS (drops at 60% and 80%).
"$BUILD/moco" lincls "$DATA" --pretrained "$OUT/pretrain/checkpoint.pth.tar" \
  --epochs "$EPOCHS" --schedule $((EPOCHS * 6 / 10)) $((EPOCHS * 8 / 10)) \
  --no-progress -p 100 --output "$OUT/lincls"
t3=$(date +%s)
"$BUILD/moco" report "$OUT/pretrain" >/dev/null
"$BUILD/moco" report "$OUT/lincls" >/dev/null
echo "times: pretrain $((t1 - t0)) s, knn $((t2 - t1)) s, lincls $((t3 - t2)) s"
