// Tensors in the files the Python world reads without torch: NumPy's .npy,
// the safetensors format and detectron2's .pkl checkpoints (a pickle of
// NumPy arrays). All are written atomically.
//
//   moco::io::write_npy("feats.npy", features);            // numpy.load reads it
//   moco::io::write_safetensors("model.safetensors",
//                               {{"conv1.weight", w}}, {{"format", "pt"}});
#pragma once

#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace moco::io {

// float32/float64/int64/int32/uint8/bool tensors, C order, little-endian.
void write_npy(const std::string& path, const torch::Tensor& t);

// Header (8-byte little-endian length, JSON with dtype, shape and
// data_offsets per tensor, optional __metadata__), then the tensors' bytes,
// in the given order.
void write_safetensors(
    const std::string& path,
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    const std::map<std::string, std::string>& metadata = {});

// Reads what write_safetensors (or the safetensors library) wrote: every
// tensor, by name. Each offset, shape and dtype is checked against the
// file's size before anything is allocated; errors name the file.
std::map<std::string, torch::Tensor> read_safetensors(const std::string& path);

// detectron2's checkpoint format: a Python pickle (protocol 3) of
// {"model": {name: numpy.ndarray}, "__author__": author,
//  "matching_heuristics": True}, which detectron2's DetectionCheckpointer and
// Python's pickle with NumPy (no torch) load. float32/float64/int64 tensors.
void write_detectron2_pickle(
    const std::string& path,
    const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    const std::string& author);

}  // namespace moco::io
