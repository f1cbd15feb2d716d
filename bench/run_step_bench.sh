#!/usr/bin/env bash
# Our MoCo step against the Python peer's, same model, data, batch, threads.
#   bench/run_step_bench.sh [BUILD_DIR]   (env: STEPS, THREADS, BATCH, K)
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
ours=$("$BUILD/moco_bench_step" "${common[@]}")
peer=$(/usr/bin/python3 bench/python_moco_step.py "${common[@]}")
echo "ours: $ours"
echo "peer: $peer"
/usr/bin/python3 - "$ours" "$peer" <<'PY'
import json, sys
o, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"moco (C++)      {o['images_per_s']:8.1f} img/s  step {o['step_s']*1e3:7.1f} ms")
print(f"python peer     {p['images_per_s']:8.1f} img/s  step {p['step_s']*1e3:7.1f} ms")
print(f"ratio           {o['images_per_s'] / p['images_per_s']:8.3f}x")
print("where the MoCo-specific time goes (ms per step): "
      f"momentum update {o['momentum_update_s']*1e3:.2f}, "
      f"shuffle/unshuffle {o['shuffle_s']*1e3:.2f}, "
      f"enqueue {o['enqueue_s']*1e3:.2f}, "
      f"split-BN over plain BN {o['split_bn_extra_s']*1e3:.1f} "
      f"-> {100*o['moco_specific_share']:.1f}% of the step")
PY
