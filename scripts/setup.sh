#!/usr/bin/env bash
# Installs what is missing on Debian 12 (apt packages) and builds moco.
#   scripts/setup.sh [--tests]     (env: BUILD_DIR, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=OFF
[[ "${1:-}" == "--tests" ]] && with_tests=ON

packages=(g++ cmake ninja-build libtorch-dev libcli11-dev nlohmann-json3-dev
          libfmt-dev zlib1g-dev libjpeg62-turbo-dev libpng-dev libarchive-dev libgloo-dev
          libgoogle-perftools-dev libopenblas0-pthread
          dataset-fashion-mnist)
if [[ $with_tests == ON ]]; then
  # GoogleTest; Python torch/torchvision/PIL as the tests' reference;
  # Chromium to render `moco report`'s page.
  packages+=(libgtest-dev python3-torch python3-torchvision python3-pil
             chromium)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DMOCO_BUILD_TESTS=$with_tests >/dev/null
if [[ $with_tests == ON ]]; then
  cmake --build "$BUILD_DIR" -j "$(nproc)"
else
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target moco
fi
