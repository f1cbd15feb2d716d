"""The Python peer for `moco bench-data`: decode + MoCo v2 two-view augmentation
exactly as the official main_moco.py --aug-plus builds it (torchvision + PIL),
on one core, over an ImageFolder.

Usage: /usr/bin/python3 bench/python_data_bench.py DIR [--size 224] [--rounds 2]
Prints one line: images/s (two views each) on one core.
"""
import argparse
import os
import random
import time

import torch
import torchvision.datasets as datasets
import torchvision.transforms as transforms
from PIL import ImageFilter


class GaussianBlur:
    """moco/loader.py's GaussianBlur: PIL's filter with a random radius."""

    def __init__(self, sigma=(0.1, 2.0)):
        self.sigma = sigma

    def __call__(self, x):
        sigma = random.uniform(self.sigma[0], self.sigma[1])
        return x.filter(ImageFilter.GaussianBlur(radius=sigma))


class TwoCropsTransform:
    def __init__(self, base_transform):
        self.base_transform = base_transform

    def __call__(self, x):
        return [self.base_transform(x), self.base_transform(x)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(1)
    normalize = transforms.Normalize(mean=[0.485, 0.456, 0.406],
                                     std=[0.229, 0.224, 0.225])
    augmentation = [
        transforms.RandomResizedCrop(args.size, scale=(0.2, 1.0)),
        transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        transforms.RandomGrayscale(p=0.2),
        transforms.RandomApply([GaussianBlur([0.1, 2.0])], p=0.5),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        normalize,
    ]
    ds = datasets.ImageFolder(args.data,
                              TwoCropsTransform(transforms.Compose(augmentation)))
    random.seed(0)
    torch.manual_seed(0)
    best = 0.0
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for i in range(len(ds)):
            views, _ = ds[i]
            assert views[0].shape == (3, args.size, args.size)
        secs = time.perf_counter() - t0
        rate = len(ds) / secs
        best = max(best, rate)
        print(f"round {r + 1}: {len(ds)} images in {secs:.2f} s = {rate:.1f} images/s")
    print(f"python torchvision+PIL: {best:.1f} images/s on 1 core "
          f"(decode + 2 views, best of {args.rounds}; PIL {__import__('PIL').__version__}, "
          f"torchvision {__import__('torchvision').__version__})")


if __name__ == "__main__":
    main()
