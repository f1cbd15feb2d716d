"""The Python peer's MoCo step (bench/moco_peer.py: the official code's
semantics in PyTorch + torchvision), timed for bench/run_speed.py. Mixed precision and
channels-last as a Python user would add them: torch.autocast around the
forward, a GradScaler for fp16, model and inputs .to(
memory_format=torch.channels_last).

With --compile (PyTorch 2.x) both encoders go through torch.compile
(inductor, the default mode), as a user speeds up a model without rewriting
it: the encoders hold all of the FLOPs, while the queue's in-place update
and the pointer's int() would break a graph of the whole step. The warm-up
steps then include compilation; their time beyond the median step is
reported as compile_s, apart from the step time.

Usage: python_moco_step.py --arch resnet18 --size 28 --batch 256 --moco-k 4096
       --threads 2 --steps 20 [--data /usr/share/datasets/fashion-mnist]
       [--amp off|bf16|fp16] [--channels-last] [--device cpu|cuda] [--compile]
Prints one JSON object.
"""
import argparse
import gzip
import json
import os
import resource
import time

import torch

from moco_peer import MoCo

p = argparse.ArgumentParser()
p.add_argument("--arch", default="resnet18")
p.add_argument("--stem", default="small")
p.add_argument("--channels", type=int, default=1)
p.add_argument("--size", type=int, default=28)
p.add_argument("--batch", type=int, default=256)
p.add_argument("--moco-k", type=int, default=4096)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=20)
p.add_argument("--warmup", type=int, default=3)
p.add_argument("--bn-splits", type=int, default=8)
p.add_argument("--data", default="")
p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
p.add_argument("--channels-last", action="store_true")
p.add_argument("--device", default="cpu")
p.add_argument("--compile", action="store_true")
p.add_argument("--breakdown", action="store_true")  # accepted, ignored
args = p.parse_args()
dev = torch.device(args.device)
if dev.type == "cuda":
    torch.backends.cudnn.benchmark = True
torch.set_num_threads(args.threads)
torch.manual_seed(0)


if args.data:
    with gzip.open(os.path.join(args.data, "train-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    imgs = torch.frombuffer(bytearray(raw[16:16 + args.batch * h * w]),
                            dtype=torch.uint8).view(args.batch, 1, h, w)
    x = (imgs.float() / 255.0 - 0.286) / 0.353
else:
    x = torch.randn(args.batch, args.channels, args.size, args.size)
fmt = torch.channels_last if args.channels_last else torch.contiguous_format
im_q = x.to(dev).contiguous(memory_format=fmt)
im_k = x.flip(3).to(dev).contiguous(memory_format=fmt)

model = MoCo(dim=128, K=args.moco_k, m=0.99, T=0.1, arch=args.arch,
             bn_splits=args.bn_splits, small_stem=args.stem == "small",
             in_channels=args.channels).to(dev).train()
if args.channels_last:
    model = model.to(memory_format=torch.channels_last)
if args.compile:
    model.encoder_q = torch.compile(model.encoder_q)
    model.encoder_k = torch.compile(model.encoder_k)
opt = torch.optim.SGD(model.parameters(), 0.06, momentum=0.9,
                      weight_decay=5e-4)
amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
# torch.amp.GradScaler from 2.3 on; torch.cuda.amp's is deprecated there.
scaler = (torch.amp.GradScaler(dev.type, enabled=args.amp == "fp16")
          if hasattr(torch.amp, "GradScaler") else
          torch.cuda.amp.GradScaler(enabled=args.amp == "fp16"))


def step():
    # As torch's AMP recipe: autocast over the forward and the loss.
    with torch.autocast(dev.type, dtype=amp_dtype or torch.bfloat16,
                        enabled=amp_dtype is not None):
        loss, _ = model(im_q, im_k)
    opt.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss.item()


warm_times = []
for _ in range(args.warmup):
    t0 = time.perf_counter()
    step()
    warm_times.append(time.perf_counter() - t0)
times = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
step_s = sorted(times)[len(times) // 2]  # median, as the C++ side
compile_s = max(0.0, sum(warm_times) - step_s * len(warm_times))
print(json.dumps({
    "impl": "python-torch", "torch": torch.__version__, "device": args.device,
    "arch": args.arch, "size": args.size, "batch": args.batch,
    "moco_k": args.moco_k, "bn_splits": args.bn_splits, "amp": args.amp,
    "channels_last": args.channels_last, "compile": args.compile,
    "compile_s": compile_s if args.compile else 0.0, "threads": args.threads,
    "steps": args.steps, "step_s": step_s,
    "images_per_s": args.batch / step_s,
    # Linux reports ru_maxrss in KiB.
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_gpu_mib": (torch.cuda.max_memory_allocated() / 2**20
                     if dev.type == "cuda" else 0.0)}))
