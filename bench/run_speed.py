#!/usr/bin/env python3
"""The speed harness: our MoCo step against the Python peer's, in one run.

Runs, on this machine, alternating ours and the peer's so drift in the
machine's speed hits both alike, each configuration in its own process (so
each has its own peak memory):
  (a) small: small-image ResNet-18 (3x3 stem, no max-pool) on Fashion-MNIST
      28 px, batch 256, K 4096;
  (b) r50: ResNet-50 at 224 px, batch 64 on the CPU / 256 on a GPU, K 65536,
      synthetic images (already on the GPU there);
each in fp32 and in mixed precision (CPU: bf16, and bf16 + channels-last for
ours; GPU: bf16 and fp16, channels-last). Prints images/s, the ratio to the
peer at the same precision and to the peer's fp32, the achieved TFLOP/s and
its share of the device's peak, and peak memory (host RSS; GPU memory).

  bench/run_speed.py [--build build] [--device cpu|cuda] [--rounds 1]
                     [--steps 3] [--workloads small,r50] [--json OUT.jsonl]

FLOP per image for a MoCo step (query forward + backward = 3 forwards, key
forward = 1): 32.7 GFLOP for ResNet-50 at 224, 3.7 GFLOP for the small
ResNet-18 at 28 (4 forward passes x 2 FLOP per multiply-add). The CPU peak is from the
cores and the base clock (/proc/cpuinfo) at 64 fp32 FLOP/cycle/core
(AVX-512, two FMA units) and 1024 bf16 FLOP/cycle/core with AMX (256 with
AVX512_BF16 only); override with --peak-fp32 / --peak-bf16 (TFLOP/s).
The peer runs under the Python that runs this script (Debian's
/usr/bin/python3 on the CPU machine).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GFLOP_PER_IMAGE = {"small": 3.7, "r50": 32.7}


def cpu_peaks():
    cores = os.cpu_count() or 1
    ghz, flags = 0.0, set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz") and not ghz:
                ghz = float(line.split(":")[1]) / 1000
            if line.startswith("flags") and not flags:
                flags = set(line.split(":")[1].split())
    fp32 = 64 if "avx512f" in flags else 32
    bf16 = 1024 if "amx_bf16" in flags else (256 if "avx512_bf16" in flags
                                              else fp32)
    return cores * ghz * fp32 / 1000, cores * ghz * bf16 / 1000, cores, ghz


def workload_args(name, device, threads):
    common = ["--threads", str(threads), "--device", device]
    if name == "small":
        fm = "/usr/share/datasets/fashion-mnist"  # Debian's; else synthetic
        data = ["--data", fm] if os.path.isdir(fm) else []
        return common + data + ["--arch", "resnet18", "--stem", "small",
                         "--channels", "1", "--size", "28", "--batch", "256",
                         "--moco-k", "4096", "--bn-splits",
                         "8" if device == "cpu" else "1"]
    batch = "64" if device == "cpu" else "256"
    # One device: the CPU runs the official CIFAR demo's split-BN (8 groups
    # of 8); on one GPU the official main_moco.py has plain BN (shuffle
    # across a single GPU is a no-op), which channels-last can also use.
    return common + ["--arch", "resnet50", "--stem", "imagenet",
                     "--channels", "3", "--size", "224", "--batch", batch,
                     "--moco-k", "65536", "--bn-splits",
                     "8" if device == "cpu" else "1"]


def configs(device):
    """(precision label, args, which sides run it)."""
    if device == "cpu":
        return [("fp32", [], "both"),
                ("bf16", ["--amp", "bf16"], "both"),
                # The official SplitBatchNorm views NCHW memory: the peer
                # cannot run it channels-last.
                ("bf16+cl", ["--amp", "bf16", "--channels-last"], "ours")]
    return [("fp32", [], "both"),
            ("bf16+cl", ["--amp", "bf16", "--channels-last"], "both"),
            ("fp16+cl", ["--amp", "fp16", "--channels-last"], "both")]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workloads", default="small,r50")
    ap.add_argument("--peak-fp32", type=float, default=0.0)
    ap.add_argument("--peak-bf16", type=float, default=0.0)
    ap.add_argument("--json", default="")
    a = ap.parse_args()
    if a.device == "cpu":
        p32, p16, cores, ghz = cpu_peaks()
        where = f"{cores} cores at {ghz:.2f} GHz"
    else:
        # H100/H200 SXM class: dense bf16/fp16 ~790-990 TFLOP/s; fp32 runs
        # as TF32 in cuDNN by default (~400).
        p32, p16, where = 395.0, 790.0, "GPU (default peaks for H100/H200)"
    p32 = a.peak_fp32 or p32
    p16 = a.peak_bf16 or p16
    print(f"peaks: fp32 {p32:.3f} TFLOP/s, bf16/fp16 {p16:.3f} TFLOP/s "
          f"({where})", flush=True)

    ours_bin = os.path.join(a.build, "moco_bench_step")
    peer = [sys.executable, os.path.join(HERE, "python_moco_step.py")]
    results = []  # dicts with workload, impl, precision, fields
    for r in range(a.rounds):
        for w in a.workloads.split(","):
            base = workload_args(w, a.device, a.threads) + [
                "--steps", str(a.steps), "--warmup", str(a.warmup)]
            for label, extra, sides in configs(a.device):
                for impl, cmd in (("ours", [ours_bin]), ("peer", peer)):
                    if sides == "ours" and impl == "peer":
                        continue
                    res = run(cmd + base + extra)
                    res.update(workload=w, side=impl, precision=label,
                               round=r)
                    results.append(res)
                    print(f"round {r + 1} {w:5s} {impl:4s} {label:8s} "
                          f"{res['images_per_s']:8.1f} img/s  "
                          f"rss {res['peak_rss_mib']:7.0f} MiB", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            for res in results:
                f.write(json.dumps(res) + "\n")

    def mean(w, side, label, key):
        v = [x[key] for x in results if x["workload"] == w and
             x["side"] == side and x["precision"] == label]
        return statistics.mean(v) if v else None

    for w in a.workloads.split(","):
        print(f"\n### {w}: {results[0]['device'] if results else ''}, "
              f"{GFLOP_PER_IMAGE[w]} GFLOP/image")
        print("| side | precision | images/s | vs peer, same precision | "
              "vs peer fp32 | TFLOP/s | share of peak | peak RSS MiB |"
              + (" peak GPU MiB |" if a.device != "cpu" else ""))
        print("|---|---|---:|---:|---:|---:|---:|---:|"
              + ("---:|" if a.device != "cpu" else ""))
        peer32 = mean(w, "peer", "fp32", "images_per_s")
        best = {}
        for label, _, sides in configs(a.device):
            for side in ("ours", "peer"):
                ips = mean(w, side, label, "images_per_s")
                if ips is None:
                    continue
                same = mean(w, "peer", label, "images_per_s")
                if side == "ours" and same is None:
                    # Compare with the peer's nearest: the same precision
                    # without channels-last.
                    same = mean(w, "peer", label.split("+")[0], "images_per_s")
                tflops = ips * GFLOP_PER_IMAGE[w] / 1000
                peak = p32 if label == "fp32" else p16
                rss = mean(w, side, label, "peak_rss_mib")
                gpu = mean(w, side, label, "peak_gpu_mib")
                ratio = f"{ips / same:.2f}x" if side == "ours" and same else ""
                vs32 = f"{ips / peer32:.2f}x" if peer32 else ""
                print(f"| {side} | {label} | {ips:.1f} | {ratio} | {vs32} | "
                      f"{tflops:.3f} | {100 * tflops / peak:.1f}% | "
                      f"{rss:.0f} |" +
                      (f" {gpu:.0f} |" if a.device != "cpu" else ""))
                if label != "fp32" and ips > best.get(side, (0, ""))[0]:
                    best[side] = (ips, label)
        if "ours" in best and peer32:
            print(f"\nours best ({best['ours'][1]}) / peer fp32: "
                  f"{best['ours'][0] / peer32:.2f}x; ours best / peer best "
                  f"mixed ({best.get('peer', (0, '-'))[1]}): "
                  f"{best['ours'][0] / max(best.get('peer', (1e-9,))[0], 1e-9):.2f}x")


if __name__ == "__main__":
    main()
