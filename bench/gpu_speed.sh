#!/usr/bin/env bash
# The GPU run as one prepared command, for a machine that has PyTorch and
# the CUDA toolkit but none of Debian's -dev packages (and no network):
# build there through the project's CMake path against the LibTorch inside
# that PyTorch, run the GPU tests, then the speed harness. It keeps to
# about 8 minutes on the project's GPU machine, build included.
#
# Here (the CPU machine, with apt and the pip build):
#   bench/gpu_speed.sh fetch
#     downloads into deps/ (ignored by git; name it in the device call's
#     carry) the -dev packages the build needs and the runtime packages of
#     every library build-torch2/moco links outside the wheel and glibc;
#   bench/gpu_speed.sh check
#     proves the carried packages are enough, up to the first CUDA kernel:
#     in a private mount namespace every installed -dev package but the C
#     and C++ toolchain's own is removed (an overlay on /usr; nothing on
#     disk changes), then the `run` steps build from deps/ alone with the
#     venv's Python as python3, run the GPU tests (which skip here), and
#     start the harness, which must stop at its first CUDA call.
# There:
#   bench/gpu_speed.sh run
#     writes $OUT/{gpu.txt,cmake.log,build.log,gpu-tests.txt,speed.txt,
#     speed.jsonl,speed-compile.txt}. The harness: ours against the Python
#     peer eager on both workloads and all precisions, then, with the time
#     left, the peer under torch.compile on ResNet-50 in mixed precision.
# env: OUT (default out), DEPS_ROOT (default /opt/deps), PYTHON (default
#      python3), JOBS (default: all cores), BUDGET_S (default 470), STEPS,
#      WARMUP, WORKLOADS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Built by scripts/setup.sh --torch pip; the toolchain's own -dev packages
# are on every machine with a compiler (the GPU machine's nvcc needs one).
toolchain_dev='^(libc6-dev|libc-dev-bin|linux-libc-dev|libcrypt-dev|libnsl-dev|libtirpc-dev|libstdc\+\+-[0-9]+-dev|libgcc-[0-9]+-dev|libpython3(\.[0-9]+)?-dev|python3(\.[0-9]+)?-dev)$'
# The -dev packages the build includes or links; their runtime libraries are
# found from the binary (ldd) by `fetch`.
dev_debs=(libcli11-dev nlohmann-json3-dev libfmt-dev zlib1g-dev
          libjpeg62-turbo-dev libpng-dev libarchive-dev libgloo-dev
          libgoogle-perftools-dev libgtest-dev libgmock-dev)

die() { echo "gpu_speed: $*" >&2; exit 1; }

fetch() {
  local bin=${BUILD_DIR:-build-torch2}/moco
  [[ -x $bin ]] || die "no $bin: run scripts/setup.sh --torch pip first"
  # Runtime packages: what the binary loads from the system, less glibc and
  # the compiler's runtime (the GPU machine has newer ones of its own).
  local runtime
  # dpkg knows a file by the path its package ships (/lib or /usr/lib on a
  # merged /usr), so it is asked by the file's name under either.
  runtime=$(ldd "$bin" | awk '$3 ~ /^\// {print $3}' | grep -v -e /venv -e site-packages \
    | xargs -r -n1 readlink -f | xargs -r -n1 basename \
    | sed 's|^|*/x86_64-linux-gnu/|' | xargs -r -d '\n' dpkg -S 2>/dev/null \
    | cut -d: -f1 | sort -u | grep -Ev '^(libc6|libstdc\+\+6|libgcc-s1)$' || true)
  # The -dev packages' own runtime packages: their CMake configs and .so
  # links name those files (libfmt-dev's config names libfmt9's library
  # even where moco uses fmt header-only).
  local own
  own=$(apt-cache depends --no-recommends --no-suggests --no-conflicts --no-breaks \
          --no-replaces --no-enhances "${dev_debs[@]}" \
        | awk '/Depends: lib/ {print $2}' | grep -v -e '-dev$' -e '^libc6$' | sort -u)
  runtime=$(printf '%s\n' $runtime $own | sort -u)
  rm -rf deps && mkdir -p deps
  # shellcheck disable=SC2086
  (cd deps && apt-get download "${dev_debs[@]}" $runtime >/dev/null)
  printf '%s\n' "${dev_debs[@]}" $runtime > deps/MANIFEST
  du -sh deps
  cat deps/MANIFEST
}

unpack() {
  local deps_root=${DEPS_ROOT:-/opt/deps}
  ls deps/*.deb >/dev/null 2>&1 || die "no deps/*.deb: run 'bench/gpu_speed.sh fetch' here and carry deps"
  mkdir -p "$deps_root"
  for d in deps/*.deb; do dpkg-deb -x "$d" "$deps_root"; done
  # A runtime library the host already has stays the host's: only what is
  # missing comes from the carried packages (Debian 12's builds of, e.g.,
  # libzstd must not replace a newer distribution's under its Python), so
  # LD_LIBRARY_PATH gets a folder of just those.
  local run=$deps_root/runtime missing=() host=""
  # CARRY_ALL=1 (check): as if the host had none of them.
  [[ ${CARRY_ALL:-0} == 1 ]] || host=$(ldconfig -p | awk 'NR > 1 {print $1}' | sort -u)
  rm -rf "$run" && mkdir -p "$run"
  for so in "$deps_root"/usr/lib/x86_64-linux-gnu/lib*.so.* \
            "$deps_root"/lib/x86_64-linux-gnu/lib*.so.*; do
    [[ -f $so && ! -L $so ]] || continue
    # Each library under its soname (libbz2's is libbz2.so.1.0), linked into
    # runtime/ when the host lacks it; the build links the carried files by
    # path either way.
    local name
    name=$(readelf -d "$so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [[ -n $name ]] || continue
    grep -qxF "$name" <<< "$host" && continue
    ln -sf "$so" "$run/$name"
    missing+=("$name")
  done
  echo "gpu_speed: libraries the host lacks, taken from deps/: ${missing[*]:-none}" >&2
  export LD_LIBRARY_PATH=$run${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
}

build() {
  local out=$1 py=${PYTHON:-python3} deps_root=${DEPS_ROOT:-/opt/deps}
  # As scripts/setup.sh --torch pip: the torch folder itself as the prefix,
  # so that its lib/ is searched first (docs/builds.md).
  local torch_prefix
  torch_prefix=$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))')
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  # Debian's multiarch headers (jconfig.h, ...): the compiler searches the
  # host's /usr/include/x86_64-linux-gnu by itself, not the carried one.
  export CPATH=$deps_root/usr/include/x86_64-linux-gnu${CPATH:+:$CPATH}
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$torch_prefix;$deps_root/usr" \
    -DMOCO_PYTHON="$(command -v "$py")" \
    -DMOCO_BUILD_TESTS=ON -DMOCO_BUILD_BENCH=ON > "$out/cmake.log" 2>&1 \
    || { tail -40 "$out/cmake.log"; die "configure failed ($out/cmake.log)"; }
  cmake --build build-gpu --target moco moco_bench_step test_moco_cuda test_amp \
    -j "${JOBS:-$(nproc)}" > "$out/build.log" 2>&1 \
    || { grep -m 20 -B2 -A5 error "$out/build.log"; die "build failed ($out/build.log)"; }
  ldd build-gpu/moco | grep -E 'libtorch_cuda|libc10_cuda|libtorch\.so' | tee "$out/ldd.txt"
  grep -q libtorch_cuda "$out/ldd.txt" || die "build-gpu/moco does not link libtorch_cuda"
}

gpu_tests() {
  local out=$1
  # The GPU tests, and the loss scaler's rules they rely on.
  (cd build-gpu && ctest -R 'MocoCuda|Amp|LossScaler' --output-on-failure) 2>&1 \
    | tee "$out/gpu-tests.txt"
  grep -q "tests passed" "$out/gpu-tests.txt" || die "GPU tests failed"
}

speed() {
  local out=$1 py=${PYTHON:-python3}
  "$py" bench/run_speed.py --device cuda --ours "2.11=build-gpu" \
    --peer "eager=$py" --workloads "${WORKLOADS:-r50,small}" \
    --steps "${STEPS:-20}" --warmup "${WARMUP:-5}" --json "$out/speed.jsonl" \
    | tee "$out/speed.txt"
  # torch.compile last, in the time that is left (its compilation alone
  # takes minutes): ResNet-50 in mixed precision against ours again.
  local left=$(( ${BUDGET_S:-470} - SECONDS ))
  if (( left > 60 )); then
    timeout "$left" "$py" bench/run_speed.py --device cuda --ours "2.11=build-gpu" \
      --peer "compile=$py:compile" --workloads r50 --precisions bf16+cl,fp16+cl \
      --steps "${STEPS:-20}" --warmup "${WARMUP:-5}" --compile-warmup 3 \
      --json "$out/speed-compile.jsonl" | tee "$out/speed-compile.txt" \
      || echo "gpu_speed: torch.compile stage stopped at the time budget" | tee -a "$out/speed-compile.txt"
  else
    echo "gpu_speed: no time left for the torch.compile stage" | tee "$out/speed-compile.txt"
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  run)
    OUT=${OUT:-out}
    mkdir -p "$OUT"
    nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
    unpack
    build "$OUT"
    gpu_tests "$OUT"
    speed "$OUT"
    echo "gpu_speed: done in $SECONDS s" | tee -a "$OUT/speed.txt"
    ;;
  check)
    [[ $(id -u) -eq 0 ]] || die "check needs root (a private mount namespace)"
    OUT=${OUT:-runs/gpu-check}
    mkdir -p "$OUT"
    home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
    venv=${MOCO_VENV:-${XDG_CACHE_HOME:-$home/.cache}/moco/venv-torch-2.11.0}
    [[ -x $venv/bin/python ]] || die "no venv at $venv: run scripts/setup.sh --torch pip"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mapfile -t hide < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' \
      | awk '$1 == "ii" && $2 ~ /-dev(:.*)?$/ {sub(/:.*/, "", $2); print $2}' \
      | grep -Ev "$toolchain_dev")
    printf '%s\n' "${hide[@]}" > "$OUT/hidden-packages.txt"
    echo "gpu_speed: hiding ${#hide[@]} -dev packages" >&2
    # FRESH=0 keeps build-gpu from an earlier check (the same deps root).
    [[ ${FRESH:-1} == 0 ]] || rm -rf build-gpu
    mkdir -p "$tmp/up" "$tmp/work"
    unshare -m env HIDE="${hide[*]}" TMPD="$tmp" OUT="$OUT" DEPS_ROOT="$(realpath -m "$OUT")/deps" \
      PATH="$venv/bin:$PATH" PYTHON=python3 bash -euo pipefail -c '
      mount --make-rprivate /
      mount -t overlay overlay -o "lowerdir=/usr,upperdir=$TMPD/up,workdir=$TMPD/work" /usr
      # shellcheck disable=SC2086
      dpkg -L $HIDE 2>/dev/null | grep "^/usr/" | sort -r | while read -r f; do
        if [[ -d $f && ! -L $f ]]; then rmdir "$f" 2>/dev/null || true
        else rm -f "$f"; fi
      done
      for probe in /usr/include/CLI/CLI.hpp /usr/include/gtest/gtest.h /usr/include/jpeglib.h \
                   /usr/include/fmt/core.h /usr/include/torch/csrc/api/include/torch/torch.h \
                   /usr/lib/x86_64-linux-gnu/libjpeg.so /usr/lib/x86_64-linux-gnu/cmake/GTest; do
        [[ ! -e $probe ]] || { echo "gpu_speed: $probe still visible" >&2; exit 1; }
      done
      source bench/gpu_speed.sh lib
      CARRY_ALL=1 unpack
      build "$OUT"
      # Every library the binaries load is glibc or the compiler runtime,
      # the wheel'"'"'s, or carried: none from the host, none missing but the
      # GPU driver'"'"'s libcuda.
      for b in build-gpu/moco build-gpu/moco_bench_step build-gpu/tests/test_moco_cuda; do
        ldd "$b" | awk -v b="$b" -v d="$DEPS_ROOT" '"'"'
          $1 ~ /^(linux-vdso|\/lib64\/ld-linux)/ {next}
          $1 ~ /^lib(c|m|dl|rt|util|pthread|stdc\+\+|gcc_s)\.so/ {next}
          $3 == "not" && $1 ~ /^libcuda\.so/ {next}
          $3 == "not" {print b ": " $1 " not found"; bad = 1; next}
          index($3, d) != 1 && $3 !~ /site-packages/ {print b ": " $1 " from the host: " $3; bad = 1}
          END {exit bad}'"'"' || { echo "gpu_speed: $b loads a library deps/ does not carry" >&2; exit 1; }
      done
      gpu_tests "$OUT"
      # No GPU here: the harness must get as far as its first CUDA call.
      if python3 bench/run_speed.py --device cuda --ours 2.11=build-gpu \
           --peer eager=python3 --workloads small --steps 1 --warmup 0 \
           > "$OUT/speed.txt" 2>&1; then
        echo "gpu_speed: the harness ran without a GPU?" >&2; exit 1
      fi
      # ... and stop there: at the CUDA runtime, which finds no driver.
      grep -m1 -E "CUDA error|CUDA driver|no CUDA" "$OUT/speed.txt" \
        || { echo "gpu_speed: the harness failed before its first CUDA call" >&2; exit 1; }
    '
    echo "gpu_speed: check passed: deps/ builds moco against the CUDA LibTorch" \
         "with every other -dev package hidden; logs in $OUT" >&2
    ;;
  lib) ;;  # sourced by check, for the functions
  *)
    echo "usage: bench/gpu_speed.sh fetch|check|run" >&2
    exit 2
    ;;
esac
