// SGD with momentum and weight decay as torch.optim.SGD (dampening 0, no
// Nesterov), stepping all parameters with fused multi-tensor (_foreach_) ops,
// and the official learning-rate schedules of main_moco.py.
//
// Written here rather than using torch::optim::SGD because that one steps
// tensor by tensor, and because its state must be saved in Python's
// optimizer.state_dict() layout for the official checkpoint format.
//
//   Sgd opt(model->encoder_q->parameters(), SgdOptions().lr(0.03));
//   opt.set_lr(learning_rate(0.03, epoch, 200, /*cos=*/false, {120, 160}));
//   loss.backward(); opt.step(); opt.zero_grad();
#pragma once

#include <ATen/core/Dict.h>
#include <torch/types.h>
#include <torch/arg.h>

#include <string>
#include <vector>

namespace moco::train {

struct SgdOptions {
  TORCH_ARG(double, lr) = 0.03;
  TORCH_ARG(double, momentum) = 0.9;
  TORCH_ARG(double, weight_decay) = 1e-4;
};

class Sgd {
 public:
  Sgd(std::vector<torch::Tensor> params, SgdOptions options);
  void step();
  void zero_grad();  // sets gradients to none
  void set_lr(double lr) { options_.lr(lr); }
  const SgdOptions& options() const { return options_; }
  const std::vector<torch::Tensor>& params() const { return params_; }
  // Empty until the first step, as in PyTorch.
  std::vector<torch::Tensor>& momentum_buffers() { return buffers_; }

 private:
  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> buffers_;
  SgdOptions options_;
};

// Python's optimizer.state_dict() for this optimizer as one param group:
// parameters 0..n-1 with their momentum buffers, then `extra_params` more
// ids without state (the official script's optimizer also lists the key
// encoder's parameters, never stepped). `initial_lr` < 0: not recorded.
c10::impl::GenericDict sgd_state_dict(Sgd& sgd, int64_t extra_params = 0,
                                      double initial_lr = -1);

// Restores the momentum buffers from such a state dict (an optimizer's
// `state`: entry i's momentum_buffer for parameter i, on its device); no
// state means no step taken yet. Errors name `path`.
void sgd_load_state(Sgd& sgd, const c10::IValue& optimizer,
                    const std::string& path);

// main_moco.py's adjust_learning_rate: half-cosine over the epochs with
// `cos`, else x0.1 at each milestone reached.
double learning_rate(double base_lr, int64_t epoch, int64_t epochs, bool cos,
                     const std::vector<int64_t>& schedule);

}  // namespace moco::train
