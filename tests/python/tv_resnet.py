"""torchvision ResNets with random weights and BN statistics, their inputs and
eval-mode outputs, for tests/models/resnet_test.

Usage: tv_resnet.py OUT_DIR  -> OUT_DIR/{resnet18,resnet50_mlp,resnet18_small}.pt
each a plain dict: state-dict entries under 'sd.', plus 'x' and 'y'.
"""
import os
import sys

import torch
import torch.nn as nn
import torchvision

out_dir = sys.argv[1]
torch.manual_seed(0)


def randomise_bn(model):
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def dump(name, model, x):
    randomise_bn(model)
    model.eval()
    with torch.no_grad():
        y = model(x)
    d = {"sd." + k: v for k, v in model.state_dict().items()}
    d["x"] = x
    d["y"] = y
    torch.save(d, os.path.join(out_dir, name + ".pt"))


dump("resnet18", torchvision.models.resnet18(num_classes=128),
     torch.randn(2, 3, 64, 64))

r50 = torchvision.models.resnet50(num_classes=128)
dim_mlp = r50.fc.weight.shape[1]
r50.fc = nn.Sequential(nn.Linear(dim_mlp, dim_mlp), nn.ReLU(), r50.fc)
dump("resnet50_mlp", r50, torch.randn(2, 3, 64, 64))

small = torchvision.models.resnet18(num_classes=10)
small.conv1 = nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1, bias=False)
small.maxpool = nn.Identity()
dump("resnet18_small", small, torch.randn(2, 1, 28, 28))
