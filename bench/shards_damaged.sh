#!/usr/bin/env bash
# Load held: N tiny samples (16 x 16 PNGs) in tar shards of 10,000, written
# by Python's tarfile with 1% of the samples damaged at random (seeded):
# garbage image bytes, zero-byte images, or a label that is not a class
# index. `moco bench-data` streams them (a warm-up epoch, then one with 1
# worker and one with -j 2): every pass must end, with every damaged
# sample named in a warning, and peak memory must not grow with N (the
# same run on the first tenth of the shards beside it).
#   bench/shards_damaged.sh [BUILD_DIR] [OUT_DIR] [N]
#   (defaults: build, /tmp/moco-damaged, 1000000; ~1.3 GB of disk)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=${2:-/tmp/moco-damaged}
N=${3:-1000000}
command -v /usr/bin/time >/dev/null || { echo "needs /usr/bin/time (apt install time)"; exit 1; }
mkdir -p "$OUT"
if [[ ! -f "$OUT/shards.done" ]]; then
  rm -rf "$OUT/shards"
  /usr/bin/python3 - "$OUT/shards" "$N" <<'PY'
import io, json, os, random, struct, sys, tarfile, zlib
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out, exist_ok=True)
def png(w, h):
    raw = b"".join(b"\x00" + bytes((x * 16 + y) % 256 for x in range(w * 3)) for y in range(h))
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
good = png(16, 16)
rng = random.Random(0)
damaged = {"garbage": [], "empty": [], "label": []}
def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
per = 10000
for s in range((n + per - 1) // per):
    with tarfile.open(os.path.join(out, "train-%06d.tar" % s), "w", format=tarfile.USTAR_FORMAT) as tar:
        for i in range(s * per, min(n, (s + 1) * per)):
            key, image, label = "%07d" % i, good, str(i % 10).encode()
            if rng.random() < 0.01:
                kind = rng.choice(sorted(damaged))
                damaged[kind].append(key)
                if kind == "garbage":
                    image = bytes(rng.getrandbits(8) for _ in range(len(good)))
                elif kind == "empty":
                    image = b""
                else:
                    label = b"3.5"
            add(tar, key + ".png", image)
            add(tar, key + ".cls", label)
with open(os.path.join(out, "..", "damaged.json"), "w") as f:
    json.dump(damaged, f)
print("damaged:", {k: len(v) for k, v in damaged.items()})
PY
  touch "$OUT/shards.done"
fi
last=$(( (N + 9999) / 10000 - 1 ))
tenth=$(( (N / 10 + 9999) / 10000 - 1 ))
measure() {  # NAME DATA
  local log="$OUT/$1.log"
  /usr/bin/time -v "$BUILD/moco" bench-data "$2" --images 0 --crop-size 16 -b 64 -j 2 \
    --shuffle-buffer 1000 > "$OUT/$1.out" 2> "$log"
  local named labels
  named=$(grep -c "skipping unreadable image" "$log" || true)
  labels=$(grep -c "ignoring a label" "$log" || true)
  printf "%-7s wall %s (m:ss), peak RSS %s MB; warnings over the 3 passes: %s unreadable images, %s labels\n" \
    "$1" "$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")" \
    "$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log")" \
    "$named" "$labels"
  grep -E "images/s" "$OUT/$1.out" | sed 's/^/        /'
}
echo "N = $N samples, 1% damaged: $(cat "$OUT/damaged.json" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print({k: len(v) for k, v in d.items()})')"
measure tenth "$OUT/shards/train-{000000..$(printf %06d $tenth)}.tar"
measure all "$OUT/shards/train-{000000..$(printf %06d $last)}.tar"
# Every damaged sample of the full run named: each key of damaged.json in a
# warning of the last pass (the -j 2 epoch).
/usr/bin/python3 - "$OUT" <<'PY'
import json, re, sys
out = sys.argv[1]
d = json.load(open(out + "/damaged.json"))
log = open(out + "/all.log").read()
named = set(re.findall(r"train-\d+\.tar:(\d{7})\.png", log)) | set(re.findall(r":(\d{7})\.cls", log))
want = set(d["garbage"]) | set(d["empty"]) | set(d["label"])
print("damaged samples named in the warnings: %d of %d" % (len(want & named), len(want)))
sys.exit(0 if want <= named else 1)
PY
