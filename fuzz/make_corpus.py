"""Seed inputs for the fuzz targets, written by Debian's Python torch/PIL.

Usage: make_corpus.py OUT_DIR   (makes OUT_DIR/<target>/ for each target)
Each seed is a valid input of its reader, small, so that mutations start
from files that reach deep into it: torch.save zip and legacy files (a
state dict, an optimizer with a one-element list, the official release
layout), raw pickles, IDX images/labels (plain and gzip'd), CIFAR records,
JPEG/PNG variants, file lists.
"""
import collections
import gzip
import io
import os
import pickle
import struct
import sys
import zipfile

import numpy as np
import torch
from PIL import Image

out = sys.argv[1]


def put(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


torch.manual_seed(0)
objs = {
    "tensor": torch.arange(6, dtype=torch.float32).view(2, 3),
    "strided": torch.arange(12, dtype=torch.float32).view(3, 4).t(),
    "state": collections.OrderedDict(
        w=torch.randn(4, 3), b=torch.zeros(4, dtype=torch.float64),
        n=torch.tensor(3)),
    "release": {"epoch": 200, "arch": "resnet18",
                "state_dict": {"module.encoder_q.fc.weight": torch.randn(2, 2)},
                "optimizer": {"state": {}, "param_groups": [
                    {"lr": 0.03, "params": [0]}]}},
    "mixed": [1, -2, 3.5, "s", b"b", None, True, (1, 2), {"k": [torch.ones(2)]}],
}
for name, obj in objs.items():
    buf = io.BytesIO()
    torch.save(obj, buf)
    put("torch_file", name + ".zip", buf.getvalue())
    # The pickle inside, for the target that wraps it in a zip of its own.
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        pkl = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        put("pickle", name + ".pkl", zf.read(pkl))
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    put("torch_file", name + ".legacy", buf.getvalue())
for proto in (2, 4):
    put("pickle", f"plain{proto}.pkl",
        pickle.dumps({"a": [1, 2, (3, 4.5)], "b": "x" * 5}, protocol=proto))

img = (np.arange(2 * 4 * 4) % 256).astype(np.uint8)
idx_images = struct.pack(">IIII", 0x803, 2, 4, 4) + img.tobytes()
idx_labels = struct.pack(">II", 0x801, 2) + bytes([1, 0])
# fuzz_idx: first byte bit 0 = gzip, bit 1 = the input is the label file.
put("idx", "images", b"\x00" + idx_images)
put("idx", "labels", b"\x02" + struct.pack(">II", 0x801, 2) + bytes([1, 0]))
put("idx", "images_gz", b"\x01" + idx_images)
put("idx", "labels_gz", b"\x03" + idx_labels)

rec = bytes([7]) + bytes(range(256)) * 12
put("cifar", "one", rec)
put("cifar", "two", rec + bytes([2]) + bytes(3072))

rng = np.random.default_rng(0)
rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
for name, im, fmt, kw in [
        ("rgb.jpg", Image.fromarray(rgb), "JPEG", {}),
        ("prog.jpg", Image.fromarray(rgb), "JPEG", {"progressive": True}),
        ("grey.jpg", Image.fromarray(rgb[:, :, 0]), "JPEG", {}),
        ("cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), "JPEG", {}),
        ("rgb.png", Image.fromarray(rgb), "PNG", {}),
        ("rgba.png", Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])), "PNG", {}),
        ("pal.png", Image.fromarray(rgb).quantize(8), "PNG", {"transparency": 0}),
        ("grey16.png", Image.fromarray((rgb[:, :, 0].astype(np.uint16) * 257)), "PNG", {}),
        ("inter.png", Image.fromarray(rgb), "PNG", {"interlace": 1})]:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    put("image", name, buf.getvalue())

put("file_list", "plain", b"a.png\n# comment\n  a.png  \n")
put("file_list", "labels", b"a.png 0\na.png 3\nd.jpg 1\n")
put("file_list", "missing", b"a.png\nnope.jpg\n/abs/x.png\n")


# Tar shards in the WebDataset layout: an image and its label per key, a
# caption, a .json label, a directory entry.
import tarfile


def shard(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


tiny = io.BytesIO()
Image.new("RGB", (3, 2), (10, 200, 30)).save(tiny, format="PNG")
tiny_jpeg = io.BytesIO()
Image.new("L", (4, 4), 99).save(tiny_jpeg, format="JPEG")
put("shard", "cls", shard([("000000.png", tiny.getvalue()), ("000000.cls", b"3"),
                           ("000001.jpg", tiny_jpeg.getvalue()), ("000001.cls", b"1\n")]))
put("shard", "json", shard([("d", None), ("d/a.JPEG", tiny_jpeg.getvalue()),
                            ("d/a.json", b'{"label": 2}'), ("d/a.txt", b"caption"),
                            ("d/b.cls", b"5")]))

# Brace patterns, as DATA names shards.
put("brace", "range", b"shards/train-{000000..000146}.tar")
put("brace", "alternatives", b"{a,b}-{8..10}-{x,y,z}.tar")
put("brace", "bad", b"a-{3..1}.tar")

# The streaming loader: its first byte says where the input is cut into two
# shards; a good pair, and one with an unreadable image among good ones.
pair = shard([("000000.png", tiny.getvalue()), ("000000.cls", b"3"),
              ("000001.jpg", tiny_jpeg.getvalue()), ("000001.cls", b"1")])
put("shard_loader", "good", bytes([128]) + pair + pair)
bad = shard([("000000.png", b"not a png"), ("000000.cls", b"0"),
             ("000001.png", tiny.getvalue()), ("000001.cls", b"1"),
             ("000002.jpg", tiny_jpeg.getvalue())])
put("shard_loader", "unreadable", bytes([100]) + bad + pair)
