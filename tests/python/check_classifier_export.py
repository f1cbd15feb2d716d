"""A classifier exported by `moco export` predicts as moco does, for
tests/train/finetune_test.

Usage: check_classifier_export.py ARCH CLASSES EXPORT.pth CIFAR_TEST.bin MEAN STD LOGITS.npy ACC1
 - EXPORT.pth loads into torchvision.models.ARCH(num_classes=CLASSES) with
   strict=True (the trained fc included);
 - its logits on the CIFAR test images (normalised with MEAN/STD, as moco
   evaluates in-memory images) equal LOGITS.npy (`moco embed --head`) to
   1e-4, and its top-1 accuracy equals ACC1 (`moco finetune -e` /
   `moco lincls -e`).
"""
import sys

import numpy as np
import torch
import torchvision

arch, classes, pth, cifar, mean, std, logits_npy, acc1 = sys.argv[1:9]
model = getattr(torchvision.models, arch)(num_classes=int(classes))
model.load_state_dict(torch.load(pth, weights_only=True), strict=True)
model.eval()
rec = np.fromfile(cifar, dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32)
labels = torch.from_numpy(rec[:, 0].astype(np.int64))
x = torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()).float() / 255
m = torch.tensor([float(v) for v in mean.split(",")]).view(1, 3, 1, 1)
s = torch.tensor([float(v) for v in std.split(",")]).view(1, 3, 1, 1)
with torch.no_grad():
    logits = model((x - m) / s)
ours = np.load(logits_npy)
err = float(np.abs(ours - logits.numpy()).max())
print("max abs logit difference", err)
assert err < 1e-4, err
acc = 100.0 * float((logits.argmax(1) == labels).float().mean())
print("torchvision top-1 %.3f, moco's %s" % (acc, acc1))
assert abs(acc - float(acc1)) < 1e-3, (acc, acc1)
