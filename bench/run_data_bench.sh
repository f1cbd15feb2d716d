#!/usr/bin/env bash
# Decode + two-view MoCo v2 augmentation at 224 px: ours (moco bench-data)
# against the official torchvision + PIL transform, one core each.
#   bench/run_data_bench.sh BUILD_DIR DATA   (env: ROUNDS, default 2)
# DATA: a folder of JPEGs (the numbers in docs/performance.md: 1,000
# ImageNet JPEGs of 224x224 from imagenette).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
DATA=${2:?usage: bench/run_data_bench.sh BUILD_DIR DATA (a folder of JPEGs)}
ROUNDS=${ROUNDS:-2}
ours_best=0
peer_best=0
# Alternate the two so a drift in the machine's speed hits both.
for ((r = 1; r <= ROUNDS; r++)); do
  out=$("$BUILD/moco" bench-data "$DATA" --crop-size 224 -j "$(nproc)" 2>/dev/null)
  echo "$out" | sed "s/^/ours round $r: /"
  one=$(echo "$out" | awk '/^1 core/ {for (i = 1; i < NF; i++) if ($(i + 1) == "images/s") print $i}')
  peer=$(/usr/bin/python3 bench/python_data_bench.py "$DATA" --rounds 1 | tail -1)
  echo "peer round $r: $peer"
  p=$(echo "$peer" | awk '{print $3}')
  ours_best=$(awk -v a="$ours_best" -v b="$one" 'BEGIN {print (b > a) ? b : a}')
  peer_best=$(awk -v a="$peer_best" -v b="$p" 'BEGIN {print (b > a) ? b : a}')
done
awk -v o="$ours_best" -v p="$peer_best" 'BEGIN {
  printf "one core, best of rounds: ours %.1f images/s, torchvision+PIL %.1f images/s: %.2fx\n", o, p, o / p }'
