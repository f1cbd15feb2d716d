"""The safetensors library and timm against moco's ResNet-50 export:
safetensors loads the .safetensors (the same tensors as the .pth, the arch
in its metadata); timm.create_model('resnet50', num_classes=0) takes it with
strict=True and gives moco embed's features on the same CIFAR-10 records.
Usage: client_timm_safetensors.py PTH SAFETENSORS FEATS.npy CIFAR.bin MEAN STD"""
import sys

import numpy as np
import timm
import torch
from safetensors import safe_open
from safetensors.torch import load_file

pth, st, feats, cifar, mean, std = sys.argv[1:7]
sd = torch.load(pth, weights_only=True)
tensors = load_file(st)
assert sorted(tensors) == sorted(sd), (sorted(tensors)[:5], sorted(sd)[:5])
for k, v in sd.items():
    assert tensors[k].dtype == v.dtype and torch.equal(tensors[k], v), k
with safe_open(st, framework="pt") as f:
    assert f.metadata()["arch"] == "resnet50", f.metadata()

model = timm.create_model("resnet50", pretrained=False, num_classes=0)
model.load_state_dict(tensors, strict=True)
model.eval()
rec = np.fromfile(cifar, dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32)
x = torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()).float() / 255
m = torch.tensor([float(v) for v in mean.split(",")]).view(1, 3, 1, 1)
s = torch.tensor([float(v) for v in std.split(",")]).view(1, 3, 1, 1)
with torch.no_grad():
    ref = model((x - m) / s).numpy()
ours = np.load(feats)
assert ours.dtype == np.float32 and ours.shape == ref.shape, (ours.shape, ref.shape)
err = float(np.abs(ours - ref).max())
print("max abs difference", err)
assert err < 1e-4, err
