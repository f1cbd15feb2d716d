"""WebDataset-layout tar shards written by Python's tarfile, independently of
moco: the layout the field's tools write (members grouped by basename,
sorted within a sample), with what real shards hold besides images.

usage: make_wds_shards.py OUT_DIR

Writes OUT_DIR/wds-000000.tar .. wds-000002.tar and OUT_DIR/expected.json:
{"samples": [{"key", "label", "sha256", "ext"}, ...] in archive order,
 "ignored": members that are neither image nor label}.
"""
import hashlib
import io
import json
import os
import sys
import tarfile

from PIL import Image


def image_bytes(i, fmt):
    img = Image.new("RGB", (20 + i % 7, 16 + i % 5), ((37 * i) % 256, (91 * i) % 256, 200))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1700000000
    tar.addfile(info, io.BytesIO(data))


def main(out):
    os.makedirs(out, exist_ok=True)
    expected = {"samples": [], "ignored": 0}
    i = 0
    for shard in range(3):
        path = os.path.join(out, "wds-%06d.tar" % shard)
        with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
            # A directory entry, as `tar cf` of a folder writes.
            d = tarfile.TarInfo("train")
            d.type = tarfile.DIRTYPE
            tar.addfile(d)
            for _ in range(5):
                key = "train/s%05d" % i
                fmt, ext = [("JPEG", "jpg"), ("PNG", "png"), ("JPEG", "JPEG")][i % 3]
                data = image_bytes(i, fmt)
                label = (3 * i) % 4
                # Alphabetical within the sample, as WebDataset's writer sorts.
                if i % 2 == 0:
                    add(tar, key + ".cls", str(label).encode())
                else:
                    add(tar, key + "." + ext, data)
                    add(tar, key + ".json", json.dumps({"label": label, "w": 1}).encode())
                    expected["samples"].append(
                        {"key": key, "label": label, "ext": ext.lower(),
                         "sha256": hashlib.sha256(data).hexdigest()})
                    i += 1
                    continue
                add(tar, key + "." + ext, data)
                add(tar, key + ".txt", b"a caption")
                expected["ignored"] += 1
                expected["samples"].append(
                    {"key": key, "label": label, "ext": ext.lower(),
                     "sha256": hashlib.sha256(data).hexdigest()})
                i += 1
            # A sample with no image: passed over.
            add(tar, "train/orphan%d.cls" % shard, b"1")
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main(sys.argv[1])
