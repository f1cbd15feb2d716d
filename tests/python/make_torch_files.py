"""Files written by Python's torch.save, for tests/io/torch_pickle_test.

Usage: make_torch_files.py DIR
Writes, in DIR:
  release_zip.pth.tar / release_legacy.pth.tar: the official MoCo release
    layout ({'epoch', 'arch', 'state_dict': {'module.encoder_q.*',
    'module.encoder_k.*'}, 'optimizer': SGD.state_dict()}) for a ResNet-18,
    in the zip and the legacy (PyTorch < 1.6) formats; one parameter group
    holds a single tensor, so its 'params' list is pickled with APPEND;
  torchvision_resnet18.pth: a torchvision state dict (OrderedDict);
  expected.json: for each file, every tensor's shape and sum, and the scalars.
"""
import json
import os
import sys

import torch
import torchvision

out = sys.argv[1]
torch.manual_seed(0)
q = torchvision.models.resnet18(num_classes=128)
k = torchvision.models.resnet18(num_classes=128)
with torch.no_grad():
    for p in q.parameters():
        p.add_(torch.randn_like(p) * 0.01)
    q.bn1.running_mean.add_(0.5)
    q.bn1.num_batches_tracked.fill_(7)
sd = {}
for name, t in q.state_dict().items():
    sd["module.encoder_q." + name] = t
for name, t in k.state_dict().items():
    sd["module.encoder_k." + name] = t
sd["module.queue"] = torch.nn.functional.normalize(torch.randn(128, 64), dim=0)
sd["module.queue_ptr"] = torch.zeros(1, dtype=torch.long)
params = list(q.parameters())
opt = torch.optim.SGD([{"params": params[:-1]}, {"params": [params[-1]], "lr": 0.5}],
                      lr=0.03, momentum=0.9, weight_decay=1e-4)
loss = sum((p * p).sum() for p in params)
loss.backward()
opt.step()
ckpt = {"epoch": 200, "arch": "resnet18", "state_dict": sd,
        "optimizer": opt.state_dict()}
torch.save(ckpt, os.path.join(out, "release_zip.pth.tar"))
torch.save(ckpt, os.path.join(out, "release_legacy.pth.tar"),
           _use_new_zipfile_serialization=False)
tv = torchvision.models.resnet18()
torch.save(tv.state_dict(), os.path.join(out, "torchvision_resnet18.pth"))


def describe(d):
    return {k: {"shape": list(v.shape), "sum": float(v.double().sum())}
            for k, v in d.items()}


expected = {
    "release": describe(sd),
    "momentum_last": float(opt.state[params[-1]]["momentum_buffer"].double().sum()),
    "group1_params": opt.state_dict()["param_groups"][1]["params"],
    "torchvision": describe(tv.state_dict()),
}
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump(expected, f)
