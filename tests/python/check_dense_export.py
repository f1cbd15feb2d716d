"""Checks that `moco export` output feeds the dense models people fine-tune,
for tests/train/export_test.

Usage: check_dense_export.py R50.pth R50.pkl
 - R50.pth (torchvision format) loads into the backbone of torchvision's
   fasterrcnn_resnet50_fpn and maskrcnn_resnet50_fpn (detection, instance
   segmentation) and of fcn_resnet50 and deeplabv3_resnet50 (semantic
   segmentation): every backbone tensor is found, only the heads' keys are
   missing, nothing is unexpected, and a forward pass runs;
 - R50.pkl (detectron2 format) is read by Python's pickle with NumPy, in a
   process that never imports torch, and holds exactly detectron2's
   ResNet-50 names and shapes (written out below from detectron2's
   documentation of its ResNet: stem.conv1 + norm, res2..res5 of 3, 4, 6, 3
   bottleneck blocks, conv1..conv3 each with .norm, block 0 with a
   shortcut), with the values of R50.pth under the renaming.
"""
import subprocess
import sys

import torch
import torchvision
from torchvision.models import detection, segmentation

pth, pkl = sys.argv[1:3]
sd = torch.load(pth, weights_only=True)
torch.manual_seed(0)


def load_into(model, prefix, head_prefixes):
    msg = model.load_state_dict({prefix + k: v for k, v in sd.items()}, strict=False)
    assert not msg.unexpected_keys, msg.unexpected_keys[:5]
    bad = [k for k in msg.missing_keys if not k.startswith(head_prefixes)]
    assert not bad, ("backbone keys missing", bad[:5])
    assert msg.missing_keys, "expected the heads to be missing"
    # Every exported tensor is in the model, with the exported values.
    msd = model.state_dict()
    for k, v in sd.items():
        assert torch.equal(msd[prefix + k], v), k
    return model.eval()


for name, ctor in [("fasterrcnn_resnet50_fpn", detection.fasterrcnn_resnet50_fpn),
                   ("maskrcnn_resnet50_fpn", detection.maskrcnn_resnet50_fpn)]:
    m = ctor(weights=None, weights_backbone=None, num_classes=3, min_size=96,
             max_size=96)
    m = load_into(m, "backbone.body.", ("backbone.fpn.", "rpn.", "roi_heads."))
    # As docs/evaluation.md shows it: straight into the body, nothing left.
    msg = m.backbone.body.load_state_dict(sd, strict=False)
    assert not msg.missing_keys and not msg.unexpected_keys, msg
    with torch.no_grad():
        out = m([torch.rand(3, 96, 96)])
    assert isinstance(out, list) and "boxes" in out[0], name
    print(name, "loads and runs")

for name, ctor in [("fcn_resnet50", segmentation.fcn_resnet50),
                   ("deeplabv3_resnet50", segmentation.deeplabv3_resnet50)]:
    m = ctor(weights=None, weights_backbone=None, num_classes=5, aux_loss=True)
    m = load_into(m, "backbone.", ("classifier.", "aux_classifier."))
    with torch.no_grad():
        out = m(torch.rand(1, 3, 64, 64))["out"]
    assert tuple(out.shape) == (1, 5, 64, 64), out.shape
    print(name, "loads and runs")

# detectron2's ResNet-50 names and shapes.
expected = {}


def conv(name, cout, cin, k):
    expected[name + ".weight"] = (cout, cin, k, k)
    for b in ("weight", "bias", "running_mean", "running_var"):
        expected[name + ".norm." + b] = (cout,)


conv("stem.conv1", 64, 3, 7)
cin = 64
for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
    for i in range(blocks):
        p = "res%d.%d." % (stage + 2, i)
        conv(p + "conv1", width, cin, 1)
        conv(p + "conv2", width, width, 3)
        conv(p + "conv3", width * 4, width, 1)
        if i == 0:
            conv(p + "shortcut", width * 4, cin, 1)
        cin = width * 4
assert len(expected) == 265, len(expected)

reader = r'''
import pickle, sys
import numpy as np
with open(sys.argv[1], "rb") as f:
    d = pickle.load(f, encoding="latin1")
assert "torch" not in sys.modules
assert d["__author__"] and d["matching_heuristics"] is True, list(d)
m = d["model"]
assert all(type(v) is np.ndarray for v in m.values())
np.savez(sys.argv[2], **m)
'''
npz = pkl + ".npz"
subprocess.run([sys.executable, "-c", reader, pkl, npz], check=True)
import numpy as np  # noqa: E402

arrays = np.load(npz)
got = {k: tuple(arrays[k].shape) for k in arrays.files}
missing = sorted(set(expected) - set(got))
extra = sorted(set(got) - set(expected))
assert not missing and not extra, ("missing", missing[:5], "extra", extra[:5])
for k, shape in expected.items():
    assert got[k] == shape, (k, got[k], shape)


def torchvision_name(k):
    k = k.replace("stem.", "")
    for t in (1, 2, 3, 4):
        k = k.replace("res%d" % (t + 1), "layer%d" % t)
    k = k.replace("shortcut.norm", "downsample.1").replace("shortcut", "downsample.0")
    for t in (1, 2, 3):
        k = k.replace("conv%d.norm" % t, "bn%d" % t)
    return k


for k in expected:
    assert np.array_equal(arrays[k], sd[torchvision_name(k)].numpy()), k
print("detectron2 pickle: %d tensors with detectron2's R-50 names" % len(got))
