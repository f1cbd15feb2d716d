// Files that must never be left half-written, and pickles Python reads.
//
// atomic_write goes through PATH.tmp, fsync and rename, so a crash, a full
// disk or a kill leaves either the old file or the new one, never a torn one.
// save_pickle writes an IValue in torch.save's zip format (Python's
// torch.load reads it); load_pickle reads it back, or any file of Python's
// torch.save (io/torch_pickle.h), with errors naming the file.
//
//   c10::Dict<std::string, c10::IValue> ckpt;
//   ckpt.insert("epoch", int64_t{3});
//   moco::io::save_pickle("runs/x/checkpoint.pth.tar", ckpt);
#pragma once

#include <ATen/core/ivalue.h>

#include <string>
#include <vector>

namespace moco::io {

void atomic_write(const std::string& path, const char* data, size_t size);
void atomic_write(const std::string& path, const std::string& data);

void save_pickle(const std::string& path, const c10::IValue& value);
c10::IValue load_pickle(const std::string& path);

// An empty {str: any} dict, the shape of a checkpoint and its parts.
c10::impl::GenericDict new_dict();

// A dict IValue's entry, with an error naming the file and key if missing.
c10::IValue dict_get(const c10::IValue& dict, const std::string& key,
                     const std::string& path);

}  // namespace moco::io
