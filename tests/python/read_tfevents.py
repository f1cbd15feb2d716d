"""An independent reader of TensorBoard event files, for
tests/io/tensorboard_test.

Usage: read_tfevents.py FILE OUT.json
Checks every record's framing (8-byte length, masked CRC-32C of the length,
data, masked CRC-32C of the data; CRC-32C computed here bit by bit, from
the Castagnoli polynomial), decodes each Event protocol buffer by hand
(wall_time, step, file_version, summary.value.tag/simple_value) and prints
one JSON list of [tag, step, value] to OUT.json. The first event must be the file
version "brain.Event:2". Where the tensorboard package is installed, its
own EventAccumulator must read the same scalars.
"""
import json
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def masked(data):
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def fields(buf):
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 1:
            v = buf[i:i + 8]
            i += 8
        elif wire == 5:
            v = buf[i:i + 4]
            i += 4
        elif wire == 2:
            n, i = varint(buf, i)
            v = buf[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wire)
        yield field, v


path = sys.argv[1]
raw = open(path, "rb").read()
i = 0
scalars, versions = [], []
while i < len(raw):
    header = raw[i:i + 8]
    (n,) = struct.unpack("<Q", header)
    (crc,) = struct.unpack("<I", raw[i + 8:i + 12])
    assert crc == masked(header), "length CRC at %d" % i
    data = raw[i + 12:i + 12 + n]
    (dcrc,) = struct.unpack("<I", raw[i + 12 + n:i + 16 + n])
    assert dcrc == masked(data), "data CRC at %d" % i
    i += 16 + n
    step = 0
    for f, v in fields(data):
        if f == 2:
            step = v
        elif f == 3:
            versions.append(v.decode())
        elif f == 5:
            for sf, sv in fields(v):
                assert sf == 1
                tag, value = None, None
                for vf, vv in fields(sv):
                    if vf == 1:
                        tag = vv.decode()
                    elif vf == 2:
                        (value,) = struct.unpack("<f", vv)
                scalars.append([tag, step, value])
assert versions and versions[0] == "brain.Event:2", versions
try:
    from tensorboard.backend.event_processing import event_accumulator
except ImportError:
    print("tensorboard is not installed here: its reader skipped", file=sys.stderr)
else:
    acc = event_accumulator.EventAccumulator(path)
    acc.Reload()
    theirs = sorted([t, e.step, e.value] for t in acc.Tags()["scalars"]
                    for e in acc.Scalars(t))
    assert theirs == sorted(scalars), (theirs[:3], sorted(scalars)[:3])
    print("tensorboard's EventAccumulator reads the same scalars", file=sys.stderr)
with open(sys.argv[2], "w") as f:
    json.dump(scalars, f)
