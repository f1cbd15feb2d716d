#include "models/split_batchnorm.h"

#include <torch/torch.h>

namespace moco::models {

namespace F = torch::nn::functional;

SplitBatchNorm2dImpl::SplitBatchNorm2dImpl(const SplitBatchNorm2dOptions& o)
    : options(o) {
  reset();
}

void SplitBatchNorm2dImpl::reset() {
  set_num_splits(options.num_splits());
  const int64_t c = options.num_features();
  // BatchNorm2d's names, so state dicts load into torchvision.
  weight = register_parameter("weight", torch::ones({c}));
  bias = register_parameter("bias", torch::zeros({c}));
  running_mean = register_buffer("running_mean", torch::zeros({c}));
  running_var = register_buffer("running_var", torch::ones({c}));
  num_batches_tracked =
      register_buffer("num_batches_tracked", torch::zeros({}, torch::kInt64));
}

void SplitBatchNorm2dImpl::set_num_splits(int64_t s) {
  TORCH_CHECK(s >= 1, "expected --bn-splits >= 1, got ", s);
  options.num_splits(s);
}

void SplitBatchNorm2dImpl::pretty_print(std::ostream& stream) const {
  stream << "moco::models::SplitBatchNorm2d(" << options.num_features()
         << ", eps=" << options.eps() << ", num_splits=" << options.num_splits()
         << ")";
}

torch::Tensor SplitBatchNorm2dImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 4, "expected 4D input (got ", input.dim(),
              "D input)");
  const int64_t s = options.num_splits();
  if (!is_training() || s == 1) {
    if (is_training()) num_batches_tracked.add_(1);
    return F::batch_norm(input, running_mean, running_var,
                         F::BatchNormFuncOptions()
                             .weight(weight)
                             .bias(bias)
                             .training(is_training())
                             .momentum(options.momentum())
                             .eps(options.eps()));
  }
  const int64_t n = input.size(0), c = input.size(1);
  TORCH_CHECK(n % s == 0, "expected a batch size divisible by --bn-splits ",
              s, ", got ", n);
  TORCH_CHECK(n / s > 1, "expected more than one sample per BN split (batch ",
              n, ", --bn-splits ", s, ")");
  auto mean_split = running_mean.repeat({s});
  auto var_split = running_var.repeat({s});
  auto out = F::batch_norm(
      input.reshape({n / s, c * s, input.size(2), input.size(3)}), mean_split,
      var_split,
      F::BatchNormFuncOptions()
          .weight(weight.repeat({s}))
          .bias(bias.repeat({s}))
          .training(true)
          .momentum(options.momentum())
          .eps(options.eps()));
  {
    torch::NoGradGuard no_grad;
    running_mean.copy_(mean_split.view({s, c}).mean(0));
    running_var.copy_(var_split.view({s, c}).mean(0));
    num_batches_tracked.add_(1);
  }
  return out.view(input.sizes());
}

}  // namespace moco::models
