// Weighted kNN monitor of the official MoCo CIFAR demo (Wu et al. 2018):
// cosine similarity to a labelled feature bank, the top-k neighbours vote
// with weight exp(sim / t).
//
//   auto bank = extract_features(encode, train, ...);     // N x D, normalised
//   auto test = extract_features(encode, test_set, ...);
//   KnnResult r = knn_evaluate(bank, train_labels, test, test_labels, 10);
#pragma once

#include <torch/types.h>

#include <functional>

namespace moco::data {
struct ImageSet;
}

namespace moco::train {

// Class scores B x classes for normalised features B x D against a bank
// D x N with labels N.
torch::Tensor knn_predict(const torch::Tensor& features,
                          const torch::Tensor& bank,
                          const torch::Tensor& bank_labels, int64_t classes,
                          int64_t k, double t);

struct KnnResult {
  double top1 = 0, top5 = 0;
  int64_t bank_size = 0, test_size = 0;
  double seconds = 0;
};

KnnResult knn_evaluate(const torch::Tensor& bank_features,
                       const torch::Tensor& bank_labels,
                       const torch::Tensor& test_features,
                       const torch::Tensor& test_labels, int64_t classes,
                       int64_t k = 200, double t = 0.1, int64_t batch = 512);

// uint8 N x C x H x W -> float, [0, 1], (x - mean) / std per channel.
torch::Tensor normalize_images(const torch::Tensor& u8,
                               const std::vector<double>& mean,
                               const std::vector<double>& std);

// Encodes images[indices] (all when indices is undefined) in batches: uint8
// -> [0,1] -> normalise -> encode -> L2-normalise (unless l2_normalise is
// false). Returns N x D float32 on CPU.
// Image files are decoded, resized to crop_size * 256/224 and centre-cropped;
// an unreadable one raises, or, when `readable` is given, is marked false
// there (bool N) and gets a zero feature.
torch::Tensor extract_features(
    const std::function<torch::Tensor(const torch::Tensor&)>& encode,
    const data::ImageSet& set, const torch::Tensor& indices,
    const std::vector<double>& mean, const std::vector<double>& std,
    int64_t batch, const torch::Device& device, int64_t crop_size = 224,
    torch::Tensor* readable = nullptr, bool l2_normalise = true);

// The weighted kNN classifier end to end: features of `bank_count` training
// and `test_count` test images (evenly spaced; <= 0: all), unreadable image
// files left out, k capped at the bank's size.
KnnResult knn_score(
    const std::function<torch::Tensor(const torch::Tensor&)>& encode,
    const data::ImageSet& bank_set, const data::ImageSet& test_set,
    int64_t bank_count, int64_t test_count, const std::vector<double>& mean,
    const std::vector<double>& std, int64_t batch, const torch::Device& device,
    int64_t crop_size, int64_t k, double t);

// Evenly spaced indices selecting `count` of n samples (all when count <= 0
// or count >= n): a fixed, class-balanced-in-expectation subset.
torch::Tensor subset_indices(int64_t n, int64_t count);

}  // namespace moco::train
