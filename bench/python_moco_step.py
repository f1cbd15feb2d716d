"""The Python peer: the same MoCo step in PyTorch + torchvision, written as
the official code (moco/builder.py, the CIFAR demo's SplitBatchNorm and
single-GPU shuffle), for bench/run_step_bench.sh.

Usage: python_moco_step.py --arch resnet18 --size 28 --batch 256 --moco-k 4096
       --threads 2 --steps 20 [--data /usr/share/datasets/fashion-mnist]
Prints one JSON object.
"""
import argparse
import gzip
import json
import os
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
args = p.parse_args()
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
            idx_shuffle = torch.randperm(im_k.shape[0])
            idx_unshuffle = torch.argsort(idx_shuffle)
            k = self.encoder_k(im_k[idx_shuffle])
            k = nn.functional.normalize(k, dim=1)[idx_unshuffle]
        l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", [q, self.queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long)
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
im_q, im_k = x.contiguous(), x.flip(3).contiguous()

model = MoCo(K=args.moco_k).train()
criterion = nn.CrossEntropyLoss()
opt = torch.optim.SGD(model.parameters(), 0.06, momentum=0.9,
                      weight_decay=5e-4)


def step():
    logits, labels = model(im_q, im_k)
    loss = criterion(logits, labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


for _ in range(args.warmup):
    step()
times = []
for _ in range(args.steps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
step_s = sorted(times)[len(times) // 2]  # median, as the C++ side
print(json.dumps({"impl": "python-torch", "torch": torch.__version__,
                  "arch": args.arch, "size": args.size, "batch": args.batch,
                  "moco_k": args.moco_k, "threads": args.threads,
                  "steps": args.steps, "step_s": step_s,
                  "images_per_s": args.batch / step_s}))
