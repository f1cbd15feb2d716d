#include "train/step.h"

#include <torch/torch.h>

namespace moco::train {

models::MocoOutput training_step(models::Moco& model, Sgd& sgd, Amp& amp,
                                 const torch::Tensor& im_q,
                                 const torch::Tensor& im_k,
                                 const std::function<void()>& after_backward,
                                 const torch::Tensor& indices) {
  models::MocoOutput out;
  {
    // Autocast for the encoders' forward passes (the loss, queue and
    // momentum update stay fp32, see models::AutocastOff); backward follows
    // the dtypes autograd recorded.
    auto guard = amp.autocast();
    out = model->forward(im_q, im_k, indices);
  }
  amp.scale(out.loss).backward();
  if (after_backward) after_backward();
  // fp16: a step whose gradients overflowed is skipped (the scale drops).
  if (amp.unscale_and_check(sgd.params())) sgd.step();
  sgd.zero_grad();
  model->update_dictionary(out);
  return out;
}

}  // namespace moco::train
