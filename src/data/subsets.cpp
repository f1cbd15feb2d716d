#include "data/subsets.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "core/rng.h"
#include "data/dataset.h"
#include "io/checkpoint.h"

namespace moco::data {

std::vector<int64_t> stratified_subset(const torch::Tensor& labels,
                                       const SubsetSize& size, uint64_t seed) {
  TORCH_CHECK(labels.defined() && labels.dim() == 1,
              "expected labelled images for a labelled subset");
  TORCH_CHECK(size.per_class > 0 || (size.fraction > 0 && size.fraction <= 1),
              "expected --label-fraction in (0, 1], got ", size.fraction);
  const auto l = labels.to(torch::kLong).contiguous();
  const int64_t* y = l.data_ptr<int64_t>();
  const int64_t n = l.numel();
  std::map<int64_t, int64_t> count;
  for (int64_t i = 0; i < n; ++i) ++count[y[i]];
  std::map<int64_t, int64_t> want;
  for (const auto& [c, k] : count) {
    if (size.per_class > 0) {
      TORCH_CHECK(size.per_class <= k, "expected --labels-per-class <= ", k,
                  ": class ", c, " has only ", k, " training images, got ",
                  size.per_class);
      want[c] = size.per_class;
    } else {
      want[c] = std::clamp<int64_t>(
          std::llround(size.fraction * static_cast<double>(k)), 1, k);
    }
  }
  // One permutation of all images, each class taking its first images in
  // it: the same seed gives nested subsets for growing sizes.
  std::vector<int64_t> out;
  for (int64_t i : permutation(n, mix_seed(seed, 0x5ab5e7))) {
    if (want[y[i]] > 0) {
      --want[y[i]];
      out.push_back(i);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

ImageSet select(const ImageSet& set, const std::vector<int64_t>& indices) {
  ImageSet s;
  const auto idx = torch::tensor(indices, torch::kLong);
  if (set.images.defined()) s.images = set.images.index_select(0, idx);
  for (int64_t i : indices) {
    TORCH_INTERNAL_ASSERT(i >= 0 && i < set.size());
    if (set.on_disk()) s.files.push_back(set.files[i]);
  }
  if (set.labels.defined()) s.labels = set.labels.index_select(0, idx);
  s.file_channels = set.file_channels;
  s.max_image_pixels = set.max_image_pixels;
  s.num_classes = set.num_classes;
  s.classes = set.classes;
  s.description = set.description;
  s.summary = set.summary;
  return s;
}

void write_subset(const std::string& path, const ImageSet& set,
                  const std::vector<int64_t>& indices) {
  std::ostringstream out;
  out << "# moco labelled subset: " << indices.size() << " of " << set.size()
      << " training images of " << set.description
      << "\n# index\tlabel\tfile\n";
  for (int64_t i : indices) {
    out << i << '\t' << set.labels[i].item<int64_t>() << '\t'
        << (set.on_disk() ? set.files[i] : "") << '\n';
  }
  io::atomic_write(path, out.str());
}

std::vector<int64_t> read_subset(const std::string& path, const ImageSet& set) {
  std::ifstream in(path);
  TORCH_CHECK(in.good(), "cannot read the label subset ", path);
  std::vector<int64_t> out;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string index_text, label_text;
    std::getline(words, index_text, '\t');
    std::getline(words, label_text, '\t');
    std::string file;
    std::getline(words, file);
    int64_t index = -1, label = -1;
    try {
      size_t used = 0;
      index = std::stoll(index_text, &used);
      TORCH_CHECK(used == index_text.size(), "");
      label = std::stoll(label_text, &used);
      TORCH_CHECK(used == label_text.size(), "");
    } catch (const std::exception&) {
      TORCH_CHECK(false, path, ":", line_no,
                  ": expected 'index<TAB>label<TAB>file', got '", line, "'");
    }
    TORCH_CHECK(index >= 0 && index < set.size(), path, ":", line_no,
                ": index ", index, " is outside the ", set.size(),
                " training images of ", set.description,
                " (a subset of another dataset?)");
    const int64_t have = set.labels[index].item<int64_t>();
    TORCH_CHECK(have == label, path, ":", line_no, ": image ", index,
                " has label ", have, " here, not ", label,
                " (a subset of another dataset?)");
    TORCH_CHECK(!set.on_disk() || file.empty() || set.files[index] == file,
                path, ":", line_no, ": image ", index, " is ", set.files[index],
                " here, not ", file, " (a subset of another dataset?)");
    out.push_back(index);
  }
  TORCH_CHECK(!out.empty(), "the label subset ", path, " lists no images");
  std::vector<int64_t> sorted = out;
  std::sort(sorted.begin(), sorted.end());
  TORCH_CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end(),
              path, " lists an image twice");
  return out;
}

void hold_out_validation(Splits& s, double fraction, uint64_t seed) {
  TORCH_CHECK(fraction > 0 && fraction < 1,
              "expected --val-split in (0, 1), got ", fraction);
  ImageSet& base = s.train_labelled ? *s.train_labelled : s.train;
  TORCH_CHECK(base.labelled(), "--val-split needs labelled training images");
  const auto val = stratified_subset(base.labels, {fraction, 0}, seed);
  std::vector<bool> in_val(static_cast<size_t>(base.size()), false);
  for (int64_t i : val) in_val[static_cast<size_t>(i)] = true;
  std::vector<int64_t> rest;
  for (int64_t i = 0; i < base.size(); ++i) {
    if (!in_val[static_cast<size_t>(i)]) rest.push_back(i);
  }
  TORCH_CHECK(!rest.empty(), "--val-split ", fraction,
              " leaves no training images");
  ImageSet held = select(base, val);
  held.description = base.description + " (--val-split " +
                     c10::str(fraction) + ", " + std::to_string(val.size()) +
                     " held out)";
  held.summary = std::to_string(val.size()) + " images, " +
                 std::to_string(base.num_classes) + " classes";
  ImageSet kept = select(base, rest);
  kept.description = base.description + " (without the " +
                     std::to_string(val.size()) + " held out)";
  kept.summary = std::to_string(rest.size()) + " images kept of " + base.summary;
  s.test = std::move(held);
  base = std::move(kept);
}

}  // namespace moco::data
