"""The Python peer trained with moco's recipe on Fashion-MNIST: the official
code's step (bench/moco_peer.py), main_moco.py's --aug-plus transform on
PIL images through a torch DataLoader (blur off, as the CIFAR demo), SGD
with the cosine schedule, then the CIFAR demo's weighted kNN on the
backbone's features with the bank and test images moco's monitor uses.
For docs/ablations.md's peer row: same recipe and budget as
`moco pretrain` with the same flags.

Usage: /usr/bin/python3 bench/python_moco_train.py --epochs 5 --width 16 \\
         --mlp --amp bf16 [--data /usr/share/datasets/fashion-mnist]
Prints log lines, then one JSON line with the kNN top-1 and the times.
"""
import argparse
import json
import sys
import time

import torch
import torch.nn as nn
import torchvision.transforms as T
from PIL import Image

from moco_peer import FashionMnist, MoCo, adjust_learning_rate, recipe_arguments

p = argparse.ArgumentParser()
recipe_arguments(p, epochs=5)
p.add_argument("--arch", default="resnet18")
p.add_argument("--cos", type=int, default=1)
p.add_argument("--mlp", action="store_true")
p.add_argument("--symmetric", action="store_true")
p.add_argument("--amp", default="off", choices=["off", "bf16"])
p.add_argument("--knn-k", type=int, default=200)
p.add_argument("--knn-t", type=float, default=0.1)
args = p.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)


fm = FashionMnist(args.data, args.train_images)
x_train, mean, std = fm.x_train, fm.mean, fm.std

# main_moco.py's --aug-plus list without GaussianBlur (the CIFAR demo's).
augment = T.Compose([
    T.RandomResizedCrop(28, scale=(0.2, 1.0)),
    T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
    T.RandomGrayscale(p=0.2),
    T.RandomHorizontalFlip(),
    T.ToTensor(),
    T.Normalize([mean], [std]),
])


class TwoCrops(torch.utils.data.Dataset):
    def __len__(self):
        return len(x_train)

    def __getitem__(self, i):
        img = Image.fromarray(x_train[i].numpy(), mode="L")
        return augment(img), augment(img)


loader = torch.utils.data.DataLoader(
    TwoCrops(), batch_size=args.batch_size, shuffle=True, drop_last=True,
    num_workers=args.workers, persistent_workers=args.workers > 0)
model = MoCo(dim=args.moco_dim, K=args.moco_k, m=args.moco_m, T=args.moco_t,
             symmetric=args.symmetric, arch=args.arch,
             bn_splits=args.bn_splits, small_stem=True, in_channels=1,
             mlp=args.mlp, width=args.width)
optimizer = torch.optim.SGD(model.parameters(), args.lr, momentum=0.9,
                            weight_decay=args.wd)


def features(x):
    """The backbone's pooled features, L2-normalised (fc dropped)."""
    net = model.encoder_q
    x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
    x = net.layer4(net.layer3(net.layer2(net.layer1(x))))
    return nn.functional.normalize(torch.flatten(net.avgpool(x), 1), dim=1)


def knn_top1():
    model.eval()
    top1 = fm.knn_top1(features, args.knn_bank, args.knn_test, args.knn_k,
                       args.knn_t)
    model.train()
    return top1


t_start = time.perf_counter()
train_seconds = 0.0
model.train()
for epoch in range(args.epochs):
    lr = adjust_learning_rate(optimizer, args.lr, epoch, args.epochs,
                              bool(args.cos), [])
    t0 = time.perf_counter()
    loss_sum, n = 0.0, 0
    for im_q, im_k in loader:
        with torch.autocast("cpu", dtype=torch.bfloat16,
                            enabled=args.amp == "bf16"):
            loss, _ = model(im_q, im_k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss_sum += loss.item()
        n += 1
    dt = time.perf_counter() - t0
    train_seconds += dt
    print(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / n:.4f}, "
          f"{n} steps in {dt:.1f}s, lr {lr:.4g}", file=sys.stderr, flush=True)
top1 = knn_top1()
print(f"knn top-1 {top1:.2f}% (bank {args.knn_bank}, test {args.knn_test})",
      file=sys.stderr)
print(json.dumps({"impl": "python-torch", "knn_top1": top1,
                  "train_seconds": train_seconds,
                  "wall_seconds": time.perf_counter() - t_start,
                  "args": vars(args)}))
