// Labelled subsets, stratified by class and seeded: the few-label training
// sets of semi-supervised fine-tuning (1% or 10% of the labels, or N images
// per class) and validation splits held out of data without a test split.
// For one seed the subsets are nested (the 1% subset lies inside the 10%
// one), and the chosen images can be written out and read back, so a subset
// can be reproduced or reused by another run.
//
//   auto idx = data::stratified_subset(set.labels, {0.01, 0}, /*seed=*/0);
//   data::write_subset("runs/ft/labels.txt", set, idx);
//   data::ImageSet few = data::select(set, idx);
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace moco::data {

struct ImageSet;
struct Splits;

struct SubsetSize {
  double fraction = 1.0;  // of each class, rounded, at least one image
  int64_t per_class = 0;  // > 0: exactly this many of each class instead
};

// Indices (ascending) of a class-stratified subset of `labels` (int64 N).
// Errors name --label-fraction / --labels-per-class.
std::vector<int64_t> stratified_subset(const torch::Tensor& labels,
                                       const SubsetSize& size, uint64_t seed);

// The images, labels and files of `set` at `indices`, in that order.
ImageSet select(const ImageSet& set, const std::vector<int64_t>& indices);

// A subset as text: a comment line, then "index<TAB>label<TAB>file" per
// image (file empty for in-memory datasets). Written atomically.
void write_subset(const std::string& path, const ImageSet& set,
                  const std::vector<int64_t>& indices);

// Reads a file written by write_subset and checks it against `set` (index
// in range, same label, same file); errors name the file and line.
std::vector<int64_t> read_subset(const std::string& path, const ImageSet& set);

// --val-split: moves a stratified `fraction` of the labelled training images
// into the test split, for data that has none.
void hold_out_validation(Splits& splits, double fraction, uint64_t seed);

}  // namespace moco::data
