#!/usr/bin/env bash
# Starts a 2-process run with `moco pretrain --nproc-per-node 2`, waits until
# it trains, sends SIGNAL to TARGET (rank1: KILL makes a rank die, STOP makes
# it hang; launcher: the launcher itself is killed or asked to stop), and
# prints the launcher's exit status, how long the rest took to stop, and how
# many ranks were still alive 3 s after the launcher ended.
#   fault.sh MOCO DATA OUT SIGNAL TIMEOUT_S [TARGET]
set -u
set -m  # the run in its own process group, SIGINT not ignored as for a script's jobs
moco=$1 data=$2 out=$3 sig=$4 timeout=$5 target=${6:-rank1}
"$moco" pretrain "$data" --nproc-per-node 2 -a resnet18 --width 8 -b 16 \
  --bn-splits 2 --moco-k 32 --epochs 50 --threads 1 -j 1 -p 1 --no-progress \
  --knn-freq 0 --dist-timeout "$timeout" --output "$out/run" > "$out/log" 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
  grep -q "step" "$out/log" 2>/dev/null && break
  sleep 0.1
done
rank1=""
ranks=$(pgrep -P "$launcher")
for p in $ranks; do
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "RANK=1"; then rank1=$p; fi
done
[ -n "$rank1" ] || { echo "no rank 1 found"; kill -9 "$launcher"; exit 2; }
start=$(date +%s.%N)
if [ "$target" = launcher ]; then kill "-$sig" "$launcher"; else kill "-$sig" "$rank1"; fi
wait "$launcher"
rc=$?
end=$(date +%s.%N)
sleep 3
left=0
for p in $ranks; do kill -0 "$p" 2>/dev/null && left=$((left + 1)); done
for p in $ranks; do kill -9 "$p" 2>/dev/null; done
echo "launcher_rc=$rc seconds=$(echo "$end - $start" | bc) ranks_left=$left"
