"""torchvision.datasets.ImageFolder's listing of a folder, the reference for
tests/data/dataset_test: writes {"classes": [...], "samples": [[path, label]]}
as JSON.

Usage: tv_imagefolder.py DIR OUT.json
"""
import json
import sys

import torchvision.datasets as datasets

ds = datasets.ImageFolder(sys.argv[1])
with open(sys.argv[2], "w") as f:
    json.dump({"classes": ds.classes, "samples": ds.samples}, f)
