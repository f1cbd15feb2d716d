#!/usr/bin/env bash
# Installs what is missing on Debian 12 and builds moco against one LibTorch:
#   debian: Debian's libtorch-dev 1.13 (CPU), apt only;
#   pip:    PyTorch 2.11 from PyPI (a CUDA build; it runs on the CPU too) in a
#           virtual environment outside the checkout, built with this
#           machine's CUDA toolkit (nvcc).
#   scripts/setup.sh [--tests] [--torch debian|pip]
#   env: MOCO_TORCH (the --torch default: debian), BUILD_DIR (default build,
#        or build-torch2 for pip), MOCO_VENV (default
#        ~/.cache/moco/venv-torch-2.11.0; kept between runs, as pip's cache)
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=OFF
while (($#)); do
  case "$1" in
    --tests) with_tests=ON ;;
    --torch) MOCO_TORCH=${2:-}; shift ;;
    --torch=*) MOCO_TORCH=${1#--torch=} ;;
    *) echo "setup: unknown argument '$1' (expected --tests, --torch debian|pip)" >&2; exit 2 ;;
  esac
  shift
done
source scripts/torch_choice.sh
torch=$MOCO_TORCH
# The GPU machine's versions (docs/builds.md).
torch_version=2.11.0
torchvision_version=0.26.0

# libgloo-dev: the headers c10d's ProcessGroupGloo.hpp includes; the pip
# build does not link Debian's libgloo (CMakeLists.txt says why).
packages=(g++ cmake ninja-build libcli11-dev nlohmann-json3-dev
          libfmt-dev zlib1g-dev libjpeg62-turbo-dev libpng-dev libarchive-dev libgloo-dev
          libgoogle-perftools-dev libopenblas0-pthread
          dataset-fashion-mnist)
if [[ $torch == debian ]]; then
  packages+=(libtorch-dev)
else
  packages+=(python3-venv)
fi
if [[ $with_tests == ON ]]; then
  # GoogleTest; Chromium to render `moco report`'s page; for Debian's
  # LibTorch, Debian's Python torch/torchvision/PIL as the tests' reference
  # (the pip build's reference is its venv).
  packages+=(libgtest-dev chromium)
  [[ $torch == debian ]] && packages+=(python3-torch python3-torchvision python3-pil)
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

cmake_args=()
if [[ $torch == pip ]]; then
  # Outside the checkout, so that a fresh clone (CI's) finds it again.
  home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
  venv=${MOCO_VENV:-${XDG_CACHE_HOME:-$home/.cache}/moco/venv-torch-$torch_version}
  if [[ ! -x $venv/bin/python ]]; then
    echo "setup: creating $venv" >&2
    mkdir -p "$(dirname "$venv")"
    /usr/bin/python3 -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c "import torch, torchvision, sys; sys.exit(not (
      torch.__version__.split('+')[0] == '$torch_version' and
      torchvision.__version__.split('+')[0] == '$torchvision_version'))" 2>/dev/null; then
    echo "setup: pip install torch==$torch_version torchvision==$torchvision_version" \
         "into $venv (a few GB the first time)" >&2
    "$venv/bin/pip" install -q "torch==$torch_version" "torchvision==$torchvision_version"
  fi
  # The wheel's CMake config is a CUDA build's: it needs the CUDA toolkit.
  if ! command -v nvcc >/dev/null; then
    [[ -x /usr/local/cuda/bin/nvcc ]] && export PATH=/usr/local/cuda/bin:$PATH
  fi
  command -v nvcc >/dev/null || {
    echo "setup: --torch pip: PyPI's LibTorch is a CUDA build and its CMake config" \
         "needs the CUDA toolkit (nvcc), which is not on PATH nor in /usr/local/cuda" >&2
    exit 1
  }
  # The LibTorch root itself, so that its lib/ is searched before the
  # system's (where Debian's libtorch may be too).
  torch_root=$("$venv/bin/python" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  cmake_args+=(-DCMAKE_PREFIX_PATH="$torch_root" -DMOCO_PYTHON="$venv/bin/python")
  if [[ $with_tests == ON ]]; then
    # The libraries users read moco's files with, for the client tests.
    clients=(tensorboard webdataset timm safetensors)
    if ! "$venv/bin/python" -c "import $(IFS=,; echo "${clients[*]}")" 2>/dev/null; then
      echo "setup: pip install ${clients[*]} into $venv" >&2
      "$venv/bin/pip" install -q "${clients[@]}"
    fi
    cmake_args+=(-DMOCO_TEST_CLIENTS=ON)
  fi
fi

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DMOCO_BUILD_TESTS=$with_tests "${cmake_args[@]}" >/dev/null
if [[ $with_tests == ON ]]; then
  cmake --build "$BUILD_DIR" -j "$(nproc)"
else
  cmake --build "$BUILD_DIR" -j "$(nproc)" --target moco
fi
