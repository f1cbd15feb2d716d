#!/usr/bin/env bash
# Fine-tuning with few labels on Fashion-MNIST (docs/evaluation.md): the
# quick preset's MoCo checkpoint against random initialisation, with 1%, 10%
# and 100% of the labels, each at two learning rates; two runs at a time,
# one thread each.
#   bench/finetune_table.sh [BUILD_DIR] [OUT_DIR] [CKPT]
# Without CKPT the script pretrains first (moco pretrain, the quick preset,
# seed 0, into OUT_DIR/pretrain). A run whose folder has a finished log is
# not run again, so the script can be stopped and started again.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-runs/finetune-table}
CKPT=${3:-}
M="$(realpath "$BUILD/moco")"
FM=/usr/share/datasets/fashion-mnist
mkdir -p "$OUT"
if [ -z "$CKPT" ]; then
  CKPT="$OUT/pretrain/checkpoint.pth.tar"
  [ -e "$CKPT" ] || "$M" pretrain --threads 2 --seed 0 --no-progress -o "$OUT/pretrain"
fi
# fraction epochs batch: 1% and 10% as the semi-supervised protocol's long
# and short schedules; all labels for 10 epochs.
SETTINGS=("0.01 50 64" "0.1 30 128" "1 10 256")
jobs=()
for s in "${SETTINGS[@]}"; do
  read -r frac epochs batch <<<"$s"
  for init in moco scratch; do
    for lr in 0.01 0.1; do
      name="$init-$frac-lr$lr"
      if [ "$init" = moco ]; then src="--pretrained $CKPT"; else src="--pretrained none -a resnet18 --width 16"; fi
      jobs+=("$name|$src --label-fraction $frac --epochs $epochs -b $batch --lr $lr --amp bf16")
    done
  done
done
run_one() {
  local name=${1%%|*} flags=${1#*|}
  [ -e "$OUT/$name/done" ] && return 0
  rm -rf "${OUT:?}/$name"
  # shellcheck disable=SC2086
  /usr/bin/time -f "%e s wall" "$M" finetune "$FM" $flags --threads 1 -j 1 \
    --no-progress -o "$OUT/$name" >"$OUT/$name.log" 2>&1
  touch "$OUT/$name/done"
}
export -f run_one
export M FM OUT
printf '%s\n' "${jobs[@]}" | xargs -d '\n' -P 2 -I{} bash -c 'run_one "$1"' _ {}
# The table: best and last val top-1 of each run, and its wall time.
printf '| labels | init | lr | best top-1 | last top-1 | time |\n|---|---|---|---|---|---|\n'
for j in "${jobs[@]}"; do
  name=${j%%|*}
  IFS=- read -r init frac lr <<<"$name"
  line=$(grep "finetune: best val" "$OUT/$name.log" | tail -1)
  best=$(sed -E 's/.*best val Acc@1 ([0-9.]+).*/\1/' <<<"$line")
  last=$(sed -E 's/.*last Acc@1 ([0-9.]+).*/\1/' <<<"$line")
  secs=$(grep "s wall" "$OUT/$name.log" | tail -1 | cut -d' ' -f1)
  printf '| %s%% | %s | %s | %s | %s | %.0f s |\n' "$(awk "BEGIN{print $frac*100}")" \
    "$init" "${lr#lr}" "$best" "$last" "$secs"
done
