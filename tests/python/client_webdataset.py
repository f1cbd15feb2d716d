"""The webdataset library against moco's shards.
  client_webdataset.py read PATTERN OUT   every sample of the shards, in order:
      OUT/KEY.EXT holds its image bytes, OUT/samples.json [key, ext, label]
  client_webdataset.py write OUT FILE:LABEL...   ShardWriter shards of the
      given images (3 a shard), keys s0000..., labels as .cls"""
import json
import os
import sys

import webdataset as wds

mode = sys.argv[1]
if mode == "read":
    pattern, out = sys.argv[2:4]
    rows = []
    for s in wds.WebDataset(pattern, shardshuffle=False):
        ext = next(k for k in s if k.lower() in ("jpg", "jpeg", "png"))
        with open(os.path.join(out, s["__key__"] + "." + ext), "wb") as f:
            f.write(s[ext])
        rows.append([s["__key__"], ext, int(s["cls"])])
    with open(os.path.join(out, "samples.json"), "w") as f:
        json.dump(rows, f)
elif mode == "write":
    out = sys.argv[2]
    with wds.ShardWriter(os.path.join(out, "wds-%06d.tar"), maxcount=3) as sink:
        for i, item in enumerate(sys.argv[3:]):
            path, label = item.rsplit(":", 1)
            ext = os.path.splitext(path)[1][1:].lower()
            with open(path, "rb") as f:
                sink.write({"__key__": "s%04d" % i, ext: f.read(), "cls": int(label)})
else:
    sys.exit("expected read or write, got " + mode)
