"""Hostile WebDataset shards written by Python's tarfile, independently of
moco: runs of unreadable images, zero-byte images, members whose PAX
header claims far more bytes than the file holds, and labels that are not
class indices.

usage: make_hostile_shards.py OUT_DIR

Each case is OUT_DIR/<case>-000000.tar; sample i has key %06d and label i
(.cls) unless said otherwise:
  run40   200 samples, 60..99 not images
  run70   200 samples, 100..169 not images
  zero    48 samples, every image zero bytes
  pax2e9  20 good samples, then one whose PAX size says 2e9 (100 bytes there)
  pax1e12 the same, claiming 10^12
  pax3e8  the same, claiming 3e8 (under moco's member limit)
  pax3e8gz the same gzip'd (.tar.gz: the claim cannot be checked against
          the file's size, so the reader meets the end of the data)
  labels  .cls "+5", "5.0", " 7\\n", "0x5"; .json {"cls": 2.5}, {"cls": true},
          {"label": 3}: labels 7 and 3 read, the rest refused
"""
import io
import json
import os
import sys
import tarfile

from PIL import Image


def png(i):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (i % 256, 255 - i % 256, 7)).save(buf, format="PNG")
    return buf.getvalue()


def add(tar, name, data, pax=None):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 1700000000
    if pax:
        info.pax_headers = pax
    tar.addfile(info, io.BytesIO(data))


def write(out, case, samples, pax_tail=None, gz=False):
    path = os.path.join(out, "%s-000000.tar%s" % (case, ".gz" if gz else ""))
    with tarfile.open(path, "w:gz" if gz else "w", format=tarfile.PAX_FORMAT) as tar:
        for key, image, label_ext, label in samples:
            add(tar, key + ".png", image)
            if label_ext:
                add(tar, key + "." + label_ext, label)
        if pax_tail:
            add(tar, "%06d.png" % len(samples), b"x" * 100, {"size": str(pax_tail)})


def main(out):
    os.makedirs(out, exist_ok=True)

    def numbered(n, bad=range(0)):
        return [("%06d" % i, b"not an image" if i in bad else png(i), "cls", str(i).encode())
                for i in range(n)]

    write(out, "run40", numbered(200, range(60, 100)))
    write(out, "run70", numbered(200, range(100, 170)))
    write(out, "zero", [("%06d" % i, b"", "cls", str(i).encode()) for i in range(48)])
    for case, claim in (("pax2e9", 2 * 10**9), ("pax1e12", 10**12), ("pax3e8", 3 * 10**8)):
        write(out, case, numbered(20), pax_tail=claim)
    write(out, "pax3e8gz", numbered(20), pax_tail=3 * 10**8, gz=True)
    labels = [("cls", b"+5"), ("cls", b"5.0"), ("cls", b" 7\n"), ("cls", b"0x5"),
              ("json", json.dumps({"cls": 2.5}).encode()),
              ("json", json.dumps({"cls": True}).encode()),
              ("json", json.dumps({"label": 3}).encode())]
    write(out, "labels", [("%06d" % i, png(i), ext, text) for i, (ext, text) in enumerate(labels)])


if __name__ == "__main__":
    main(sys.argv[1])
