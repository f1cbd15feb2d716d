#!/usr/bin/env bash
# lightly's MoCo v2 (bench/lightly_moco_train.py: built from lightly's own
# parts) against `moco pretrain`, both with the quick preset's recipe and
# budget on Fashion-MNIST, seed by seed, one after the other on the same
# machine with the same threads, so the two sides see the same machine.
# Seeds already done in OUT_DIR are kept, so it can be stopped and rerun.
#
#   bench/lightly_compare.sh [OUT_DIR]     (default runs/lightly-compare)
#   env: SEEDS (default "0 1 2"), THREADS (default 2), EPOCHS (default 6),
#        MOCO_VENV (the pip build's venv; lightly 1.6.0 is added to it,
#        with its torch pinned), BUILD_DIR (default build-torch2)
# Writes OUT_DIR/{moco,lightly}-seedS.log and OUT_DIR/summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/lightly-compare}
seeds=${SEEDS:-0 1 2}
threads=${THREADS:-2}
epochs=${EPOCHS:-6}
MOCO_TORCH=pip
source scripts/torch_choice.sh
build=${BUILD_DIR:-build-torch2}
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
venv=${MOCO_VENV:-${XDG_CACHE_HOME:-$home/.cache}/moco/venv-torch-2.11.0}
py=$venv/bin/python
[[ -x $build/moco ]] || { echo "lightly_compare: no $build/moco (run scripts/setup.sh --torch pip)" >&2; exit 2; }
[[ -x $py ]] || { echo "lightly_compare: no venv at $venv (run scripts/setup.sh --torch pip)" >&2; exit 2; }
if ! "$py" -c "import lightly, sys; sys.exit(lightly.__version__ != '1.6.0')" 2>/dev/null; then
  # Pinning torch keeps pip from replacing the venv's torch to suit lightly.
  torch_v=$("$py" -c "import torch; print(torch.__version__.split('+')[0])")
  tv_v=$("$py" -c "import torchvision; print(torchvision.__version__.split('+')[0])")
  "$py" -m pip install -q lightly==1.6.0 "torch==$torch_v" "torchvision==$tv_v"
fi
mkdir -p "$out"
# A seed whose run finished is kept: a stopped comparison goes on from the
# first run that did not.
for s in $seeds; do
  if ! grep -q "final kNN top-1" "$out/moco-seed$s.log" 2>/dev/null; then
    echo "lightly_compare: seed $s: moco" >&2
    rm -rf "$out/moco-seed$s"
    "$build/moco" pretrain --seed "$s" --epochs "$epochs" --threads "$threads" \
      --no-progress -o "$out/moco-seed$s" > "$out/moco-seed$s.log" 2>&1
  fi
  if ! grep -q knn_top1 "$out/lightly-seed$s.json" 2>/dev/null; then
    echo "lightly_compare: seed $s: lightly" >&2
    (cd bench && "$py" lightly_moco_train.py --seed "$s" --epochs "$epochs" \
       --threads "$threads") > "$out/lightly-seed$s.json.part" 2> "$out/lightly-seed$s.log"
    mv "$out/lightly-seed$s.json.part" "$out/lightly-seed$s.json"
  fi
done
"$py" - "$out" $seeds <<'PY'
import json, re, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
rows = {"moco": [], "lightly": []}
for s in seeds:
    log = open(f"{out}/moco-seed{s}.log").read()
    knn = float(re.findall(r"final kNN top-1 ([0-9.]+)%", log)[-1])
    end = r"(?:done|stopped at step [0-9]+ of [0-9]+)"
    ips = [float(x) for x in re.findall(end + r": .*?([0-9.]+) img/s", log)]
    secs = [float(x) for x in re.findall(r"steps in ([0-9.]+)s", log)]
    steps = [int(x) for x in re.findall(end + r": loss [0-9.]+, ([0-9]+) steps", log)]
    rows["moco"].append((knn, sum(steps) * 128 / sum(secs), sum(secs)))
    j = json.loads(open(f"{out}/lightly-seed{s}.json").read().strip().splitlines()[-1])
    rows["lightly"].append((j["knn_top1"], j["images_per_s"], j["train_seconds"]))
with open(f"{out}/summary.md", "w") as f:
    f.write("| implementation | seeds | kNN top-1 (mean ± std) | per seed | "
            "images/s (mean) | training time per seed |\n|---|---:|---:|---|---:|---:|\n")
    for name, r in rows.items():
        k = [x[0] for x in r]
        sd = statistics.stdev(k) if len(k) > 1 else 0.0
        f.write(f"| {name} | {len(r)} | {statistics.mean(k):.2f}% ± {sd:.2f} | "
                f"{', '.join(f'{x:.2f}' for x in k)} | "
                f"{statistics.mean(x[1] for x in r):.0f} | "
                f"{statistics.mean(x[2] for x in r) / 60:.1f} min |\n")
    ratio = statistics.mean(x[1] for x in rows["moco"]) / \
        statistics.mean(x[1] for x in rows["lightly"])
    f.write(f"\nmoco / lightly images/s: {ratio:.2f}x\n")
print(open(f"{out}/summary.md").read())
PY
