#include "models/split_batchnorm.h"

#include <torch/torch.h>

#include <mutex>

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
  if (is_training() && sync_id_ >= 0) return sync_forward(input);
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
  auto bn = [&](const torch::Tensor& x, const torch::Tensor& mean,
                const torch::Tensor& var, const torch::Tensor& w,
                const torch::Tensor& b) {
    return F::batch_norm(x, mean, var,
                         F::BatchNormFuncOptions()
                             .weight(w)
                             .bias(b)
                             .training(true)
                             .momentum(options.momentum())
                             .eps(options.eps()));
  };
  torch::Tensor out;
  if (input.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) {
    // NHWC memory cannot be viewed as (n/s, C*s, H, W): the official
    // interleaved grouping would copy the activations twice per layer. Each
    // group is a run of consecutive samples instead, a contiguous NHWC
    // slice that BatchNorm reads in place. Which samples share statistics
    // changes, not how many: the batch order is random (the loader shuffles;
    // the key batch is permuted), so the two groupings are alike in
    // distribution.
    std::vector<torch::Tensor> parts;
    parts.reserve(s);
    const int64_t m = n / s;
    for (int64_t g = 0; g < s; ++g) {
      parts.push_back(bn(input.narrow(0, g * m, m), mean_split.narrow(0, g * c, c),
                         var_split.narrow(0, g * c, c), weight, bias));
    }
    out = torch::cat(parts, 0);
  } else {
    out = bn(input.reshape({n / s, c * s, input.size(2), input.size(3)}),
             mean_split, var_split, weight.repeat({s}), bias.repeat({s}));
    // Not a view in autograd's sense: the block's in-place ReLU on a view
    // would make autograd rebuild the whole tensor in backward (CopySlices,
    // a clone per BN layer); the official module pays that, we need not.
    out = at::_unsafe_view(out, input.sizes());
  }
  {
    torch::NoGradGuard no_grad;
    running_mean.copy_(mean_split.view({s, c}).mean(0));
    running_var.copy_(var_split.view({s, c}).mean(0));
    num_batches_tracked.add_(1);
  }
  return out;
}

}  // namespace moco::models

namespace moco::models {

namespace {

// Reducers live here so the autograd function below can find them by index
// (its arguments must be tensors or plain values).
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::function<torch::Tensor(const torch::Tensor&)>>& registry() {
  static std::vector<std::function<torch::Tensor(const torch::Tensor&)>> r;
  return r;
}
std::function<torch::Tensor(const torch::Tensor&)> reducer(int64_t id) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  return registry().at(static_cast<size_t>(id));
}

// Sum over processes; the gradient of a sum over processes is the sum of
// the gradients over processes.
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx,
                               torch::Tensor x, int64_t id) {
    ctx->saved_data["id"] = id;
    return reducer(id)(x.contiguous());
  }
  static torch::autograd::variable_list backward(
      torch::autograd::AutogradContext* ctx,
      torch::autograd::variable_list grad) {
    const int64_t id = ctx->saved_data["id"].toInt();
    return {reducer(id)(grad[0].contiguous()), torch::Tensor()};
  }
};

}  // namespace

void SplitBatchNorm2dImpl::set_sync(
    std::function<torch::Tensor(const torch::Tensor&)> all_reduce_sum) {
  if (!all_reduce_sum) {
    sync_id_ = -1;
    return;
  }
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().push_back(std::move(all_reduce_sum));
  sync_id_ = static_cast<int64_t>(registry().size()) - 1;
}

torch::Tensor SplitBatchNorm2dImpl::sync_forward(const torch::Tensor& x) {
  // Statistics of the global batch from per-process sums (in float32 or
  // wider), normalisation with them, all differentiable: the backward
  // all-reduces the gradients of the sums, as torch.nn.SyncBatchNorm does.
  const int64_t c = x.size(1);
  auto xf = x.to(torch::kFloat32);
  auto count = torch::full({1}, static_cast<double>(x.numel() / c), xf.options());
  auto stats = torch::cat({xf.sum({0, 2, 3}), (xf * xf).sum({0, 2, 3}), count});
  stats = AllReduceSum::apply(stats, sync_id_);
  const auto n = stats[2 * c];
  auto mean = stats.slice(0, 0, c) / n;
  auto var = (stats.slice(0, c, 2 * c) / n - mean * mean).clamp_min(0);
  {
    torch::NoGradGuard no_grad;
    const double total = n.item<double>();
    const double m = options.momentum();
    running_mean.mul_(1 - m).add_(mean.detach() * m);
    running_var.mul_(1 - m).add_(var.detach() * (total / std::max(1.0, total - 1)) * m);
    num_batches_tracked.add_(1);
  }
  auto inv = torch::rsqrt(var + options.eps());
  auto shape = std::vector<int64_t>{1, c, 1, 1};
  auto y = (xf - mean.view(shape)) * (inv * weight).view(shape) + bias.view(shape);
  return y.to(x.scalar_type());
}

}  // namespace moco::models
