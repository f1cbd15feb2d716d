#!/usr/bin/env bash
# Start-up time and peak memory at scale: N tiny images (a 16 x 16 PNG
# each, all the same bytes: the cost measured is the bookkeeping, not the
# decoding) as a folder of files and as tar shards of 10,000, each read by
# `moco bench-data --images 2048` (start-up = opening DATA: the folder's
# listing or the shards' headers; then 2,048 images decoded and augmented).
# Peak memory is the maximum resident set from /usr/bin/time -v; each
# source also at a tenth of N (a list of the first N/10 files, the first
# tenth of the shards), so that growth with N shows.
#   bench/shards_million.sh [BUILD_DIR] [OUT_DIR] [N]
#   (defaults: build, /tmp/moco-million, 1000000; needs ~6 GB of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-/tmp/moco-million}
N=${3:-1000000}
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt install time)"; exit 1; }
mkdir -p "$OUT"
if [[ ! -f "$OUT/folder.done" ]]; then
  rm -rf "$OUT/folder"
  /usr/bin/python3 - "$OUT/folder" "$N" <<'PY'
import os, sys, zlib, struct
out, n = sys.argv[1], int(sys.argv[2])
def png(w, h):
    raw = b"".join(b"\x00" + bytes((x * 16 + y) % 256 for x in range(w * 3)) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
data = png(16, 16)
for i in range(n):
    d = os.path.join(out, "%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "%07d.png" % i), "wb") as f:
        f.write(data)
PY
  touch "$OUT/folder.done"
fi
if [[ ! -f "$OUT/shards.done" ]]; then
  rm -rf "$OUT/shards"
  "$BUILD/moco" shard "$OUT/folder" "$OUT/shards" --shard-size 10000 2>&1 | tail -1
  touch "$OUT/shards.done"
fi
measure() {  # NAME DATA
  local log="$OUT/$1.time"
  /usr/bin/time -v "$BUILD/moco" bench-data "$2" --images 2048 --crop-size 16 -b 64 -j 1 \
    > "$OUT/$1.out" 2> "$log"
  printf "%-8s wall %s (m:ss), peak RSS %s MB; %s\n" "$1" \
    "$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")" \
    "$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log")" \
    "$(grep -m1 ' data: ' "$log" | sed 's/.*data: //')"
}
# The same as lists (absolute paths), of all N files and of the first
# tenth: memory per listed file = the difference / (N - N/10).
find "$OUT/folder" -name '*.png' | sort > "$OUT/list-all.txt"
head -n $((N / 10)) "$OUT/list-all.txt" > "$OUT/list-tenth.txt"
last=$(( (N + 9999) / 10000 - 1 ))
tenth=$(( (N / 10 + 9999) / 10000 - 1 ))
echo "N = $N tiny images"
measure folder "$OUT/folder"
measure list-all "$OUT/list-all.txt"
measure list-10% "$OUT/list-tenth.txt"
measure shards "$OUT/shards/train-{000000..$(printf %06d $last)}.tar"
measure shd-10% "$OUT/shards/train-{000000..$(printf %06d $tenth)}.tar"
