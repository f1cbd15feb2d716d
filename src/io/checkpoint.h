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
#include <utility>
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
// The same, checked to be an integer in [lo, hi], or a finite number; the
// error names the file, the key and what was found.
int64_t dict_int(const c10::IValue& dict, const std::string& key,
                 const std::string& path, int64_t lo, int64_t hi);
double dict_double(const c10::IValue& dict, const std::string& key,
                   const std::string& path);

// Names of the tensors holding NaN or infinity (floating point only), so the
// commands that load weights can say that a run diverged before using them.
std::vector<std::string> non_finite_tensors(
    const std::vector<std::pair<std::string, at::Tensor>>& tensors);

}  // namespace moco::io
