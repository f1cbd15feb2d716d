#!/usr/bin/env bash
# MoCo's ablations on Fashion-MNIST with the quick preset (docs/ablations.md):
# one moco sweep per table, two points at a time on the machine's cores.
#   bench/ablations.sh [BUILD_DIR] [OUT_DIR] [SEEDS]   (defaults: build runs/ablations 0,1)
# A sweep skips every point whose folder has point.json, so the script can be
# stopped and started again, and the quick preset's own run (m 0.99, shuffle-BN
# on, K 4096, asymmetric loss), the baseline of several tables, is trained once
# in the momentum sweep and copied into the others.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-runs/ablations}
SEEDS=${3:-0,1}
M="$BUILD/moco"
S=(--seeds "$SEEDS" --parallel 2)
copy_baseline() {  # DIR POINT_PREFIX
  for s in ${SEEDS//,/ }; do
    mkdir -p "$OUT/$1"
    [ -e "$OUT/$1/$2,seed=$s" ] || cp -r "$OUT/momentum/moco_m=0.99,seed=$s" "$OUT/$1/$2,seed=$s"
  done
}
"$M" sweep --set moco-m=0,0.9,0.99,0.999 "${S[@]}" -o "$OUT/momentum"
copy_baseline shuffle shuffle_bn=on
"$M" sweep --set shuffle-bn=on,off "${S[@]}" -o "$OUT/shuffle"
copy_baseline symmetric symmetric=off
"$M" sweep --set symmetric=off,on "${S[@]}" -o "$OUT/symmetric"
copy_baseline queue moco_k=4096
"$M" sweep --set moco-k=256,1024,4096,16384 "${S[@]}" -o "$OUT/queue"
# MoCo v1 against v2 and each of v2's parts added to v1 alone (the quick
# preset's other flags stay: width 16, 6 epochs, b128, lr 0.06 ...).
"$M" sweep \
  --point 'v1=--mlp=false --aug-plus=false --cos=false --moco-t 0.07' \
  --point 'mlp=--mlp --aug-plus=false --cos=false --moco-t 0.07' \
  --point 'aug+=--mlp=false --aug-plus --blur on --cos=false --moco-t 0.07' \
  --point 'cos=--mlp=false --aug-plus=false --cos --moco-t 0.07' \
  --point 't0.2=--mlp=false --aug-plus=false --cos=false --moco-t 0.2' \
  --point 'v2=--mlp --aug-plus --blur on --cos --moco-t 0.2' \
  "${S[@]}" -o "$OUT/v2"
