#!/usr/bin/env bash
# The README's first command: set up, then pretrain on Fashion-MNIST with the
# 'quick' preset and print the kNN top-1 on its test set.
#   scripts/run.sh [extra moco pretrain flags]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out="runs/quick-$(date +%Y%m%d-%H%M%S)"
exec "${BUILD_DIR:-build}/moco" pretrain --output "$out" "$@"
