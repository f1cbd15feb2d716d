// The weighted kNN classifier of the official MoCo CIFAR demo (Wu et al.
// 2018): cosine similarity to a labelled feature bank, the top-k neighbours
// vote with weight exp(sim / t). Used by the pretraining monitor and by
// `moco knn`.
//
//   auto t = data::eval_transform(splits.train);
//   KnnResult r = knn_score(encode, splits.train, *splits.test, t,
//                           KnnOptions().k(200).t(0.1), device);
//   r.top1;   // in %
#pragma once

#include <torch/arg.h>
#include <torch/types.h>

#include <functional>

#include "data/eval_transform.h"

namespace moco::data {
struct ImageSet;
}

namespace moco::train {

struct KnnCommandOptions;
struct Invocation;

// The official CIFAR demo's neighbours and temperature: --knn-k, --knn-t.
constexpr int64_t kKnnK = 200;
constexpr double kKnnT = 0.1;

// Maps a normalised float batch to features (the encoder, or the pixels).
using Encoder = std::function<torch::Tensor(const torch::Tensor&)>;

struct KnnOptions {
  TORCH_ARG(int64_t, k) = kKnnK;
  TORCH_ARG(double, t) = kKnnT;
  TORCH_ARG(int64_t, bank) = 0;     // --knn-bank: bank images; 0: all
  TORCH_ARG(int64_t, test) = 0;     // --knn-test: test images; 0: all
  // Images per forward pass. 512 keeps the monitor's activations below the
  // training step's on 28-32 px images and ResNet-18.
  TORCH_ARG(int64_t, batch) = 512;
  TORCH_ARG(int64_t, workers) = 0;  // decoding threads (image files)
};

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
  int64_t crop = 0;  // moco knn: the evaluation crop of image files (0: in memory)
};

KnnResult knn_evaluate(const torch::Tensor& bank_features,
                       const torch::Tensor& bank_labels,
                       const torch::Tensor& test_features,
                       const torch::Tensor& test_labels, int64_t classes,
                       const KnnOptions& options = {});

struct FeatureOptions {
  TORCH_ARG(int64_t, batch) = 512;
  TORCH_ARG(int64_t, workers) = 0;  // decoding threads (image files)
  TORCH_ARG(torch::Device, device) = torch::kCPU;
  TORCH_ARG(bool, l2_normalise) = true;
};

struct Features {
  torch::Tensor values;    // N x D float32 on the CPU
  torch::Tensor readable;  // bool N: false for unreadable image files (zeros)
};

// Encodes set[indices] (all when undefined) in batches through `transform`
// and `encode`. An unreadable image file gets a zero row and false in
// `readable` (its warning is the loader's).
Features extract_features(const Encoder& encode, const data::ImageSet& set,
                          const torch::Tensor& indices,
                          const data::EvalTransform& transform,
                          const FeatureOptions& options);

// What knn_score scored, for pictures of it: rows of readable images only,
// with their indices into the bank and test sets.
struct KnnFeatures {
  torch::Tensor bank, test;                // L2-normalised, N x D
  torch::Tensor bank_index, test_index;    // int64 N
  torch::Tensor bank_labels, test_labels;  // int64 N
};

// The classifier end to end: features of options.bank() training and
// options.test() test images (evenly spaced), unreadable files left out, k
// capped at the bank's size. `kept` receives the features when given.
KnnResult knn_score(const Encoder& encode, const data::ImageSet& bank_set,
                    const data::ImageSet& test_set,
                    const data::EvalTransform& transform,
                    const KnnOptions& options, const torch::Device& device,
                    KnnFeatures* kept = nullptr);

// The pixels themselves as features (flattened), for the raw-pixel
// reference the monitor prints beside the encoder's.
torch::Tensor pixel_features(const torch::Tensor& x);

// `moco knn`: the classifier on a checkpoint's backbone features.
KnnResult run_knn(const KnnCommandOptions& options);
// `moco knn`: run_knn, and its result as one line on stdout.
int knn_command(const KnnCommandOptions& options, const Invocation& call);

}  // namespace moco::train
