// Mixed precision for the training step: autocast over the encoders' forward
// passes (bf16 on CPU or CUDA, fp16 on CUDA) and, for fp16, a dynamic loss
// scaler with torch.cuda.amp.GradScaler's rules (start 2^16, halve and skip
// the step on inf/NaN gradients, double after 2000 good steps).
//
//   train::Amp amp("bf16", device);
//   { auto guard = amp.autocast(); out = model->forward(im_q, im_k); }
//   amp.scale(out.loss).backward();
//   if (amp.unscale_and_check(sgd.params())) sgd.step();
#pragma once

#include <torch/types.h>

#include <string>
#include <vector>

namespace moco::train {

// torch.cuda.amp.GradScaler's state machine, on any device.
class LossScaler {
 public:
  explicit LossScaler(double init_scale = 65536.0, double growth_factor = 2.0,
                      double backoff_factor = 0.5,
                      int64_t growth_interval = 2000);
  torch::Tensor scale(const torch::Tensor& loss) const;
  // Divides the gradients by the scale in place; false when any is inf/NaN
  // (the step must be skipped). Updates the scale either way. One host read
  // per step, as GradScaler.step does.
  bool unscale_and_update(const std::vector<torch::Tensor>& params);
  double value() const { return scale_; }
  int64_t growth_tracker() const { return tracker_; }
  void load(double scale, int64_t tracker);

 private:
  double scale_, growth_, backoff_;
  int64_t interval_, tracker_ = 0;
};

// Switches autocast on for its scope (nothing when `dtype` is undefined).
class AutocastGuard {
 public:
  AutocastGuard(bool cuda, c10::optional<at::ScalarType> dtype);
  ~AutocastGuard();
  AutocastGuard(AutocastGuard&& other) noexcept;
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;
  AutocastGuard& operator=(AutocastGuard&&) = delete;

 private:
  bool cuda_;
  bool on_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

class Amp {
 public:
  // mode: off | bf16 | fp16; fp16 needs a CUDA device (CPU autocast has no
  // fp16 kernels worth using) and is refused on the CPU naming --amp.
  Amp(const std::string& mode, const torch::Device& device);
  AutocastGuard autocast() const;
  torch::Tensor scale(const torch::Tensor& loss) const;
  bool unscale_and_check(const std::vector<torch::Tensor>& params);
  const std::string& mode() const { return mode_; }
  LossScaler& scaler() { return scaler_; }
  bool scaling() const { return mode_ == "fp16"; }

 private:
  std::string mode_;
  bool cuda_;
  LossScaler scaler_;
};

// cuDNN autotuning (torch.backends.cudnn.benchmark = True): the step's shapes
// are fixed, so the first step's search pays for itself.
void enable_cudnn_autotune();

}  // namespace moco::train
