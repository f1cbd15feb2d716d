"""The Python peer: MoCo as the official code does it, in PyTorch +
torchvision, written here from the semantics of the official repository
(moco/builder.py, main_moco.py, and the CIFAR-10 demo's SplitBatchNorm,
single-GPU shuffle and symmetric loss). Used as

  - the reference of the step parity test (tests/python/moco_parity.py),
  - the peer of the speed benchmarks (bench/python_moco_step.py),
  - the peer trained with moco's own recipe (bench/python_moco_train.py).

Nothing here imports moco; it is the independent side.
"""
import gzip
import math
import os

import torch
import torch.nn as nn
import torchvision


class SplitBatchNorm(nn.BatchNorm2d):
    """The CIFAR demo's BN over `num_splits` groups of the batch (sample n
    in group n % num_splits), simulating per-GPU BN on one device. Like the
    demo it calls F.batch_norm itself, so num_batches_tracked stays 0."""

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


class _NarrowResNet(torchvision.models.ResNet):
    """torchvision's ResNet with every layer's planes scaled by width / 64
    (torchvision's basic block takes no base width): the same modules and
    names, 1/16 of the FLOPs at width 16."""

    def __init__(self, block, layers, width, **kw):
        self._width = width
        super().__init__(block, layers, **kw)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        if planes == 64:  # layer1: its input is conv1's output
            self.inplanes = self._width
        return super()._make_layer(block, planes * self._width // 64, blocks,
                                   stride, dilate)


def make_encoder(arch="resnet18", dim=128, bn_splits=8, small_stem=True,
                 in_channels=3, mlp=False, width=64):
    """A torchvision ResNet with `dim` outputs: the CIFAR demo's stem (3x3
    stride-1 conv1, no max-pool) for small images, and MoCo v2's MLP head
    (fc -> Sequential(Linear, ReLU, fc)) with `mlp`."""
    norm = (lambda c: SplitBatchNorm(c, bn_splits)) if bn_splits > 1 \
        else nn.BatchNorm2d
    if width == 64:
        net = getattr(torchvision.models, arch)(num_classes=dim, norm_layer=norm)
    else:
        block, layers = {
            "resnet18": (torchvision.models.resnet.BasicBlock, [2, 2, 2, 2]),
            "resnet34": (torchvision.models.resnet.BasicBlock, [3, 4, 6, 3]),
        }[arch]
        net = _NarrowResNet(block, layers, width, num_classes=dim,
                            norm_layer=norm)
        net.bn1 = norm(width)
        net.fc = nn.Linear(8 * width, dim)
    if small_stem:
        net.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3 or width != 64:
        net.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out",
                            nonlinearity="relu")
    if mlp:
        d = net.fc.weight.shape[1]
        net.fc = nn.Sequential(nn.Linear(d, d), nn.ReLU(), net.fc)
    return net


def random_shuffle(n, device):
    return torch.randperm(n, device=device)


class MoCo(nn.Module):
    """moco/builder.py on one process, with the CIFAR demo's split-BN
    shuffle and symmetric loss. `shuffle(n, device)` draws each key batch's
    permutation (the parity test replays given ones)."""

    def __init__(self, dim=128, K=65536, m=0.999, T=0.07, symmetric=False,
                 shuffle=random_shuffle, **encoder_kw):
        super().__init__()
        self.K, self.m, self.T, self.symmetric = K, m, T, symmetric
        self.shuffle = shuffle
        self.encoder_q = make_encoder(dim=dim, **encoder_kw)
        self.encoder_k = make_encoder(dim=dim, **encoder_kw)
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

    def contrastive_loss(self, im_q, im_k):
        """Logits [q.k+ | q.queue] / T with the positive at 0, the keys."""
        q = nn.functional.normalize(self.encoder_q(im_q), dim=1)
        with torch.no_grad():
            idx_shuffle = self.shuffle(im_k.shape[0], im_k.device)
            idx_unshuffle = torch.argsort(idx_shuffle)
            k = self.encoder_k(im_k[idx_shuffle])
            k = nn.functional.normalize(k, dim=1)[idx_unshuffle]
        l_pos = torch.einsum("nc,nc->n", [q, k]).unsqueeze(-1)
        l_neg = torch.einsum("nc,ck->nk", [q, self.queue.clone().detach()])
        logits = torch.cat([l_pos, l_neg], dim=1) / self.T
        labels = torch.zeros(logits.shape[0], dtype=torch.long,
                             device=logits.device)
        return logits, labels, k

    def forward(self, im_q, im_k):
        """Returns (loss, logits of the first direction): the momentum update
        first, the queue enqueued after the loss (before backward, which
        uses the cloned queue)."""
        criterion = nn.CrossEntropyLoss()
        with torch.no_grad():
            self._momentum_update_key_encoder()
        if self.symmetric:
            logits, labels, k2 = self.contrastive_loss(im_q, im_k)
            logits21, labels21, k1 = self.contrastive_loss(im_k, im_q)
            loss = criterion(logits, labels) + criterion(logits21, labels21)
            keys = torch.cat([k1, k2], dim=0)
        else:
            logits, labels, keys = self.contrastive_loss(im_q, im_k)
            loss = criterion(logits, labels)
        self._dequeue_and_enqueue(keys)
        return loss, logits


def adjust_learning_rate(optimizer, base_lr, epoch, epochs, cos, schedule):
    """main_moco.py's schedule, set at the start of each epoch."""
    lr = base_lr
    if cos:
        lr *= 0.5 * (1. + math.cos(math.pi * epoch / epochs))
    else:
        for milestone in schedule:
            lr *= 0.1 if epoch >= milestone else 1.
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def knn_predict(feature, feature_bank, feature_labels, classes, knn_k,
                knn_t):
    """The CIFAR demo's weighted kNN (Wu et al. 2018)."""
    sim_matrix = torch.mm(feature, feature_bank)
    sim_weight, sim_indices = sim_matrix.topk(k=knn_k, dim=-1)
    sim_labels = torch.gather(feature_labels.expand(feature.size(0), -1),
                              dim=-1, index=sim_indices)
    sim_weight = (sim_weight / knn_t).exp()
    one_hot = torch.zeros(feature.size(0) * knn_k, classes,
                          device=sim_labels.device)
    one_hot = one_hot.scatter(dim=-1, index=sim_labels.view(-1, 1), value=1.0)
    pred_scores = torch.sum(one_hot.view(feature.size(0), -1, classes) *
                            sim_weight.unsqueeze(dim=-1), dim=1)
    return pred_scores.argsort(dim=-1, descending=True)


def load_idx(data, name, offset):
    """An IDX file of the Fashion-MNIST folder as a flat uint8 tensor, its
    header (`offset` bytes) skipped."""
    with gzip.open(os.path.join(data, name)) as f:
        raw = f.read()
    return torch.frombuffer(bytearray(raw[offset:]), dtype=torch.uint8)


def recipe_arguments(parser, epochs):
    """The flags both trainers (python_moco_train.py, lightly_moco_train.py)
    take for moco's quick recipe on Fashion-MNIST, with its defaults."""
    a = parser.add_argument
    a("--data", default="/usr/share/datasets/fashion-mnist")
    a("--width", type=int, default=16)
    a("--epochs", type=int, default=epochs)
    a("-b", "--batch-size", type=int, default=128)
    a("--lr", type=float, default=0.06)
    a("--wd", type=float, default=5e-4)
    a("--moco-k", type=int, default=4096)
    a("--moco-m", type=float, default=0.99)
    a("--moco-t", type=float, default=0.1)
    a("--moco-dim", type=int, default=128)
    a("--bn-splits", type=int, default=8)
    a("--threads", type=int, default=2)
    a("--workers", type=int, default=1)
    a("--seed", type=int, default=0)
    a("--knn-bank", type=int, default=10000)
    a("--knn-test", type=int, default=10000)
    a("--train-images", type=int, default=0)  # 0: all (smoke runs)


class FashionMnist:
    """The Fashion-MNIST folder as moco reads it: uint8 images (N x 28 x 28)
    and labels of both splits, the training split cut to `train_images`
    when non-zero, and the per-channel mean and std of 10k evenly spaced
    training images, as moco computes them."""

    def __init__(self, data, train_images=0):
        self.x_train = load_idx(data, "train-images-idx3-ubyte.gz", 16).view(-1, 28, 28)
        self.y_train = load_idx(data, "train-labels-idx1-ubyte.gz", 8).long()
        self.x_test = load_idx(data, "t10k-images-idx3-ubyte.gz", 16).view(-1, 28, 28)
        self.y_test = load_idx(data, "t10k-labels-idx1-ubyte.gz", 8).long()
        if train_images:
            self.x_train = self.x_train[:train_images]
            self.y_train = self.y_train[:train_images]
        every = torch.linspace(0, len(self.x_train) - 1, 10000).floor().long()
        sample = self.x_train[every].double() / 255
        self.mean, self.std = sample.mean().item(), sample.std().item()

    @torch.no_grad()
    def knn_top1(self, features, bank_size, test_size, knn_k=200, knn_t=0.1):
        """The weighted kNN top-1 (%) of `features` (a batch of normalised
        images -> L2-normalised features) on `bank_size` evenly spaced
        training images for `test_size` evenly spaced test images, the
        images moco's kNN monitor takes."""
        bank_idx = torch.linspace(0, len(self.x_train) - 1, bank_size).floor().long()
        test_idx = torch.linspace(0, len(self.x_test) - 1, test_size).floor().long()

        def encode(x):
            out = []
            for i in range(0, len(x), 512):
                b = (x[i:i + 512].float().unsqueeze(1) / 255 - self.mean) / self.std
                out.append(features(b))
            return torch.cat(out)

        bank = encode(self.x_train[bank_idx]).t().contiguous()
        bank_labels = self.y_train[bank_idx]
        test = encode(self.x_test[test_idx])
        test_labels = self.y_test[test_idx]
        correct = 0
        for i in range(0, len(test), 512):
            pred = knn_predict(test[i:i + 512], bank, bank_labels, 10, knn_k, knn_t)
            correct += (pred[:, 0] == test_labels[i:i + 512]).sum().item()
        return 100.0 * correct / len(test)
