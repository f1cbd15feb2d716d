#!/usr/bin/env bash
# Reading a folder of JPEGs against reading the same images as tar shards
# (moco shard keeps their bytes): decode + two MoCo v2 views at 224 px,
# images/s on one worker and on all cores, alternating the two sources
# ROUNDS times.
#   bench/shards_vs_folder.sh [BUILD_DIR] [OUT_DIR] [IMAGES]
#   (defaults: build, /tmp/moco-shards-bench, ../shared/data/imagenette-sample;
#    env ROUNDS=3, SHARD_SIZE=100)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-/tmp/moco-shards-bench}
IMAGES=${3:-../shared/data/imagenette-sample}
ROUNDS=${ROUNDS:-3}
SHARD_SIZE=${SHARD_SIZE:-100}
rm -rf "$OUT/shards"
mkdir -p "$OUT"
"$BUILD/moco" shard "$IMAGES" "$OUT/shards" --shard-size "$SHARD_SIZE" 2>&1 | tail -1
bench() {  # DATA -> "one all"
  "$BUILD/moco" bench-data "$1" --crop-size 224 -j "$(nproc)" 2>/dev/null |
    awk '/images\/s/ {for (i = 1; i < NF; i++) if ($(i + 1) == "images/s") v[++n] = $i}
         END {print v[1], v[2]}'
}
: > "$OUT/rounds.txt"
for ((r = 1; r <= ROUNDS; r++)); do
  read -r f1 fa < <(bench "$IMAGES")
  read -r s1 sa < <(bench "$OUT/shards")
  echo "round $r: folder $f1 / $fa images/s (1 core / $(nproc) workers), shards $s1 / $sa"
  echo "$f1 $fa $s1 $sa" >> "$OUT/rounds.txt"
done
# Medians over the rounds: this machine's speed drifts between runs.
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for col in 1 2 3 4; do m[$col]=$(awk -v c=$col '{print $c}' "$OUT/rounds.txt" | median); done
awk -v f1="${m[1]}" -v fa="${m[2]}" -v s1="${m[3]}" -v sa="${m[4]}" -v n="$(nproc)" 'BEGIN {
  printf "median of the rounds: one core: folder %.1f, shards %.1f images/s (%.2fx); %d workers: folder %.1f, shards %.1f (%.2fx)\n",
    f1, s1, s1 / f1, n, fa, sa, sa / fa }'
