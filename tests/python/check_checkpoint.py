"""Reads a `moco pretrain` checkpoint with Python's torch.load and checks the
official main_moco.py layout. Usage: check_checkpoint.py CKPT ARCH [mlp]

On torch 2.x it loads as a user's torch.load does by default since 2.6,
weights_only=True (1.13's weights-only unpickler knows no float opcode, not
even for torch.save's own files, so 1.13 loads it in full)."""
import sys

import torch

SAFE = {"weights_only": True} if int(torch.__version__.split(".")[0]) >= 2 else {}
ckpt = torch.load(sys.argv[1], map_location="cpu", **SAFE)
arch = sys.argv[2]
mlp = len(sys.argv) > 3 and sys.argv[3] == "mlp"
assert isinstance(ckpt, dict), type(ckpt)
for key in ("epoch", "arch", "state_dict", "optimizer"):
    assert key in ckpt, key
assert ckpt["arch"] == arch, ckpt["arch"]
sd = ckpt["state_dict"]
for key in ("module.encoder_q.conv1.weight", "module.encoder_k.conv1.weight",
            "module.encoder_q.layer1.0.bn1.running_mean",
            "module.queue", "module.queue_ptr"):
    assert key in sd, key
# The v2 head is torchvision-indexed: fc.0 (Linear), fc.1 (ReLU), fc.2.
fc = ["fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"] if mlp \
    else ["fc.weight", "fc.bias"]
for name in fc:
    assert "module.encoder_q." + name in sd, name
assert sd["module.queue_ptr"].dtype == torch.int64
norms = sd["module.queue"].norm(dim=0)
assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)
opt = ckpt["optimizer"]
assert set(opt.keys()) == {"state", "param_groups"}, opt.keys()
group = opt["param_groups"][0]
n_q = len([k for k in sd if k.startswith("module.encoder_q.") and
           not k.endswith(("running_mean", "running_var",
                           "num_batches_tracked"))])
assert group["params"] == list(range(2 * n_q)), len(group["params"])
assert len(opt["state"]) == n_q
assert opt["state"][0]["momentum_buffer"].shape == \
    sd["module.encoder_q.conv1.weight"].shape
# The same dict loads into a torch.optim.SGD over MoCo-ordered parameters.
params = [sd[k].clone().requires_grad_() for k in sd
          if k.startswith(("module.encoder_q.", "module.encoder_k.")) and
          not k.endswith(("running_mean", "running_var",
                          "num_batches_tracked"))]
sgd = torch.optim.SGD(params, lr=0.1, momentum=0.9)
sgd.load_state_dict(opt)
print("ok", ckpt["epoch"], len(sd))
