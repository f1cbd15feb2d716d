#!/usr/bin/env bash
# `moco knn` on 224 px photos with the decoding on the calling thread (-j 0,
# what every evaluation command did before it had workers) and with a worker
# thread decoding the next batches while the network runs (-j 1); the time
# is the classifier's own (features of bank and test, scoring), as it logs.
# Two encoders after one pretraining step (the weights do not change the
# cost): a ResNet-18 (on a few CPU cores the forward pass dominates) and a
# ResNet-18 of width 8 (the forward pass is cheap: decoding dominates, as
# it does beside a GPU). The 1,000 imagenette photos, 20% held out as the
# test split (--val-split 0.2).
#   bench/knn_decode.sh [BUILD_DIR] [OUT_DIR] [IMAGES]  (env ROUNDS=1)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-/tmp/moco-knn-bench}
IMAGES=${3:-../shared/data/imagenette-sample}
ROUNDS=${ROUNDS:-1}
mkdir -p "$OUT"
for width in 64 8; do
  if [[ ! -f "$OUT/r18w$width/checkpoint.pth.tar" ]]; then
    rm -rf "$OUT/r18w$width"
    "$BUILD/moco" pretrain "$IMAGES" -a resnet18 --width "$width" --crop-size 224 \
      --stem imagenet -b 16 --bn-splits 2 --moco-k 64 --epochs 1 --max-steps 1 \
      --knn-freq 0 --no-progress -o "$OUT/r18w$width" > "$OUT/r18w$width.log" 2>&1
  fi
done
for ((r = 1; r <= ROUNDS; r++)); do
  for width in 64 8; do
    # --threads 1: the network on one core and decoding free to use the
    # other (as beside a GPU); --threads 0: the network on every core.
    for threads in 1 0; do
      for j in 0 1; do
        line=$("$BUILD/moco" knn "$IMAGES" --val-split 0.2 \
          --pretrained "$OUT/r18w$width/checkpoint.pth.tar" -b 64 -j "$j" --threads "$threads" 2>&1 |
          grep "knn: top-1")
        secs=$(echo "$line" | grep -o '[0-9.]*s)$' | tr -d 's)')
        top1=$(echo "$line" | grep -o 'top-1 [0-9.]*%')
        awk -v w="$width" -v t="$threads" -v j="$j" -v r="$r" -v s="$secs" -v l="$top1" \
          'BEGIN {printf "round %d, ResNet-18 width %2d, --threads %d, -j %s: %5.1f s for the 1,000 images (%6.1f images/s), %s\n", r, w, t, j, s, 1000 / s, l}'
      done
    done
  done
done
