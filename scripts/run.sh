#!/usr/bin/env bash
# The README's first command: set up, then pretrain on Fashion-MNIST with the
# 'quick' preset and print the kNN top-1 on its test set.
#   scripts/run.sh [extra moco pretrain flags]
#   (env as scripts/setup.sh: MOCO_TORCH=debian|pip, BUILD_DIR, MOCO_VENV)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/torch_choice.sh
scripts/setup.sh
out="runs/quick-$(date +%Y%m%d-%H%M%S)"
exec "$BUILD_DIR/moco" pretrain --output "$out" "$@"
