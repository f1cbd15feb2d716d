#include "train/amp.h"

#include <ATen/autocast_mode.h>

#include "core/autocast.h"
#include <torch/torch.h>

namespace moco::train {

LossScaler::LossScaler(double init_scale, double growth_factor,
                       double backoff_factor, int64_t growth_interval)
    : scale_(init_scale),
      growth_(growth_factor),
      backoff_(backoff_factor),
      interval_(growth_interval) {
  TORCH_CHECK(init_scale > 0 && growth_factor > 1 && backoff_factor > 0 &&
                  backoff_factor < 1 && growth_interval > 0,
              "expected a positive scale, growth > 1, 0 < backoff < 1 and a "
              "positive interval");
}

torch::Tensor LossScaler::scale(const torch::Tensor& loss) const {
  return loss * scale_;
}

bool LossScaler::unscale_and_update(const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : params) {
    if (p.grad().defined()) grads.push_back(p.grad());
  }
  bool found_inf = false;
  if (!grads.empty()) {
    auto found = torch::zeros({1}, grads[0].options().dtype(torch::kFloat));
    if (grads[0].is_cuda()) {
      // The fused kernel: one launch per group of tensors, no host sync.
      auto inv = torch::full({1}, 1.0 / scale_, found.options());
      at::_amp_foreach_non_finite_check_and_unscale_(grads, found, inv);
    } else {
      torch::NoGradGuard no_grad;
      for (auto& g : grads) {
        found.add_(torch::logical_not(torch::isfinite(g)).any().to(torch::kFloat));
      }
      torch::_foreach_mul_(grads, 1.0 / scale_);
    }
    found_inf = found.item<float>() > 0;
  }
  if (found_inf) {
    scale_ *= backoff_;
    tracker_ = 0;
  } else if (++tracker_ == interval_) {
    scale_ *= growth_;
    tracker_ = 0;
  }
  return !found_inf;
}

void LossScaler::load(double scale, int64_t tracker) {
  TORCH_CHECK(scale > 0 && tracker >= 0, "expected a positive loss scale, got ",
              scale);
  scale_ = scale;
  tracker_ = tracker;
}

AutocastGuard::AutocastGuard(bool cuda, c10::optional<at::ScalarType> dtype)
    : cuda_(cuda), on_(dtype.has_value()) {
  if (!on_) return;
  const auto d = cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  was_enabled_ = autocast::enabled(d);
  was_dtype_ = autocast::dtype(d);
  autocast::set_dtype(d, *dtype);
  autocast::set_enabled(d, true);
}

AutocastGuard::AutocastGuard(AutocastGuard&& other) noexcept
    : cuda_(other.cuda_),
      on_(other.on_),
      was_enabled_(other.was_enabled_),
      was_dtype_(other.was_dtype_) {
  other.on_ = false;
}

AutocastGuard::~AutocastGuard() {
  if (!on_) return;
  const auto d = cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  autocast::set_enabled(d, was_enabled_);
  autocast::set_dtype(d, was_dtype_);
  // The casts of the weights are cached for the scope: drop them, they are
  // stale after the optimizer step.
  if (!was_enabled_) at::autocast::clear_cache();
}

Amp::Amp(const std::string& mode, const torch::Device& device)
    : mode_(mode), cuda_(device.is_cuda()) {
  TORCH_CHECK(mode == "off" || mode == "bf16" || mode == "fp16",
              "expected --amp off, bf16 or fp16, got '", mode, "'");
  TORCH_CHECK(mode != "fp16" || cuda_,
              "--amp fp16 needs a CUDA device (--device cuda); on the CPU use "
              "--amp bf16");
}

AutocastGuard Amp::autocast() const {
  c10::optional<at::ScalarType> dtype;
  if (mode_ == "bf16") dtype = at::kBFloat16;
  if (mode_ == "fp16") dtype = at::kHalf;
  return AutocastGuard(cuda_, dtype);
}

torch::Tensor Amp::scale(const torch::Tensor& loss) const {
  return scaling() ? scaler_.scale(loss) : loss;
}

bool Amp::unscale_and_check(const std::vector<torch::Tensor>& params) {
  return scaling() ? scaler_.unscale_and_update(params) : true;
}

void enable_cudnn_autotune() { at::globalContext().setBenchmarkCuDNN(true); }

}  // namespace moco::train
