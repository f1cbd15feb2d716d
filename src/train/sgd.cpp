#include "train/sgd.h"

#include "io/checkpoint.h"

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

c10::impl::GenericDict sgd_state_dict(Sgd& sgd, int64_t extra_params,
                                      double initial_lr) {
  auto dict = [](const c10::TypePtr& key) {
    return c10::impl::GenericDict(key, c10::AnyType::get());
  };
  auto state = dict(c10::IntType::get());
  const auto& bufs = sgd.momentum_buffers();
  for (size_t i = 0; i < bufs.size(); ++i) {
    if (!bufs[i].defined()) continue;
    auto s = dict(c10::StringType::get());
    s.insert("momentum_buffer", bufs[i].cpu());
    state.insert(static_cast<int64_t>(i), s);
  }
  auto group = dict(c10::StringType::get());
  group.insert("lr", sgd.options().lr());
  group.insert("momentum", sgd.options().momentum());
  group.insert("dampening", 0.0);
  group.insert("weight_decay", sgd.options().weight_decay());
  group.insert("nesterov", false);
  group.insert("maximize", false);
  group.insert("foreach", c10::IValue());
  group.insert("differentiable", false);
  if (initial_lr >= 0) group.insert("initial_lr", initial_lr);
  c10::List<int64_t> ids;
  const int64_t total = static_cast<int64_t>(sgd.params().size()) + extra_params;
  for (int64_t i = 0; i < total; ++i) ids.push_back(i);
  group.insert("params", ids);
  c10::impl::GenericList groups(c10::AnyType::get());
  groups.push_back(group);
  auto out = dict(c10::StringType::get());
  out.insert("state", state);
  out.insert("param_groups", groups);
  return out;
}

void sgd_load_state(Sgd& sgd, const c10::IValue& optimizer,
                    const std::string& path) {
  const auto state = io::dict_get(optimizer, "state", path).toGenericDict();
  auto& bufs = sgd.momentum_buffers();
  bufs.clear();
  if (state.size() == 0) return;
  for (size_t i = 0; i < sgd.params().size(); ++i) {
    auto it = state.find(c10::IValue(static_cast<int64_t>(i)));
    TORCH_CHECK(it != state.end(), "checkpoint ", path,
                ": optimizer state lacks parameter ", i);
    auto buf = io::dict_get(it->value(), "momentum_buffer", path).toTensor();
    bufs.push_back(buf.to(sgd.params()[i].device()).clone());
  }
}

}  // namespace moco::train
