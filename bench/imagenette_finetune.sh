#!/usr/bin/env bash
# Fine-tuning on real photos (docs/evaluation.md): the shared imagenette
# sample (10 classes x 100 JPEGs) split 80/20 per class, MoCo pretraining on
# the 800 training images only, then fine-tuning on 10% and 100% of their
# labels from that checkpoint and from random initialisation, at 64 px with
# the ImageNet stem and half of ResNet-18's width (the small-image stem at
# 64 px costs 16x the compute: hours on two cores).
#   bench/imagenette_finetune.sh [BUILD_DIR] [OUT_DIR] [IMAGES_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-runs/imagenette-finetune}
IMAGES=${3:-../shared/data/imagenette-sample}
M="$(realpath "$BUILD/moco")"
IMAGES="$(realpath "$IMAGES")"
SPLIT="$OUT/data"
if [ ! -d "$SPLIT/val" ]; then
  # train/<wnid>/ and val/<wnid>/ as links: the first 80 files of each class
  # (sorted) train, the last 20 validate.
  for cls in "$IMAGES"/*/; do
    wnid=$(basename "$cls")
    mkdir -p "$SPLIT/train/$wnid" "$SPLIT/val/$wnid"
    i=0
    for f in $(ls "$cls" | sort); do
      if [ $i -lt 80 ]; then d=train; else d=val; fi
      ln -sf "$cls$f" "$SPLIT/$d/$wnid/$f"
      i=$((i + 1))
    done
  done
fi
CKPT="$OUT/pretrain/checkpoint.pth.tar"
if [ ! -e "$CKPT" ]; then
  # MoCo v2's recipe at 64 px; the queue (512) below the 800 images.
  "$M" pretrain "$SPLIT/train" --preset v2 -a resnet18 --crop-size 64 \
    --stem imagenet --width 32 --epochs 50 -b 64 --lr 0.06 --moco-k 512 --moco-m 0.99 --bn-splits 4 \
    --wd 5e-4 --amp bf16 --threads 2 --knn-freq 10 --no-progress \
    -o "$OUT/pretrain" >"$OUT/pretrain.log" 2>&1
fi
printf '| labels | init | best top-1 | last top-1 | time |\n|---|---|---|---|---|\n'
for frac in 0.1 1; do
  for init in moco scratch; do
    name="$init-$frac"
    if [ "$init" = moco ]; then src=(--pretrained "$CKPT"); else src=(--pretrained none -a resnet18 --stem imagenet --width 32); fi
    if [ ! -e "$OUT/$name/done" ]; then
      rm -rf "${OUT:?}/$name"
      /usr/bin/time -f "%e s wall" "$M" finetune "$SPLIT" "${src[@]}" \
        --label-fraction "$frac" --crop-size 64 --epochs 30 -b 32 --lr 0.01 \
        --amp bf16 --threads 2 --no-progress -o "$OUT/$name" >"$OUT/$name.log" 2>&1
      touch "$OUT/$name/done"
    fi
    line=$(grep "finetune: best val" "$OUT/$name.log" | tail -1)
    best=$(sed -E 's/.*best val Acc@1 ([0-9.]+).*/\1/' <<<"$line")
    last=$(sed -E 's/.*last Acc@1 ([0-9.]+).*/\1/' <<<"$line")
    secs=$(grep "s wall" "$OUT/$name.log" | tail -1 | cut -d' ' -f1)
    printf '| %s%% | %s | %s | %s | %.0f s |\n' "$(awk "BEGIN{print $frac*100}")" \
      "$init" "$best" "$last" "$secs"
  done
done
