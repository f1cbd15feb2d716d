#include "models/moco.h"

#include <ATen/autocast_mode.h>

#include <torch/torch.h>

#include "core/autocast.h"

namespace moco::models {

namespace F = torch::nn::functional;

MocoImpl::MocoImpl(const ResNetOptions& encoder, const MocoOptions& o)
    : options_(o) {
  TORCH_CHECK(o.K() > 0, "expected --moco-k > 0, got ", o.K());
  TORCH_CHECK(o.m() >= 0.0 && o.m() < 1.0,
              "expected --moco-m in [0, 1), got ", o.m());
  TORCH_CHECK(o.T() > 0.0, "expected --moco-t > 0, got ", o.T());
  TORCH_CHECK(o.dim() > 0, "expected --moco-dim > 0, got ", o.dim());
  auto enc = encoder;
  enc.num_classes(o.dim());
  encoder_q = register_module("encoder_q", ResNet(enc));
  encoder_k = register_module("encoder_k", ResNet(enc));
  params_q_ = encoder_q->parameters();
  params_k_ = encoder_k->parameters();
  TORCH_INTERNAL_ASSERT(params_q_.size() == params_k_.size());
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < params_q_.size(); ++i) {
      params_k_[i].copy_(params_q_[i]);
      params_k_[i].set_requires_grad(false);
    }
  }
  queue = register_buffer(
      "queue", F::normalize(torch::randn({o.dim(), o.K()}),
                            F::NormalizeFuncOptions().dim(0)));
  queue_ptr = register_buffer("queue_ptr", torch::zeros({1}, torch::kInt64));
}

void MocoImpl::momentum_update() {
  torch::NoGradGuard no_grad;
  torch::_foreach_mul_(params_k_, options_.m());
  torch::_foreach_add_(params_k_, params_q_, 1.0 - options_.m());
}

BatchShuffle draw_batch_shuffle(int64_t n, const torch::Device& device) {
  BatchShuffle s;
  s.forward = torch::randperm(n, torch::TensorOptions()
                                     .dtype(torch::kInt64)
                                     .device(device));
  s.inverse = torch::argsort(s.forward);
  return s;
}

void to_channels_last(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  auto convert = [](torch::Tensor& t) {
    if (t.defined() && t.dim() == 4) {
      t.set_data(t.data().contiguous(torch::MemoryFormat::ChannelsLast));
    }
  };
  for (auto& p : module.parameters()) convert(p);
  for (auto& b : module.buffers()) convert(b);
}

AutocastOff::AutocastOff()
    : cpu_(autocast::enabled(c10::DeviceType::CPU)),
      gpu_(autocast::enabled(c10::DeviceType::CUDA)) {
  autocast::set_enabled(c10::DeviceType::CPU, false);
  autocast::set_enabled(c10::DeviceType::CUDA, false);
}

AutocastOff::~AutocastOff() {
  autocast::set_enabled(c10::DeviceType::CPU, cpu_);
  autocast::set_enabled(c10::DeviceType::CUDA, gpu_);
}

torch::Tensor MocoImpl::encode_keys(const torch::Tensor& im_k) {
  torch::NoGradGuard no_grad;
  if (exchange_.world_size > 1 && options_.shuffle_bn()) {
    const int64_t ranks = exchange_.world_size;
    auto all = exchange_.all_gather(im_k);
    auto perm = torch::randperm(all.size(0), torch::TensorOptions()
                                                  .dtype(torch::kInt64)
                                                  .device(all.device()));
    exchange_.broadcast(perm, 0);
    auto inverse = torch::argsort(perm);
    auto mine = perm.view({ranks, -1})[exchange_.rank];
    auto k = encoder_k->forward(all.index_select(0, mine)).to(queue.scalar_type());
    k = F::normalize(k, F::NormalizeFuncOptions().dim(1));
    auto k_all = exchange_.all_gather(k);
    return k_all.index_select(0, inverse.view({ranks, -1})[exchange_.rank]);
  }
  if (!options_.shuffle_bn()) {
    return F::normalize(encoder_k->forward(im_k).to(queue.scalar_type()),
                        F::NormalizeFuncOptions().dim(1));
  }
  const auto shuffle = shuffle_source_
                           ? shuffle_source_(im_k.size(0), im_k.device())
                           : draw_batch_shuffle(im_k.size(0), im_k.device());
  auto k = encoder_k->forward(im_k.index_select(0, shuffle.forward))
               .to(queue.scalar_type());
  k = F::normalize(k, F::NormalizeFuncOptions().dim(1));
  return k.index_select(0, shuffle.inverse);
}

torch::Tensor info_nce_logits(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& queue, double T) {
  auto l_pos = (q * k).sum(1, /*keepdim=*/true);
  auto l_neg = q.mm(queue);
  return torch::cat({l_pos, l_neg}, 1).div_(T);
}

torch::Tensor MocoImpl::contrastive_loss(const torch::Tensor& im_q,
                                         const torch::Tensor& im_k,
                                         torch::Tensor* logits,
                                         torch::Tensor* keys) {
  // Keys first: the key pass frees its activations as it goes, so running it
  // before the query pass builds its autograd graph keeps the two from
  // being resident together (lower peak memory; the results are the same,
  // neither pass draws random numbers the other depends on).
  auto k_raw = encode_keys(im_k);
  auto q_raw = encoder_q->forward(im_q);
  // Under mixed precision (autocast) the encoders run in bf16/fp16; the
  // normalisation, logits, softmax and loss stay in fp32, as does the queue.
  AutocastOff fp32;
  // In the queue's dtype: float32 (float64 when the whole model is, as the
  // parity test runs it).
  auto q = F::normalize(q_raw.to(queue.scalar_type()), F::NormalizeFuncOptions().dim(1));
  auto k = k_raw.to(queue.scalar_type());
  auto l = info_nce_logits(q, k, queue, options_.T());
  auto target = torch::zeros({l.size(0)},
                             torch::TensorOptions()
                                 .dtype(torch::kInt64)
                                 .device(l.device()));
  if (logits) *logits = l;
  *keys = k;
  return F::cross_entropy(l, target);
}

MocoOutput MocoImpl::forward(const torch::Tensor& im_q,
                             const torch::Tensor& im_k) {
  TORCH_CHECK(im_q.sizes() == im_k.sizes(),
              "expected query and key batches of one shape, got ",
              im_q.sizes(), " and ", im_k.sizes());
  momentum_update();
  MocoOutput out;
  if (!options_.symmetric()) {
    out.loss = contrastive_loss(im_q, im_k, &out.logits, &out.keys);
    return out;
  }
  torch::Tensor k2, k1;
  auto loss_12 = contrastive_loss(im_q, im_k, &out.logits, &k2);
  auto loss_21 = contrastive_loss(im_k, im_q, nullptr, &k1);
  out.loss = loss_12 + loss_21;
  out.keys = torch::cat({k1, k2});
  return out;
}

void MocoImpl::enqueue(const torch::Tensor& keys_in) {
  torch::NoGradGuard no_grad;
  const int64_t K = options_.K();
  auto keys = exchange_.world_size > 1 ? exchange_.all_gather(keys_in) : keys_in;
  const int64_t n = keys.size(0);
  // Key i goes to column (ptr + i) % K; of more than K keys only the last K
  // survive. The columns are computed where the queue lives, so a GPU step
  // never waits for the host to read the pointer.
  const int64_t kept = std::min(n, K);
  auto cols = (torch::arange(n - kept, n, queue_ptr.options()) + queue_ptr)
                  .remainder_(K);
  queue.index_copy_(1, cols, keys.slice(0, n - kept).t().to(queue.dtype()));
  queue_ptr.add_(n).remainder_(K);
}

std::vector<double> topk_accuracy(const torch::Tensor& logits,
                                  const torch::Tensor& target,
                                  const std::vector<int64_t>& ks) {
  torch::NoGradGuard no_grad;
  int64_t maxk = 0;
  for (auto k : ks) maxk = std::max(maxk, std::min(k, logits.size(1)));
  auto pred = std::get<1>(logits.topk(maxk, 1));
  auto correct = pred.eq(target.view({-1, 1}));
  std::vector<double> out;
  for (auto k : ks) {
    const int64_t kk = std::min(k, logits.size(1));
    out.push_back(correct.slice(1, 0, kk).any(1).sum().item<double>() * 100.0 /
                  logits.size(0));
  }
  return out;
}

}  // namespace moco::models
