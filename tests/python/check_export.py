"""Independent checks of `moco export` and `moco embed`, for
tests/train/export_test.

Usage: check_export.py ARCH EXPORT.pth EXPORT.safetensors FEATS.npy CIFAR_TEST.bin MEAN STD CKPT
 - torch.load(CKPT) (moco pretrain's checkpoint): its module.encoder_q.*
   minus fc.* loads into torchvision.models.ARCH() missing only fc.*, as
   main_lincls.py loads it;
 - torch.load(EXPORT.pth) loads into torchvision.models.ARCH() with
   strict=False missing exactly fc.weight and fc.bias;
 - the .safetensors file, parsed from the format's specification (8-byte
   header length, JSON, raw little-endian data), holds the same tensors;
 - FEATS.npy (numpy.load) equals torchvision's pooled features of the CIFAR
   test images, normalised with MEAN/STD (comma-separated), to 1e-4.
"""
import json
import struct
import sys

import numpy as np
import torch
import torchvision

arch, pth, st, feats, cifar, mean, std, ckpt = sys.argv[1:9]
# The checkpoint as torch.load loads it by default since 2.6 (weights_only);
# 1.13's weights-only unpickler knows no float opcode, so it loads in full.
SAFE = {"weights_only": True} if int(torch.__version__.split(".")[0]) >= 2 else {}
state = torch.load(ckpt, **SAFE)["state_dict"]
lincls_style = {k[len("module.encoder_q."):]: v for k, v in state.items()
                if k.startswith("module.encoder_q") and
                not k.startswith("module.encoder_q.fc")}
msg = getattr(torchvision.models, arch)().load_state_dict(lincls_style, strict=False)
assert set(msg.missing_keys) == {"fc.weight", "fc.bias"}, msg
assert not msg.unexpected_keys, msg
sd = torch.load(pth, weights_only=True)
model = getattr(torchvision.models, arch)()
msg = model.load_state_dict(sd, strict=False)
assert sorted(msg.missing_keys) == ["fc.bias", "fc.weight"], msg
assert not msg.unexpected_keys, msg

with open(st, "rb") as f:
    raw = f.read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
names = [k for k in header if k != "__metadata__"]
assert sorted(names) == sorted(sd.keys()), (sorted(names)[:5], sorted(sd.keys())[:5])
dtypes = {"F32": np.float32, "I64": np.int64}
for k in names:
    h = header[k]
    a, b = h["data_offsets"]
    arr = np.frombuffer(data[a:b], dtype=dtypes[h["dtype"]]).reshape(h["shape"])
    assert np.array_equal(arr, sd[k].numpy()), k
assert header["__metadata__"]["arch"] == arch

rec = np.fromfile(cifar, dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32)
x = torch.from_numpy(rec[:, 1:].reshape(-1, 3, 32, 32).copy()).float() / 255
m = torch.tensor([float(v) for v in mean.split(",")]).view(1, 3, 1, 1)
s = torch.tensor([float(v) for v in std.split(",")]).view(1, 3, 1, 1)
x = (x - m) / s
model.fc = torch.nn.Identity()
model.eval()
with torch.no_grad():
    ref = model(x).numpy()
ours = np.load(feats)
assert ours.dtype == np.float32 and ours.shape == ref.shape, (ours.shape, ref.shape)
err = float(np.abs(ours - ref).max())
print("max abs difference", err)
assert err < 1e-4, err
