#!/usr/bin/env bash
# Our MoCo step against the Python peer's, same model, data, batch, threads.
#   bench/run_step_bench.sh [BUILD_DIR]   (env: STEPS, ROUNDS, THREADS, BATCH, K)
# Default: small-image ResNet-18 on Fashion-MNIST, batch 256, K 4096,
# 2 threads, fp32 on both sides.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
STEPS=${STEPS:-20}
THREADS=${THREADS:-2}
BATCH=${BATCH:-256}
K=${K:-4096}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
common=(--arch resnet18 --stem small --channels 1 --size 28 --batch "$BATCH"
        --moco-k "$K" --threads "$THREADS" --steps "$STEPS" --bn-splits 8
        --data "$DATA")
ours_only=(--breakdown)
ROUNDS=${ROUNDS:-2}
# Alternate the two, ROUNDS times, so a drift in the machine's speed hits both.
results=()
for ((r = 0; r < ROUNDS; r++)); do
  ours=$("$BUILD/moco_bench_step" "${common[@]}" "${ours_only[@]}")
  peer=$(/usr/bin/python3 bench/python_moco_step.py "${common[@]}")
  echo "ours: $ours"
  echo "peer: $peer"
  results+=("$ours" "$peer")
done
/usr/bin/python3 - "${results[@]}" <<'PY'
import json, statistics, sys
runs = [json.loads(a) for a in sys.argv[1:]]
ours, peers = runs[0::2], runs[1::2]
o = dict(ours[0])
for key in ("step_s", "momentum_update_s", "enqueue_s", "shuffle_s",
            "split_bn_extra_s", "split_bn_layer_extra_s"):
    o[key] = statistics.mean(r[key] for r in ours)
# Split-BN's cost: measured layer by layer (the whole-step difference is
# within step-to-step noise); a negative value is noise around zero.
o["moco_specific_share"] = (o["momentum_update_s"] + o["enqueue_s"] +
                            o["shuffle_s"] +
                            max(0.0, o["split_bn_layer_extra_s"])) / o["step_s"]
o["images_per_s"] = o["batch"] / o["step_s"]
p = {"step_s": statistics.mean(r["step_s"] for r in peers)}
p["images_per_s"] = o["batch"] / p["step_s"]
print(f"moco (C++)      {o['images_per_s']:8.1f} img/s  step {o['step_s']*1e3:7.1f} ms")
print(f"python peer     {p['images_per_s']:8.1f} img/s  step {p['step_s']*1e3:7.1f} ms")
print(f"ratio           {o['images_per_s'] / p['images_per_s']:8.3f}x")
print("where the MoCo-specific time goes (ms per step): "
      f"momentum update {o['momentum_update_s']*1e3:.2f}, "
      f"shuffle/unshuffle {o['shuffle_s']*1e3:.2f}, "
      f"enqueue {o['enqueue_s']*1e3:.2f}, "
      f"split-BN over plain BN {o['split_bn_layer_extra_s']*1e3:.1f} "
      f"(layer by layer; whole-step difference {o['split_bn_extra_s']*1e3:.0f}, "
      "within step noise) "
      f"-> {100*o['moco_specific_share']:.1f}% of the step")
PY
