#include "models/moco.h"

#include <ATen/autocast_mode.h>

#include <torch/torch.h>

#include "core/autocast.h"

namespace moco::models {

namespace F = torch::nn::functional;

Mechanism parse_mechanism(const std::string& name) {
  if (name == "moco") return Mechanism::moco;
  if (name == "end-to-end") return Mechanism::end_to_end;
  if (name == "memory-bank") return Mechanism::memory_bank;
  TORCH_CHECK(false, "expected --mechanism moco, end-to-end or memory-bank, got ", name);
}

const char* mechanism_name(Mechanism m) {
  switch (m) {
    case Mechanism::end_to_end:
      return "end-to-end";
    case Mechanism::memory_bank:
      return "memory-bank";
    case Mechanism::moco:
      break;
  }
  return "moco";
}

MocoImpl::MocoImpl(const ResNetOptions& encoder, const MocoOptions& o)
    : options_(o) {
  const auto mech = o.mechanism();
  TORCH_CHECK(mech == Mechanism::end_to_end || o.K() > 0, "expected --moco-k > 0, got ",
              o.K());
  TORCH_CHECK(o.m() >= 0.0 && o.m() < 1.0,
              "expected --moco-m in [0, 1), got ", o.m());
  TORCH_CHECK(o.T() > 0.0, "expected --moco-t > 0, got ", o.T());
  TORCH_CHECK(o.dim() > 0, "expected --moco-dim > 0, got ", o.dim());
  TORCH_CHECK(mech == Mechanism::moco || !o.symmetric(), "--symmetric (the CIFAR demo's ",
              "two-way loss) is MoCo's; --mechanism ", mechanism_name(mech),
              " takes one direction");
  auto enc = encoder;
  enc.num_classes(o.dim());
  encoder_q = register_module("encoder_q", ResNet(enc));
  params_q_ = encoder_q->parameters();
  if (mech == Mechanism::memory_bank) {
    TORCH_CHECK(o.bank_size() >= 2, "the memory bank needs at least 2 training images, got ",
                o.bank_size());
    TORCH_CHECK(o.K() < o.bank_size(), "expected --moco-k (the negatives drawn from the "
                "memory bank) below its ", o.bank_size(), " images, got ", o.K());
    TORCH_CHECK(o.bank_momentum() >= 0.0 && o.bank_momentum() < 1.0,
                "expected --bank-momentum in [0, 1), got ", o.bank_momentum());
    // Random unit vectors until each image's first query replaces its own.
    memory_bank = register_buffer(
        "memory_bank", F::normalize(torch::randn({o.bank_size(), o.dim()}),
                                    F::NormalizeFuncOptions().dim(1)));
  }
  if (mech != Mechanism::moco) return;
  encoder_k = register_module("encoder_k", ResNet(enc));
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

c10::ScalarType MocoImpl::loss_dtype() const { return params_q_.front().scalar_type(); }

void MocoImpl::momentum_update() {
  if (!encoder_k) return;
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

torch::Tensor end_to_end_logits(const torch::Tensor& q, const torch::Tensor& k,
                                int64_t offset, double T) {
  const int64_t n = q.size(0), m = k.size(0);
  TORCH_CHECK(offset >= 0 && offset + n <= m, "expected the ", n, " queries' keys at rows ",
              offset, ".. of ", m, " keys");
  auto all = q.mm(k.t());
  auto own = torch::arange(offset, offset + n,
                           torch::TensorOptions().dtype(torch::kInt64).device(q.device()))
                 .view({n, 1});
  auto others = torch::ones({n, m}, torch::TensorOptions().dtype(torch::kBool).device(q.device()))
                    .scatter_(1, own, false);
  return torch::cat({all.gather(1, own), all.masked_select(others).view({n, m - 1})}, 1)
      .div_(T);
}

torch::Tensor memory_bank_logits(const torch::Tensor& q, const torch::Tensor& bank,
                                 const torch::Tensor& indices,
                                 const torch::Tensor& negatives, double T) {
  // Every row of the bank at once, then the columns wanted: N x B scores
  // cost less than gathering N x K x C bank rows whenever B < K x C, which
  // holds for the data sizes a memory bank is run at here.
  auto all = q.mm(bank.t());
  return torch::cat({all.gather(1, indices.view({-1, 1})), all.gather(1, negatives)}, 1)
      .div_(T);
}

torch::Tensor draw_bank_negatives(const torch::Tensor& indices, int64_t bank_size,
                                  int64_t K) {
  auto own = indices.to(torch::kCPU, torch::kInt64).view({-1, 1});
  // Uniform over the other bank_size - 1 rows: draw below bank_size - 1 and
  // step over the image's own row.
  auto r = torch::randint(0, bank_size - 1, {own.size(0), K}, torch::kInt64);
  return r.add_(r.ge(own).to(torch::kInt64));
}

namespace {

// all_gather of the keys whose backward sums their gradient over the ranks
// (every rank's queries score every rank's keys) and keeps this rank's rows.
struct GatherKeys : public torch::autograd::Function<GatherKeys> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor k,
                               const KeyExchange* exchange) {
    // The exchange is the module's, alive for the step the graph belongs
    // to; saved_data holds only IValues, so it travels as an address.
    ctx->saved_data["exchange"] = reinterpret_cast<int64_t>(exchange);
    ctx->saved_data["rows"] = k.size(0);
    return exchange->all_gather(k.detach().contiguous());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto* ex = reinterpret_cast<const KeyExchange*>(ctx->saved_data["exchange"].toInt());
    const int64_t rows = ctx->saved_data["rows"].toInt();
    auto sum = ex->all_reduce_sum(grad[0].contiguous());
    return {sum.slice(0, ex->rank * rows, (ex->rank + 1) * rows), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor MocoImpl::end_to_end_keys(const torch::Tensor& im_k) {
  const auto dtype = loss_dtype();
  auto embed = [&](const torch::Tensor& x) {
    return F::normalize(encoder_q->forward(x).to(dtype), F::NormalizeFuncOptions().dim(1));
  };
  if (exchange_.world_size > 1) {
    const int64_t ranks = exchange_.world_size;
    if (!options_.shuffle_bn()) return GatherKeys::apply(embed(im_k), &exchange_);
    torch::Tensor all, perm;
    {
      torch::NoGradGuard no_grad;
      all = exchange_.all_gather(im_k);
      perm = torch::randperm(all.size(0),
                             torch::TensorOptions().dtype(torch::kInt64).device(all.device()));
      exchange_.broadcast(perm, 0);
    }
    auto mine = perm.view({ranks, -1})[exchange_.rank];
    auto k_all = GatherKeys::apply(embed(all.index_select(0, mine)), &exchange_);
    return k_all.index_select(0, torch::argsort(perm));
  }
  if (!options_.shuffle_bn()) return embed(im_k);
  const auto shuffle = shuffle_source_ ? shuffle_source_(im_k.size(0), im_k.device())
                                       : draw_batch_shuffle(im_k.size(0), im_k.device());
  return embed(im_k.index_select(0, shuffle.forward)).index_select(0, shuffle.inverse);
}

torch::Tensor MocoImpl::end_to_end_loss(const torch::Tensor& im_q, const torch::Tensor& im_k,
                                        torch::Tensor* logits) {
  auto k = end_to_end_keys(im_k);
  auto q_raw = encoder_q->forward(im_q);
  AutocastOff fp32;
  auto q = F::normalize(q_raw.to(loss_dtype()), F::NormalizeFuncOptions().dim(1));
  const int64_t offset = exchange_.world_size > 1 ? exchange_.rank * q.size(0) : 0;
  auto l = end_to_end_logits(q, k, offset, options_.T());
  if (logits) *logits = l;
  return F::cross_entropy(
      l, torch::zeros({l.size(0)}, torch::TensorOptions().dtype(torch::kInt64).device(l.device())));
}

torch::Tensor MocoImpl::memory_bank_loss(const torch::Tensor& im_q, const torch::Tensor& indices,
                                         torch::Tensor* logits, torch::Tensor* queries) {
  TORCH_CHECK(indices.defined() && indices.dim() == 1 && indices.size(0) == im_q.size(0),
              "the memory bank needs the batch's dataset indices (int64 N), got ",
              indices.defined() ? indices.sizes() : c10::IntArrayRef{});
  const auto cpu_idx = indices.to(torch::kCPU, torch::kInt64);
  TORCH_CHECK(cpu_idx.numel() == 0 ||
                  (cpu_idx.min().item<int64_t>() >= 0 &&
                   cpu_idx.max().item<int64_t>() < options_.bank_size()),
              "expected dataset indices below the memory bank's ", options_.bank_size(),
              " images");
  auto q_raw = encoder_q->forward(im_q);
  AutocastOff fp32;
  auto q = F::normalize(q_raw.to(memory_bank.scalar_type()), F::NormalizeFuncOptions().dim(1));
  const auto device = memory_bank.device();
  auto l = memory_bank_logits(q, memory_bank, cpu_idx.to(device),
                              draw_bank_negatives(cpu_idx, options_.bank_size(), options_.K())
                                  .to(device),
                              options_.T());
  *queries = q.detach();
  if (logits) *logits = l;
  return F::cross_entropy(
      l, torch::zeros({l.size(0)}, torch::TensorOptions().dtype(torch::kInt64).device(l.device())));
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
                             const torch::Tensor& im_k,
                             const torch::Tensor& indices) {
  TORCH_CHECK(im_q.sizes() == im_k.sizes(),
              "expected query and key batches of one shape, got ",
              im_q.sizes(), " and ", im_k.sizes());
  MocoOutput out;
  if (options_.mechanism() == Mechanism::end_to_end) {
    out.loss = end_to_end_loss(im_q, im_k, &out.logits);
    return out;
  }
  if (options_.mechanism() == Mechanism::memory_bank) {
    // One view, as Wu et al.: the bank's entry is the other side.
    out.loss = memory_bank_loss(im_q, indices, &out.logits, &out.queries);
    out.indices = indices;
    return out;
  }
  momentum_update();
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

void MocoImpl::update_dictionary(const MocoOutput& out) {
  switch (options_.mechanism()) {
    case Mechanism::moco:
      enqueue(out.keys);
      break;
    case Mechanism::memory_bank:
      update_bank(out.queries, out.indices);
      break;
    case Mechanism::end_to_end:
      break;
  }
}

void MocoImpl::update_bank(const torch::Tensor& queries, const torch::Tensor& indices) {
  torch::NoGradGuard no_grad;
  auto q = queries.to(memory_bank.scalar_type());
  auto idx = indices.to(memory_bank.device(), torch::kInt64);
  if (exchange_.world_size > 1) {
    // Every rank's entries, so the banks stay equal.
    q = exchange_.all_gather(q.contiguous());
    idx = exchange_.all_gather(idx.contiguous());
  }
  const double mb = options_.bank_momentum();
  auto rows = memory_bank.index_select(0, idx).mul_(mb).add_(q, 1.0 - mb);
  memory_bank.index_copy_(0, idx, F::normalize(rows, F::NormalizeFuncOptions().dim(1)));
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
