#include "distributed/gradient_reducer.h"

#include <torch/torch.h>
#include <torch/csrc/distributed/c10d/Work.hpp>

namespace moco::distributed {

struct GradientReducer::Bucket {
  std::vector<size_t> params;     // indices into params_
  std::vector<int64_t> offsets;   // of each param in flat
  torch::Tensor flat;
  int64_t pending = 0;            // gradients still to arrive this step
  c10::intrusive_ptr<c10d::Work> work;
};

GradientReducer::GradientReducer(std::shared_ptr<Communicator> comm,
                                 std::vector<torch::Tensor> params,
                                 int64_t bucket_bytes)
    : comm_(std::move(comm)), params_(std::move(params)) {
  bucket_of_.resize(params_.size());
  // Reverse order: backward produces the last layers' gradients first.
  std::vector<size_t> order(params_.size());
  for (size_t k = 0; k < order.size(); ++k) order[k] = order.size() - 1 - k;
  for (const auto& plan : plan_buckets(params_, order, bucket_bytes)) {
    auto b = std::make_unique<Bucket>();
    int64_t n = 0;
    for (size_t k : plan) {
      b->offsets.push_back(n);
      b->params.push_back(k);
      bucket_of_[k] = buckets_.size();
      n += params_[k].numel();
    }
    b->flat = torch::zeros({n}, params_[plan.front()].options().requires_grad(false));
    b->pending = static_cast<int64_t>(b->params.size());
    buckets_.push_back(std::move(b));
  }
  for (size_t k = 0; k < params_.size(); ++k) {
    params_[k].register_hook([this, k](torch::Tensor grad) {
      on_grad(k, grad);
      return grad;
    });
  }
}

GradientReducer::~GradientReducer() = default;

void GradientReducer::on_grad(size_t k, const torch::Tensor& grad) {
  if (comm_->world_size() == 1) return;
  auto& b = *buckets_[bucket_of_[k]];
  size_t i = 0;
  while (b.params[i] != k) ++i;
  {
    torch::NoGradGuard no_grad;
    b.flat.slice(0, b.offsets[i], b.offsets[i] + grad.numel())
        .copy_(grad.reshape({-1}));
  }
  if (--b.pending == 0) {
    launch(b);
    if (!finishing_) ++started_early_;
  }
}

void GradientReducer::launch(Bucket& b) {
  b.work = comm_->start_all_reduce_sum(b.flat);
}

void GradientReducer::finish() {
  if (comm_->world_size() == 1) return;
  finishing_ = true;
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    if (!b->work) {
      // A parameter without a gradient this step: its slot stays zero.
      for (size_t i = 0; i < b->params.size(); ++i) {
        if (!params_[b->params[i]].grad().defined()) {
          b->flat.slice(0, b->offsets[i],
                        b->offsets[i] + params_[b->params[i]].numel()).zero_();
        }
      }
      launch(*b);
    }
  }
  for (auto& b : buckets_) comm_->wait(b->work);
  for (auto& b : buckets_) {
    b->flat.div_(static_cast<double>(comm_->world_size()));
    for (size_t i = 0; i < b->params.size(); ++i) {
      auto& p = params_[b->params[i]];
      auto avg = b->flat.slice(0, b->offsets[i], b->offsets[i] + p.numel()).view_as(p);
      if (p.grad().defined()) {
        p.mutable_grad().copy_(avg);
      } else {
        p.mutable_grad() = avg.clone();
      }
    }
    b->work.reset();
    b->pending = static_cast<int64_t>(b->params.size());
  }
  finishing_ = false;
  last_early_ = started_early_;
  started_early_ = 0;
}

}  // namespace moco::distributed
