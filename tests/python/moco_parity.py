"""The reference side of the step parity test (tests/train/parity_test.cpp):
N MoCo steps with bench/moco_peer.py (the official builder.py / main_moco.py
semantics on torchvision) from moco's initial weights, on given batches and
shuffle permutations, with main_moco.py's SGD and learning-rate schedule.

Usage: moco_parity.py CONFIG.json INIT.pth BATCHES.pth OUT.pth
CONFIG: arch, dim, K, m, T, mlp, symmetric, bn_splits, lr, momentum, wd, cos,
schedule, epochs, steps_per_epoch. INIT: moco's checkpoint-style state dict
(module.encoder_q.*, module.encoder_k.*, module.queue, module.queue_ptr).
BATCHES: im_q, im_k (steps x B x C x H x W), perm (steps x calls x B).
OUT: loss (steps), lr (steps), and the final state dict under the same names.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bench"))
from moco_peer import MoCo, adjust_learning_rate  # noqa: E402

cfg = json.load(open(sys.argv[1]))
init = torch.load(sys.argv[2], weights_only=True)
batches = torch.load(sys.argv[3], weights_only=True)
torch.set_num_threads(1)

perms = iter([p for step in batches["perm"] for p in step])
model = MoCo(dim=cfg["dim"], K=cfg["K"], m=cfg["m"], T=cfg["T"],
             symmetric=cfg["symmetric"], shuffle=lambda n, dev: next(perms),
             arch=cfg["arch"], bn_splits=cfg["bn_splits"], small_stem=True,
             in_channels=batches["im_q"].shape[2], mlp=cfg["mlp"])
state = {k[len("module."):]: v for k, v in init.items()}
model.load_state_dict(state, strict=True)
model.train()
if cfg.get("float64"):
    model.double()
    batches = {k: (v.double() if v.is_floating_point() else v) for k, v in batches.items()}
# main_moco.py: SGD over model.parameters() (encoder_k's have no grad).
optimizer = torch.optim.SGD(model.parameters(), cfg["lr"],
                            momentum=cfg["momentum"], weight_decay=cfg["wd"])
losses, lrs = [], []
step = 0
for epoch in range(cfg["epochs"]):
    lr = adjust_learning_rate(optimizer, cfg["lr"], epoch, cfg["epochs"],
                              cfg["cos"], cfg["schedule"])
    for _ in range(cfg["steps_per_epoch"]):
        loss, _ = model(batches["im_q"][step], batches["im_k"][step])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        lrs.append(lr)
        step += 1
out = {"module." + k: v for k, v in model.state_dict().items()}
out["loss"] = torch.tensor(losses, dtype=torch.float64)
out["lr"] = torch.tensor(lrs, dtype=torch.float64)
torch.save(out, sys.argv[4])
