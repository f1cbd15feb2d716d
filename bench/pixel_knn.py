"""Weighted kNN (k=200, t=0.1, cosine; the MoCo CIFAR demo's monitor) on raw
Fashion-MNIST pixels: the baseline a pretrained encoder has to beat.

Usage: /usr/bin/python3 bench/pixel_knn.py [DATA_DIR]
Prints top-1 with the full 60k training bank and with the 10k bank (every
6th image) that the quick preset's monitor uses.
"""
import sys

import torch

from moco_peer import load_idx

data = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"


x_train = load_idx(data, "train-images-idx3-ubyte.gz", 16).view(-1, 784).float()
y_train = load_idx(data, "train-labels-idx1-ubyte.gz", 8).long()
x_test = load_idx(data, "t10k-images-idx3-ubyte.gz", 16).view(-1, 784).float()
y_test = load_idx(data, "t10k-labels-idx1-ubyte.gz", 8).long()
mean, std = x_train.mean() / 255, x_train.std() / 255


def features(x):
    return torch.nn.functional.normalize((x / 255 - mean) / std, dim=1)


def knn_top1(bank_idx, k=200, t=0.1):
    bank, labels = features(x_train[bank_idx]), y_train[bank_idx]
    test = features(x_test)
    correct = 0
    for i in range(0, len(test), 500):
        sim = test[i:i + 500] @ bank.T
        w, idx = sim.topk(k, dim=1)
        scores = torch.zeros(len(w), 10).scatter_add_(1, labels[idx],
                                                      (w / t).exp())
        correct += (scores.argmax(1) == y_test[i:i + 500]).sum().item()
    return 100.0 * correct / len(test)


print(f"raw pixels, bank 60000: top-1 {knn_top1(torch.arange(60000)):.2f}%")
every_6th = torch.linspace(0, 59999, 10000).floor().long()
print(f"raw pixels, bank 10000: top-1 {knn_top1(every_6th):.2f}%")
