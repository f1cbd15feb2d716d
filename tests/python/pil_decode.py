"""PIL's decoding of image files, the reference for tests/data/image_decode_test.

Usage: pil_decode.py OUT.pt NAME=PATH[,MODE[,DRAFT_W,DRAFT_H]] ...
MODE is RGB (default) or L; with DRAFT_W/H, JPEGs are decoded through
Image.draft(), i.e. libjpeg's DCT scaling to the smallest size >= that.
Writes {NAME: uint8 tensor H x W x C}.
"""
import sys

import numpy as np
import torch
from PIL import Image

out = {}
for arg in sys.argv[2:]:
    name, spec = arg.split("=", 1)
    parts = spec.split(",")
    path = parts[0]
    mode = parts[1] if len(parts) > 1 else "RGB"
    img = Image.open(path)
    if len(parts) > 3:
        img.draft(mode if img.mode != "CMYK" else None,
                  (int(parts[2]), int(parts[3])))
    img = img.convert(mode)
    a = np.asarray(img, dtype=np.uint8)
    if a.ndim == 2:
        a = a[:, :, None]
    out[name] = torch.from_numpy(a.copy())
torch.save(out, sys.argv[1])
