#!/usr/bin/env bash
# Starts a 2-process run with `moco pretrain --nproc-per-node 2`, waits until
# it trains, sends SIGNAL (KILL: the rank dies; STOP: it hangs) to rank 1, and
# prints the launcher's exit status and how long the rest took to stop.
#   fault.sh MOCO DATA OUT SIGNAL TIMEOUT_S
set -u
moco=$1 data=$2 out=$3 sig=$4 timeout=$5
"$moco" pretrain "$data" --nproc-per-node 2 -a resnet18 --width 8 -b 16 \
  --bn-splits 2 --moco-k 32 --epochs 50 --threads 1 -j 1 -p 1 --no-progress \
  --knn-freq 0 --dist-timeout "$timeout" --output "$out/run" > "$out/log" 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
  grep -q "step" "$out/log" 2>/dev/null && break
  sleep 0.1
done
rank1=""
for p in $(pgrep -P "$launcher"); do
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "RANK=1"; then rank1=$p; fi
done
[ -n "$rank1" ] || { echo "no rank 1 found"; kill -9 "$launcher"; exit 2; }
start=$(date +%s.%N)
kill "-$sig" "$rank1"
wait "$launcher"
rc=$?
end=$(date +%s.%N)
echo "launcher_rc=$rc seconds=$(echo "$end - $start" | bc)"
