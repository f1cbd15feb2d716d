#!/usr/bin/env python3
"""The speed harness: our MoCo step against the Python peers', in one run.

Sides (each a process per configuration, so each has its own peak memory):
  ours:  bench/moco_bench_step from one or more builds (--ours LABEL=BUILD),
         e.g. Debian's LibTorch 1.13 and PyTorch 2.11's LibTorch;
  peers: bench/python_moco_step.py (the official step's semantics) under one
         or more Pythons (--peer LABEL=PYTHON[:compile]); ":compile" puts the
         encoders through torch.compile, whose compile time is reported apart.
Every configuration runs every side before the next configuration starts,
and the side order turns by one each configuration, so drift in the
machine's speed hits all sides alike.

Workloads:
  small: small-image ResNet-18 (3x3 stem, no max-pool) on Fashion-MNIST
         28 px, batch 256, K 4096;
  r50:   ResNet-50 at 224 px, batch 64 on the CPU / 256 on a GPU, K 65536,
         synthetic images (already on the GPU there);
each in fp32 and in mixed precision (CPU: bf16 autocast, and bf16 +
channels-last for ours, which also runs fp32 channels-last; GPU: bf16 and
fp16, channels-last). Prints images/s,
ratios to the reference peers at the same precision, the achieved TFLOP/s
and its share of the device's peak, and peak memory (host RSS; GPU memory).

  bench/run_speed.py [--ours 2.11=build-torch2 ...] [--peer 2.11=PY ...]
                     [--device cpu|cuda] [--rounds 1] [--steps 3]
                     [--workloads small,r50] [--json OUT.jsonl]

FLOP per image for a MoCo step (query forward + backward = 3 forwards, key
forward = 1): 32.7 GFLOP for ResNet-50 at 224, 3.7 GFLOP for the small
ResNet-18 at 28 (4 forward passes x 2 FLOP per multiply-add). The CPU peak
is from the cores and the base clock (/proc/cpuinfo) at 64 fp32
FLOP/cycle/core (AVX-512, two FMA units) and 1024 bf16 FLOP/cycle/core with
AMX (256 with AVX512_BF16 only, else the fp32 rate); override with
--peak-fp32 / --peak-bf16 (TFLOP/s).
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
    unit = ("AMX" if "amx_bf16" in flags else
            "AVX512_BF16" if "avx512_bf16" in flags else "no bf16 unit")
    return cores * ghz * fp32 / 1000, cores * ghz * bf16 / 1000, cores, ghz, unit


def workload_args(name, device, threads):
    common = ["--threads", str(threads), "--device", device]
    if name == "small":
        fm = "/usr/share/datasets/fashion-mnist"  # Debian's; else synthetic
        data = ["--data", fm] if os.path.isdir(fm) else []
        return common + data + ["--arch", "resnet18", "--stem", "small",
                                "--channels", "1", "--size", "28",
                                "--batch", "256", "--moco-k", "4096",
                                "--bn-splits", "8" if device == "cpu" else "1"]
    batch = "64" if device == "cpu" else "256"
    # One device: the CPU runs the official CIFAR demo's split-BN (8 groups
    # of 8); on one GPU the official main_moco.py has plain BN (shuffle
    # across a single GPU is a no-op), which channels-last can also use.
    return common + ["--arch", "resnet50", "--stem", "imagenet",
                     "--channels", "3", "--size", "224", "--batch", batch,
                     "--moco-k", "65536",
                     "--bn-splits", "8" if device == "cpu" else "1"]


ONLY = set()  # --precisions


def configs(device):
    """(precision label, args, whether peers run it too)."""
    return [c for c in all_configs(device) if not ONLY or c[0] in ONLY]


def all_configs(device):
    if device == "cpu":
        # The official SplitBatchNorm views NCHW memory: the peers cannot
        # run it channels-last.
        return [("fp32", [], True),
                ("fp32+cl", ["--channels-last"], False),
                ("bf16", ["--amp", "bf16"], True),
                ("bf16+cl", ["--amp", "bf16", "--channels-last"], False)]
    return [("fp32", [], True),
            ("bf16+cl", ["--amp", "bf16", "--channels-last"], True),
            ("fp16+cl", ["--amp", "fp16", "--channels-last"], True)]


def precision_of(label):
    return label.split("+")[0]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout + p.stderr)
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def parse_sides(a):
    """[(kind, label, command, extra args)]"""
    sides = []
    for spec in a.ours or ["=" + a.build]:
        label, _, build = spec.partition("=")
        sides.append(("ours", f"ours {label}".strip(),
                      [os.path.join(build, "moco_bench_step")], []))
    for spec in a.peer or ["=" + sys.executable]:
        label, _, rest = spec.partition("=")
        label = f"peer {label}".strip()
        python, _, mode = rest.partition(":")
        if mode not in ("", "compile"):
            raise SystemExit(f"--peer {spec}: expected LABEL=PYTHON[:compile]")
        extra = ["--compile"] if mode == "compile" else []
        sides.append(("peer", label,
                      [python, os.path.join(HERE, "python_moco_step.py")],
                      extra))
    return sides


def refs_of(a, sides):
    names = [label for _, label, _, _ in sides]
    refs = [r if r.startswith("peer") else f"peer {r}" for r in a.reference] \
        or [label for kind, label, _, _ in sides if kind == "peer"]
    for r in refs:
        if r not in names:
            raise SystemExit(f"--reference {r}: no such peer (have {names})")
    return refs


def sides_of(results):
    """The sides of saved results, in their first order."""
    seen = []
    for x in results:
        if x["side"] not in [s[1] for s in seen]:
            seen.append((x["kind"], x["side"], None, None))
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", action="append", default=[],
                    help="LABEL=BUILD_DIR (repeatable)")
    ap.add_argument("--peer", action="append", default=[],
                    help="LABEL=PYTHON[:compile] (repeatable)")
    ap.add_argument("--build", default="build",
                    help="the one build of ours when --ours is not given")
    ap.add_argument("--reference", action="append", default=[],
                    help="peer labels the ratios are taken against "
                         "(default: every peer)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--compile-warmup", type=int, default=2,
                    help="warm-up steps of a torch.compile side (the first "
                         "compiles forward and backward)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workloads", default="small,r50")
    ap.add_argument("--precisions", default="",
                    help="only these precision labels, e.g. bf16,bf16+cl "
                         "(default: all of the device's)")
    ap.add_argument("--peak-fp32", type=float, default=0.0)
    ap.add_argument("--peak-bf16", type=float, default=0.0)
    ap.add_argument("--json", default="")
    ap.add_argument("--report-only", nargs="+", default=[],
                    help="print the tables of saved --json files, run nothing")
    a = ap.parse_args()
    ONLY.update(p for p in a.precisions.split(",") if p)
    if a.device == "cpu":
        p32, p16, cores, ghz, unit = cpu_peaks()
        where = f"{cores} cores at {ghz:.2f} GHz, bf16 on {unit}"
    else:
        # H100/H200 SXM class: dense bf16/fp16 ~790-990 TFLOP/s; fp32 runs
        # as TF32 in cuDNN by default (~400).
        p32, p16, where = 395.0, 790.0, "GPU (default peaks for H100/H200)"
    p32 = a.peak_fp32 or p32
    p16 = a.peak_bf16 or p16
    print(f"peaks: fp32 {p32:.3f} TFLOP/s, mixed {p16:.3f} TFLOP/s "
          f"({where}); {a.threads} threads", flush=True)
    sides = parse_sides(a)
    names = [label for _, label, _, _ in sides]
    if len(set(names)) != len(names):
        raise SystemExit(f"two sides have the same label: {names}")
    refs = refs_of(a, sides)

    if a.report_only:
        results = []
        for path in a.report_only:
            with open(path) as f:
                results += [json.loads(line) for line in f if line.strip()]
        report(a, sides_of(results), refs_of(a, sides_of(results)), results,
               p32, p16)
        return
    results = []
    turn = 0
    # Written as each run ends, so a stopped run keeps what it measured.
    out = open(a.json, "w") if a.json else None
    for r in range(a.rounds):
        for w in a.workloads.split(","):
            base = workload_args(w, a.device, a.threads) + ["--steps",
                                                            str(a.steps)]
            for label, extra, peers_too in configs(a.device):
                todo = [s for s in sides if s[0] == "ours" or peers_too]
                todo = todo[turn % len(todo):] + todo[:turn % len(todo)]
                turn += 1
                for kind, side, cmd, side_extra in todo:
                    warm = a.compile_warmup if "--compile" in side_extra \
                        else a.warmup
                    res = run(cmd + base + ["--warmup", str(warm)] + extra +
                              side_extra)
                    res.update(workload=w, kind=kind, side=side,
                               precision=label, round=r)
                    results.append(res)
                    if out:
                        out.write(json.dumps(res) + "\n")
                        out.flush()
                    comp = res.get("compile_s", 0.0)
                    print(f"round {r + 1} {w:5s} {side:19s} "
                          f"{label:8s} {res['images_per_s']:8.1f} img/s  "
                          f"rss {res['peak_rss_mib']:7.0f} MiB" +
                          (f"  compile {comp:.0f} s" if comp else ""),
                          flush=True)
    report(a, sides, refs, results, p32, p16)


def report(a, sides, refs, results, p32, p16):
    def mean(w, side, label, key):
        v = [x.get(key, 0.0) for x in results if x["workload"] == w and
             x["side"] == side and x["precision"] == label]
        return statistics.mean(v) if v else None

    gpu = a.device != "cpu"
    for w in dict.fromkeys(x["workload"] for x in results):
        print(f"\n### {w}: {results[0]['device'] if results else ''}, "
              f"{GFLOP_PER_IMAGE[w]} GFLOP/image")
        head = ["side", "precision", "images/s"] + \
            [f"vs {r}" for r in refs] + ["TFLOP/s", "share of peak",
                                         "peak RSS MiB", "compile s"] + \
            (["peak GPU MiB"] if gpu else [])
        print("| " + " | ".join(head) + " |")
        print("|---|---|" + "---:|" * (len(head) - 2))
        for label, _, _ in configs(a.device):
            for kind, side, _, _ in sides:
                ips = mean(w, side, label, "images_per_s")
                if ips is None:
                    continue
                row = [side, label, f"{ips:.1f}"]
                for ref in refs:
                    # The peers' same precision (the nearest: without
                    # channels-last where they cannot run it).
                    same = mean(w, ref, label, "images_per_s") or \
                        mean(w, ref, precision_of(label), "images_per_s")
                    row.append(f"{ips / same:.2f}x" if same and side != ref
                               else "")
                tflops = ips * GFLOP_PER_IMAGE[w] / 1000
                peak = p32 if label == "fp32" else p16
                comp = mean(w, side, label, "compile_s")
                row += [f"{tflops:.3f}", f"{100 * tflops / peak:.1f}%",
                        f"{mean(w, side, label, 'peak_rss_mib'):.0f}",
                        f"{comp:.0f}" if comp else ""]
                if gpu:
                    row.append(f"{mean(w, side, label, 'peak_gpu_mib'):.0f}")
                print("| " + " | ".join(row) + " |")
        # Best of ours against each reference's best, precision by precision.
        print()
        for prec in sorted({precision_of(l) for l, _, _ in configs(a.device)}):
            def best(pred):
                cands = [(mean(w, s, l, "images_per_s"), f"{s} {l}")
                         for k, s, _, _ in sides if pred(k, s)
                         for l, _, _ in configs(a.device)
                         if precision_of(l) == prec]
                cands = [c for c in cands if c[0]]
                return max(cands) if cands else None
            ours = best(lambda k, s: k == "ours")
            if not ours:
                continue
            parts = []
            for ref in refs:
                theirs = best(lambda k, s: s == ref)
                if theirs:
                    parts.append(f"{ours[0] / theirs[0]:.2f}x {ref} best "
                                 f"({theirs[1]})")
            print(f"- {w} {prec}: ours best ({ours[1]}) = " +
                  "; ".join(parts))


if __name__ == "__main__":
    main()
