#include "train/sgd.h"

#include <torch/torch.h>

#include <cmath>

namespace moco::train {

Sgd::Sgd(std::vector<torch::Tensor> params, SgdOptions options)
    : params_(std::move(params)), options_(options) {
  TORCH_CHECK(options_.lr() >= 0, "expected --lr >= 0, got ", options_.lr());
  TORCH_CHECK(options_.momentum() >= 0, "expected --momentum >= 0, got ",
              options_.momentum());
  TORCH_CHECK(options_.weight_decay() >= 0, "expected --wd >= 0, got ",
              options_.weight_decay());
}

void Sgd::step() {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  grads.reserve(params_.size());
  for (const auto& p : params_) {
    TORCH_INTERNAL_ASSERT(p.grad().defined(), "parameter without gradient");
    grads.push_back(p.grad());
  }
  // d_p = grad + wd * p, computed into the gradients (dropped after).
  if (options_.weight_decay() != 0) {
    torch::_foreach_add_(grads, params_, options_.weight_decay());
  }
  if (options_.momentum() != 0) {
    if (buffers_.empty()) {
      for (const auto& g : grads) buffers_.push_back(g.clone());
    } else {
      torch::_foreach_mul_(buffers_, options_.momentum());
      torch::_foreach_add_(buffers_, grads);
    }
    torch::_foreach_add_(params_, buffers_, -options_.lr());
  } else {
    torch::_foreach_add_(params_, grads, -options_.lr());
  }
}

void Sgd::zero_grad() {
  for (auto& p : params_) p.mutable_grad() = torch::Tensor();
}

double learning_rate(double base_lr, int64_t epoch, int64_t epochs, bool cos,
                     const std::vector<int64_t>& schedule) {
  double lr = base_lr;
  if (cos) {
    lr *= 0.5 * (1.0 + std::cos(M_PI * static_cast<double>(epoch) / epochs));
  } else {
    for (int64_t milestone : schedule) {
      if (epoch >= milestone) lr *= 0.1;
    }
  }
  return lr;
}

}  // namespace moco::train
