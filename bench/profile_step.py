#!/usr/bin/env python3
"""Where a MoCo step's time goes, ours against a Python peer, op by op.

Profiles one step of each side after its warm-up, with the same workload
flags as bench/run_speed.py: ours through moco_bench_step's
MOCO_BENCH_PROFILE (LibTorch's autograd profiler, a chrome trace), the peer
through torch.profiler (the same kind of trace). Both traces are reduced the
same way: each ATen op's self time (its time less that of the ops it
called, per thread), summed by name; the table lists the ops that take most
of either side, with the share of the step each takes.

  bench/profile_step.py --ours build-torch2 --python PY [--compile]
      [--workload small|r50] [--amp off|bf16] [--top 15] -- [extra step flags]
"""
import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from run_speed import workload_args  # noqa: E402

PEER_PROFILE = r"""
import runpy, sys, torch
out = sys.argv.pop(1)
script = sys.argv.pop(1)
sys.argv[0] = script
steps = {"n": 0}
orig = torch.optim.SGD.step
prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
# The peer script's own loop runs warm-up, then timed steps: profile the
# first timed step, as ours profiles one step after its warm-up.
warm = int(sys.argv[sys.argv.index("--warmup") + 1])
def step(self, *a, **k):
    r = orig(self, *a, **k)
    steps["n"] += 1
    if steps["n"] == warm:
        prof.__enter__()
    elif steps["n"] == warm + 1:
        prof.__exit__(None, None, None)
        prof.export_chrome_trace(out)
    return r
torch.optim.SGD.step = step
runpy.run_path(script, run_name="__main__")
"""


def self_times(trace_path):
    """{op name: self seconds} and the step's span in seconds."""
    with open(trace_path) as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    by_tid = collections.defaultdict(list)
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        cat = e.get("cat", "")
        if cat and cat not in ("cpu_op", "Operator", "operator"):
            continue
        by_tid[(e.get("pid"), e.get("tid"))].append(
            (float(e["ts"]), float(e["dur"]), e["name"]))
    total = collections.Counter()
    lo, hi = float("inf"), 0.0
    for evs in by_tid.values():
        evs.sort(key=lambda x: (x[0], -x[1]))
        stack = []  # [end, name, child time]
        def close(upto):
            while stack and stack[-1][0] <= upto:
                end, name, child, dur = stack.pop()
                total[name] += (dur - child) / 1e6
                if stack:
                    stack[-1][2] += dur
        for ts, dur, name in evs:
            lo, hi = min(lo, ts), max(hi, ts + dur)
            close(ts)
            stack.append([ts + dur, name, 0.0, dur])
        close(float("inf"))
    return total, (hi - lo) / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", default="build-torch2")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--workload", default="small")
    ap.add_argument("--amp", default="off")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("extra", nargs="*")
    a = ap.parse_args()
    base = workload_args(a.workload, "cpu", a.threads) + [
        "--amp", a.amp, "--steps", "1", "--warmup", "2"] + a.extra
    tmp = tempfile.mkdtemp()
    ours_trace, peer_trace = os.path.join(tmp, "ours.json"), \
        os.path.join(tmp, "peer.json")
    env = dict(os.environ, MOCO_BENCH_PROFILE=ours_trace)
    subprocess.run([os.path.join(a.ours, "moco_bench_step")] + base, env=env,
                   check=True, capture_output=True)
    subprocess.run([a.python, "-c", PEER_PROFILE, peer_trace,
                    os.path.join(HERE, "python_moco_step.py")] + base +
                   (["--compile"] if a.compile else []),
                   check=True, capture_output=True, cwd=HERE)
    ours, ours_span = self_times(ours_trace)
    peer, peer_span = self_times(peer_trace)
    print(f"one step, {a.workload} {a.amp}: ours {ours_span:.2f} s of ops "
          f"({sum(ours.values()):.2f} s self time summed over threads), "
          f"peer {peer_span:.2f} s ({sum(peer.values()):.2f} s)")
    names = sorted(set(ours) | set(peer),
                   key=lambda n: -max(ours.get(n, 0), peer.get(n, 0)))[:a.top]
    print("| op | ours s | share | peer s | share | peer - ours s |")
    print("|---|---:|---:|---:|---:|---:|")
    so, sp = sum(ours.values()) or 1, sum(peer.values()) or 1
    for n in names:
        o, p = ours.get(n, 0.0), peer.get(n, 0.0)
        print(f"| `{n}` | {o:.3f} | {100 * o / so:.1f}% | {p:.3f} | "
              f"{100 * p / sp:.1f}% | {p - o:+.3f} |")


if __name__ == "__main__":
    main()
