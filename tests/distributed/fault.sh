#!/usr/bin/env bash
# Starts a 2-process run with `moco pretrain --nproc-per-node 2`, waits until
# it trains, sends SIGNAL to TARGET (rank1: KILL makes a rank die, STOP makes
# it hang; launcher: the launcher itself is killed or asked to stop), and
# prints the launcher's exit status, how long the rest took to stop, and how
# many ranks were still alive once they had had 60 s to end after the
# launcher (the run is far longer than that: a rank left alive would train on).
# Every wait is on an event with a generous deadline, never a fixed sleep.
#   fault.sh MOCO DATA OUT SIGNAL TIMEOUT_S [TARGET]
set -u
set -m  # the run in its own process group, SIGINT not ignored as for a script's jobs
moco=$1 data=$2 out=$3 sig=$4 timeout=$5 target=${6:-rank1}
"$moco" pretrain "$data" --nproc-per-node 2 -a resnet18 --width 8 -b 16 \
  --bn-splits 2 --moco-k 32 --epochs 1000000 --threads 1 -j 1 -p 1 --no-progress \
  --knn-freq 0 --dist-timeout "$timeout" --output "$out/run" > "$out/log" 2>&1 &
launcher=$!
trained=0
for _ in $(seq 1 3000); do
  grep -q "step" "$out/log" 2>/dev/null && { trained=1; break; }
  kill -0 "$launcher" 2>/dev/null || break
  sleep 0.1
done
ranks=$(pgrep -P "$launcher")
if [ "$trained" != 1 ]; then
  echo "the run logged no step within 300 s"
  kill -9 "$launcher" $ranks 2>/dev/null
  exit 2
fi
rank1=""
for p in $ranks; do
  if tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "RANK=1"; then rank1=$p; fi
done
[ -n "$rank1" ] || { echo "no rank 1 found"; kill -9 "$launcher" $ranks; exit 2; }
start=$(date +%s.%N)
if [ "$target" = launcher ]; then kill "-$sig" "$launcher"; else kill "-$sig" "$rank1"; fi
wait "$launcher"
rc=$?
end=$(date +%s.%N)
left=0
for _ in $(seq 1 600); do
  left=0
  for p in $ranks; do
    # A zombie is gone: only its parent's wait is left.
    state=$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)
    [ -n "$state" ] && [ "$state" != Z ] && left=$((left + 1))
  done
  [ "$left" = 0 ] && break
  sleep 0.1
done
gone=$(date +%s.%N)
for p in $ranks; do kill -9 "$p" 2>/dev/null; done
echo "launcher_rc=$rc seconds=$(echo "$end - $start" | bc) ranks_left=$left" \
  "ranks_gone_after=$(echo "$gone - $end" | bc)"
