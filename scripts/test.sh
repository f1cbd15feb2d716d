#!/usr/bin/env bash
# The README's second command: set up (with test dependencies), build
# everything and run the whole test suite.
#   scripts/test.sh [ctest args, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --tests
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "$(nproc)" "$@"
