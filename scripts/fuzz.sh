#!/usr/bin/env bash
# The sanitizer build: clang with ASan+UBSan and libFuzzer coverage
# (MOCO_FUZZ), the in-process unit tests (marked "sanitize") run under the
# sanitizers, then each fuzz target
# from a fresh seed corpus for SECONDS seconds (CI: a few; docs/robustness.md
# has the longer runs).
#   scripts/fuzz.sh [SECONDS]      (0: no fuzzing; env: FUZZ_BUILD_DIR, default build-fuzz;
#                                   FUZZ_TESTS=0 skips the test suite)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
# The apt packages and the normal build, on Debian's LibTorch.
MOCO_TORCH=debian BUILD_DIR=build scripts/setup.sh --tests >/dev/null
missing=()
for p in clang libclang-rt-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
B=${FUZZ_BUILD_DIR:-build-fuzz}
cmake -S . -B "$B" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DMOCO_FUZZ=ON -DMOCO_BUILD_TESTS=ON \
  -DMOCO_BUILD_BENCH=OFF >/dev/null
cmake --build "$B" -j "$(nproc)" --target moco_sanitize_targets
# LibTorch's own static objects are not freed at exit: leak reports would be
# its, not ours.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [[ ${FUZZ_TESTS:-1} != 0 ]]; then
  # The binaries of moco_sanitize_targets, each with all its cases.
  for t in "$B"/tests/test_*; do
    [[ -x $t && ! -d $t ]] || continue
    echo "sanitizers: $(basename "$t")" >&2
    "$t" --gtest_brief=1
  done
fi
# 0 seconds: the build and the tests only (libFuzzer reads 0 as "forever").
[[ $seconds == 0 ]] && exit 0
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
/usr/bin/python3 fuzz/make_corpus.py "$corpus"
for t in torch_file pickle idx cifar image file_list shard brace shard_loader; do
  mkdir -p "$corpus/$t" "$corpus/$t.out"
  echo "fuzz_$t: $seconds s" >&2
  "$B/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 -max_len=65536 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$corpus/$t.out/" \
    "$corpus/$t.out" "$corpus/$t" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|Done" || true
  if ls "$corpus/$t.out"/crash-* "$corpus/$t.out"/leak-* "$corpus/$t.out"/timeout-* \
       "$corpus/$t.out"/oom-* >/dev/null 2>&1; then
    echo "fuzz_$t found a failing input: $(ls "$corpus/$t.out"/{crash,leak,timeout,oom}-* 2>/dev/null)" >&2
    mkdir -p fuzz-findings && cp "$corpus/$t.out"/{crash,leak,timeout,oom}-* fuzz-findings/ 2>/dev/null || true
    exit 1
  fi
done
echo "fuzz: no crash in any target" >&2
