"""TensorBoard's own reader on a folder of event files: every scalar tag
with its (step, value) pairs, as JSON. Usage: client_tensorboard.py DIR OUT"""
import json
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

acc = EventAccumulator(sys.argv[1], size_guidance={"scalars": 0})  # 0: keep all
acc.Reload()
out = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
with open(sys.argv[2], "w") as f:
    json.dump(out, f)
