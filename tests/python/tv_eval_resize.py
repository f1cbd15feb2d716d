"""torchvision's evaluation transform on uint8 tensors, the reference for
load_eval_images: Resize(RESIZE, antialias=True) then CenterCrop(SIZE).

Usage: tv_eval_resize.py IN.pt OUT.pt RESIZE SIZE  (IN: {name: uint8 CxHxW})
"""
import sys

import torch
import torchvision.transforms.functional as F

inp = torch.load(sys.argv[1], weights_only=True)
resize, size = int(sys.argv[3]), int(sys.argv[4])
out = {}
for name, img in inp.items():
    x = F.resize(img.float(), resize, antialias=True)
    x = F.center_crop(x, [size, size])
    out[name] = x.round().clamp(0, 255).to(torch.uint8)
torch.save(out, sys.argv[2])
