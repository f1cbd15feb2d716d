// Reads files written by Python's torch.save: the zip format (PyTorch >= 1.6)
// and the legacy format the official MoCo releases use (PyTorch 1.4), with
// our own unpickler for the part of Python's pickle that torch.save emits.
//
// LibTorch 1.13's unpickler (torch::pickle_load) rejects some of it, e.g.
// the APPEND opcode Python uses for one-element lists such as an optimizer's
// param_groups[0]['params'] when a group has one parameter, and the legacy
// format altogether; hence this reader.
//
//   c10::IValue ckpt = moco::io::read_torch_file("moco_v2_800ep_pretrain.pth.tar");
//   auto sd = moco::io::dict_get(ckpt, "state_dict", path).toGenericDict();
#pragma once

#include <ATen/core/ivalue.h>

#include <string>

namespace moco::io {

// Dicts come back as GenericDicts (keys str or int; OrderedDict included),
// lists as GenericLists, tuples as tuples, tensors with their dtype, shape
// and strides (storages shared as in Python). Anything else (a pickled
// Python class other than the few torch.save needs) raises a c10::Error
// naming the file and the class.
c10::IValue read_torch_file(const std::string& path);

}  // namespace moco::io
