#!/usr/bin/env bash
# The README's second command: set up (with test dependencies), build
# everything and run the whole test suite.
#   scripts/test.sh [--torch debian|pip] [ctest args, e.g. -L unit]
#   (env as scripts/setup.sh: MOCO_TORCH, BUILD_DIR, MOCO_VENV)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  --torch) MOCO_TORCH=${2:-}; shift; shift || true ;;
  --torch=*) MOCO_TORCH=${1#--torch=}; shift ;;
esac
source scripts/torch_choice.sh
scripts/setup.sh --tests
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
