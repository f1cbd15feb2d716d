#!/usr/bin/env bash
# The speed harness on a GPU machine that has PyTorch but not Debian's -dev
# packages: one prepared script, a few minutes of GPU time.
#
# Here (the CPU machine, with apt):   bench/gpu_speed.sh fetch
#   downloads the Debian -dev packages the build needs into deps/ (ignored
#   by git; pass it in the device call's `carry`).
# There:                              bench/gpu_speed.sh run
#   unpacks deps/*.deb into /opt/deps, builds moco_bench_step against the
#   LibTorch inside the machine's PyTorch, and runs bench/run_speed.py
#   --device cuda (ResNet-50 at 224 batch 256 K 65536, small ResNet-18 batch
#   256 K 4096; fp32, bf16 + channels-last, fp16 + channels-last; ours and
#   the Python peer alternately, synthetic data already on the GPU). Writes
#   $OUT/speed.txt and $OUT/speed.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
debs=(libcli11-dev nlohmann-json3-dev libfmt-dev libfmt9 zlib1g-dev
      libjpeg62-turbo-dev libjpeg62-turbo libpng-dev libpng16-16 libgloo-dev
      libgloo0 libgoogle-perftools-dev libtcmalloc-minimal4)
case "${1:-}" in
  fetch)
    mkdir -p deps
    (cd deps && apt-get download "${debs[@]}")
    ls deps
    ;;
  run)
    OUT=${OUT:-out}
    mkdir -p "$OUT" /opt/deps
    for d in deps/*.deb; do dpkg -x "$d" /opt/deps; done
    export LD_LIBRARY_PATH=/opt/deps/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
    # The torch folder itself, as scripts/setup.sh --torch pip passes it, so
    # that its lib/ is searched first (docs/builds.md).
    torch_prefix=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv \
      | tee "$OUT/gpu.txt"
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$torch_prefix;/opt/deps/usr" \
      -DMOCO_BUILD_TESTS=OFF -DMOCO_BUILD_BENCH=ON > "$OUT/cmake.log" 2>&1 \
      || { tail -40 "$OUT/cmake.log"; exit 1; }
    cmake --build build-gpu --target moco_bench_step -j 16 > "$OUT/build.log" 2>&1 \
      || { grep -m 20 -B2 -A5 error "$OUT/build.log"; exit 1; }
    python3 bench/run_speed.py --device cuda --build build-gpu \
      --workloads "${WORKLOADS:-r50,small}" --steps "${STEPS:-20}" \
      --warmup "${WARMUP:-5}" --json "$OUT/speed.jsonl" | tee "$OUT/speed.txt"
    ;;
  *)
    echo "usage: bench/gpu_speed.sh fetch|run" >&2
    exit 2
    ;;
esac
