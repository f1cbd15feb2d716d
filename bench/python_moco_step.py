"""The Python peer: the same MoCo step in PyTorch + torchvision, written as
the official code (moco/builder.py, the CIFAR demo's SplitBatchNorm and
single-GPU shuffle), for bench/run_speed.py. Mixed precision and
channels-last as a Python user would add them: torch.autocast around the
forward, torch.cuda.amp.GradScaler for fp16, model and inputs .to(
memory_format=torch.channels_last).

Usage: python_moco_step.py --arch resnet18 --size 28 --batch 256 --moco-k 4096
       --threads 2 --steps 20 [--data /usr/share/datasets/fashion-mnist]
       [--amp off|bf16|fp16] [--channels-last] [--device cpu|cuda]
Prints one JSON object.
"""
import argparse
import gzip
import json
import os
import resource
import time

import torch
import torch.nn as nn
import torchvision

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
p.add_argument("--breakdown", action="store_true")  # accepted, ignored
args = p.parse_args()
dev = torch.device(args.device)
if dev.type == "cuda":
    torch.backends.cudnn.benchmark = True
torch.set_num_threads(args.threads)
torch.manual_seed(0)


class SplitBatchNorm(nn.BatchNorm2d):  # the official CIFAR demo's
    def __init__(self, num_features, num_splits, **kw):
        super().__init__(num_features, **kw)
        self.num_splits = num_splits

    def forward(self, input):
        N, C, H, W = input.shape
        if self.training or not self.track_running_stats:
            running_mean_split = self.running_mean.repeat(self.num_splits)
            running_var_split = self.running_var.repeat(self.num_splits)
            outcome = nn.functional.batch_norm(
                input.view(-1, C * self.num_splits, H, W), running_mean_split,
                running_var_split, self.weight.repeat(self.num_splits),
                self.bias.repeat(self.num_splits), True, self.momentum,
                self.eps).view(N, C, H, W)
            self.running_mean.data.copy_(
                running_mean_split.view(self.num_splits, C).mean(dim=0))
            self.running_var.data.copy_(
                running_var_split.view(self.num_splits, C).mean(dim=0))
            return outcome
        return nn.functional.batch_norm(
            input, self.running_mean, self.running_var, self.weight,
            self.bias, False, self.momentum, self.eps)


def encoder():
    norm = (lambda c: SplitBatchNorm(c, args.bn_splits)) \
        if args.bn_splits > 1 else nn.BatchNorm2d
    net = getattr(torchvision.models, args.arch)(num_classes=128,
                                                 norm_layer=norm)
    if args.stem == "small":
        net.conv1 = nn.Conv2d(args.channels, 64, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif args.channels != 3:
        net.conv1 = nn.Conv2d(args.channels, 64, 7, 2, 3, bias=False)
    return net


class MoCo(nn.Module):  # moco/builder.py, single process
    def __init__(self, dim=128, K=4096, m=0.99, T=0.1):
        super().__init__()
        self.K, self.m, self.T = K, m, T
        self.encoder_q, self.encoder_k = encoder(), encoder()
        for pq, pk in zip(self.encoder_q.parameters(),
                          self.encoder_k.parameters()):
            pk.data.copy_(pq.data)
            pk.requires_grad = False
        self.register_buffer("queue", nn.functional.normalize(
            torch.randn(dim, K), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def _momentum_update_key_encoder(self):
        for pq, pk in zip(self.encoder_q.parameters(),
                          self.encoder_k.parameters()):
            pk.data = pk.data * self.m + pq.data * (1. - self.m)

    @torch.no_grad()
    def _dequeue_and_enqueue(self, keys):
        batch_size = keys.shape[0]
        ptr = int(self.queue_ptr)
        assert self.K % batch_size == 0
        self.queue[:, ptr:ptr + batch_size] = keys.T
        self.queue_ptr[0] = (ptr + batch_size) % self.K

    def forward(self, im_q, im_k):
        q = nn.functional.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            self._momentum_update_key_encoder()
            idx_shuffle = torch.randperm(im_k.shape[0], device=im_k.device)
            idx_unshuffle = torch.argsort(idx_shuffle)
            k = self.encoder_k(im_k[idx_shuffle])
            k = nn.functional.normalize(k, dim=1)[idx_unshuffle]
        l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", [q, self.queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long,
                             device=logits.device)
        self._dequeue_and_enqueue(k)
        return logits, labels


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

model = MoCo(K=args.moco_k).to(dev).train()
if args.channels_last:
    model = model.to(memory_format=torch.channels_last)
criterion = nn.CrossEntropyLoss()
opt = torch.optim.SGD(model.parameters(), 0.06, momentum=0.9,
                      weight_decay=5e-4)
amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
scaler = torch.cuda.amp.GradScaler(enabled=args.amp == "fp16")


def step():
    # As torch's AMP recipe: autocast over the forward and the loss.
    with torch.autocast(dev.type, dtype=amp_dtype or torch.bfloat16,
                        enabled=amp_dtype is not None):
        logits, labels = model(im_q, im_k)
        loss = criterion(logits, labels)
    opt.zero_grad()
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss.item()


for _ in range(args.warmup):
    step()
times = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
step_s = sorted(times)[len(times) // 2]  # median, as the C++ side
print(json.dumps({
    "impl": "python-torch", "torch": torch.__version__, "device": args.device,
    "arch": args.arch, "size": args.size, "batch": args.batch,
    "moco_k": args.moco_k, "bn_splits": args.bn_splits, "amp": args.amp,
    "channels_last": args.channels_last, "threads": args.threads,
    "steps": args.steps, "step_s": step_s,
    "images_per_s": args.batch / step_s,
    # Linux reports ru_maxrss in KiB.
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_gpu_mib": (torch.cuda.max_memory_allocated() / 2**20
                     if dev.type == "cuda" else 0.0)}))
