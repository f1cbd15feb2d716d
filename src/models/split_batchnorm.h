// BatchNorm2d that, in training, normalises `num_splits` sub-batches apart,
// as the official MoCo CIFAR demo's SplitBatchNorm: one process then behaves
// like `num_splits` GPUs each with its own BN statistics, which is what
// shuffle-BN needs. Parameter and buffer names are BatchNorm2d's, so weights
// load into torchvision; with num_splits == 1 (or in eval) it is BatchNorm2d.
//
// The split follows the demo's input.view(-1, C * S, H, W): sample n falls in
// sub-batch n % S. On channels-last input (--channels-last) sub-batch s is
// the run of samples s*N/S .. (s+1)*N/S - 1 instead, normalised in place
// (NHWC memory cannot take the demo's view without copying).
//
//   SplitBatchNorm2d bn(SplitBatchNorm2dOptions(64).num_splits(8));
#pragma once

#include <torch/nn/cloneable.h>

#include <functional>

namespace moco::models {

struct SplitBatchNorm2dOptions {
  explicit SplitBatchNorm2dOptions(int64_t num_features)
      : num_features_(num_features) {}
  TORCH_ARG(int64_t, num_features);
  TORCH_ARG(int64_t, num_splits) = 1;
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(double, momentum) = 0.1;
};

class SplitBatchNorm2dImpl
    : public torch::nn::Cloneable<SplitBatchNorm2dImpl> {
 public:
  explicit SplitBatchNorm2dImpl(const SplitBatchNorm2dOptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& input);
  void pretty_print(std::ostream& stream) const override;
  int64_t num_splits() const { return options.num_splits(); }
  void set_num_splits(int64_t s);
  // SyncBN: in training, batch statistics over every process's batch,
  // through `all_reduce_sum` (a sum over processes, supplied by the caller;
  // its gradient is the same sum of gradients). Unset: local statistics.
  void set_sync(std::function<torch::Tensor(const torch::Tensor&)> all_reduce_sum);

  SplitBatchNorm2dOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 private:
  torch::Tensor sync_forward(const torch::Tensor& input);
  int64_t sync_id_ = -1;  // index of the reducer in a registry, -1: none
};
TORCH_MODULE(SplitBatchNorm2d);

}  // namespace moco::models
