"""A third-party MoCo beside ours: lightly's MoCo v2, built from lightly's
own parts, trained with moco's quick recipe on Fashion-MNIST and scored by
the same kNN as `moco pretrain`.

lightly's parts, as its MoCo example assembles them:
  - MoCoProjectionHead (v2: Linear, ReLU, Linear) on the pooled backbone;
  - NTXentLoss(temperature, memory_bank_size=(K, dim)): the queue of keys,
    logits [q.k+ | q.bank] / T, and the enqueue after the loss;
  - update_momentum on backbone and head, deactivate_requires_grad on the
    momentum copies;
  - batch_shuffle / batch_unshuffle around the key encoder;
  - SplitBatchNorm (8 splits) in the backbone, so that shuffling the key
    batch changes the BN groups on one device, as the quick preset's
    split-BN does;
  - MoCoV2Transform for the two views.
The backbone is moco's: torchvision's ResNet-18 with the small-image stem
at width 16 (bench/moco_peer.py's make_encoder, its fc dropped). The recipe
and budget are the quick preset's: 6 epochs, batch 128, SGD lr 0.06 with
the cosine schedule per epoch, momentum 0.9, wd 5e-4, K 4096, m 0.99, T 0.1,
the MLP head, the v2 augmentation without blur, bf16 autocast where the
CPU computes bf16 natively (--amp auto, as moco's); then the
CIFAR demo's weighted kNN (k 200, t 0.1) on 10,000 bank and 10,000 test
images, the images moco's monitor takes.

Usage: PY bench/lightly_moco_train.py [--seed 0] [--epochs 6] [--threads 2]
  (PY: a Python with torch, torchvision and lightly 1.6;
   bench/lightly_compare.sh makes one)
Prints log lines, then one JSON line with the kNN top-1 and the times.
"""
import argparse
import copy
import json
import sys
import time

import lightly
import torch
import torch.nn as nn
from lightly.loss import NTXentLoss
from lightly.models.batchnorm import SplitBatchNorm
from lightly.models.modules import MoCoProjectionHead
from lightly.models.utils import (batch_shuffle, batch_unshuffle,
                                  deactivate_requires_grad, update_momentum)
from lightly.transforms.moco_transform import MoCoV2Transform
from PIL import Image

from moco_peer import (FashionMnist, adjust_learning_rate, make_encoder,
                       recipe_arguments)

p = argparse.ArgumentParser()
recipe_arguments(p, epochs=6)
p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16"])
args = p.parse_args()
if args.amp == "auto":
    # As moco's --amp auto: bf16 where the CPU computes it natively.
    flags = open("/proc/cpuinfo").read()
    args.amp = "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) \
        else "off"
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

fm = FashionMnist(args.data, args.train_images)
x_train, mean, std = fm.x_train, fm.mean, fm.std

transform = MoCoV2Transform(input_size=28, gaussian_blur=0.0,
                            normalize={"mean": [mean], "std": [std]})


class Views(torch.utils.data.Dataset):
    def __len__(self):
        return len(x_train)

    def __getitem__(self, i):
        return transform(Image.fromarray(x_train[i].numpy(), mode="L"))


class LightlyMoCo(nn.Module):
    def __init__(self):
        super().__init__()
        net = make_encoder("resnet18", dim=args.moco_dim, bn_splits=1,
                           small_stem=True, in_channels=1, width=args.width)
        # lightly's split-BN in every BN slot of the same ResNet.
        for name, module in list(net.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.BatchNorm2d):
                    setattr(module, child_name,
                            SplitBatchNorm(child.num_features, args.bn_splits))
        features = net.fc.in_features
        net.fc = nn.Identity()
        self.backbone = net
        self.projection_head = MoCoProjectionHead(features, features,
                                                  args.moco_dim)
        self.backbone_momentum = copy.deepcopy(self.backbone)
        self.projection_head_momentum = copy.deepcopy(self.projection_head)
        deactivate_requires_grad(self.backbone_momentum)
        deactivate_requires_grad(self.projection_head_momentum)

    def forward(self, x):
        return self.projection_head(self.backbone(x))

    @torch.no_grad()
    def forward_momentum(self, x):
        x, shuffle = batch_shuffle(x)
        k = self.projection_head_momentum(self.backbone_momentum(x))
        return batch_unshuffle(k, shuffle)


model = LightlyMoCo()
criterion = NTXentLoss(temperature=args.moco_t,
                       memory_bank_size=(args.moco_k, args.moco_dim))
optimizer = torch.optim.SGD(
    list(model.backbone.parameters()) +
    list(model.projection_head.parameters()),
    args.lr, momentum=0.9, weight_decay=args.wd)
loader = torch.utils.data.DataLoader(
    Views(), batch_size=args.batch_size, shuffle=True, drop_last=True,
    num_workers=args.workers, persistent_workers=args.workers > 0)


def knn_top1():
    model.eval()
    top1 = fm.knn_top1(
        lambda b: nn.functional.normalize(model.backbone(b), dim=1),
        args.knn_bank, args.knn_test)
    model.train()
    return top1


t_start = time.perf_counter()
train_seconds, images = 0.0, 0
model.train()
for epoch in range(args.epochs):
    lr = adjust_learning_rate(optimizer, args.lr, epoch, args.epochs, True, [])
    t0 = time.perf_counter()
    loss_sum, n = 0.0, 0
    for x_query, x_key in loader:
        update_momentum(model.backbone, model.backbone_momentum, args.moco_m)
        update_momentum(model.projection_head, model.projection_head_momentum,
                        args.moco_m)
        with torch.autocast("cpu", dtype=torch.bfloat16,
                            enabled=args.amp == "bf16"):
            query = model(x_query)
            key = model.forward_momentum(x_key)
            loss = criterion(query, key)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item()
        n += 1
        images += x_query.shape[0]
    dt = time.perf_counter() - t0
    train_seconds += dt
    print(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / n:.4f}, "
          f"{n} steps in {dt:.1f}s, lr {lr:.4g}", file=sys.stderr, flush=True)
top1 = knn_top1()
print(f"knn top-1 {top1:.2f}% (bank {args.knn_bank}, test {args.knn_test})",
      file=sys.stderr)
print(json.dumps({"impl": "lightly", "lightly": lightly.__version__,
                  "torch": torch.__version__, "knn_top1": top1,
                  "train_seconds": train_seconds,
                  "images_per_s": images / train_seconds,
                  "wall_seconds": time.perf_counter() - t_start,
                  "args": vars(args)}))
