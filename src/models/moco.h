// Momentum Contrast (He et al. 2019; v2: Chen et al. 2020) on one process,
// and the two dictionaries MoCo's paper compares it with (its Fig. 3).
//
// MoCo: f_q is trained; f_k follows it by a momentum update; keys of past
// batches wait in a C x K queue as negatives; the loss is InfoNCE over
// [l_pos | l_neg] with the positive at index 0. Shuffle-BN on one process
// permutes the key batch before f_k, whose BatchNorm runs in splits
// (--bn-splits).
// End-to-end: one encoder embeds both views with the gradient through both;
// the other keys of the (global) batch are the negatives.
// Memory bank (Wu et al. 2018): one stored feature per training image; the
// positive is the image's own entry, K negatives are drawn from the others,
// and the entries are updated by the queries after the step.
//
// The dictionary is updated by the caller after backward (the logits still
// need the old queue for the gradient of q, and enqueueing later saves the
// clone the official code makes):
//
//   Moco model(ResNetOptions("resnet18").num_classes(128), MocoOptions());
//   auto out = model->forward(im_q, im_k);   // momentum update, loss
//   out.loss.backward();
//   optimizer.step();
//   model->update_dictionary(out);           // enqueue the keys
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <string>
#include <vector>

#include "models/resnet.h"

namespace moco::models {

// The permutation shuffle-BN applies to the key batch and its inverse.
struct BatchShuffle {
  torch::Tensor forward;  // shuffled = x[forward]
  torch::Tensor inverse;  // x = shuffled[inverse]
};
BatchShuffle draw_batch_shuffle(int64_t n, const torch::Device& device);

// Where the negatives come from (--mechanism).
enum class Mechanism { moco, end_to_end, memory_bank };
// "moco" | "end-to-end" | "memory-bank"; errors name --mechanism.
Mechanism parse_mechanism(const std::string& name);
const char* mechanism_name(Mechanism m);

struct MocoOptions {
  TORCH_ARG(Mechanism, mechanism) = Mechanism::moco;
  TORCH_ARG(int64_t, dim) = 128;       // --moco-dim
  // --moco-k: the queue's size (MoCo), the negatives drawn from the bank
  // (memory bank); end-to-end's are the batch's other keys.
  TORCH_ARG(int64_t, K) = 65536;
  TORCH_ARG(int64_t, bank_size) = 0;       // memory bank: the training images
  TORCH_ARG(double, bank_momentum) = 0.5;  // --bank-momentum
  TORCH_ARG(double, m) = 0.999;        // --moco-m, key encoder momentum
  TORCH_ARG(double, T) = 0.07;         // --moco-t, softmax temperature
  TORCH_ARG(bool, symmetric) = false;  // --symmetric, the CIFAR demo's loss
  TORCH_ARG(bool, shuffle_bn) = true;  // permute the key batch before f_k
};

// The collectives MoCo needs across data-parallel processes, given by the
// caller (src/distributed implements them on c10d, train wires them in), so this
// module knows nothing of how processes talk. Unset: one process.
struct KeyExchange {
  int64_t rank = 0, world_size = 1;
  // Every rank's tensor concatenated along dim 0, in rank order.
  std::function<torch::Tensor(const torch::Tensor&)> all_gather;
  // Rank root's tensor, in place on every rank.
  std::function<void(torch::Tensor&, int64_t root)> broadcast;
  // The elementwise sum over the ranks (end-to-end's key gradients).
  std::function<torch::Tensor(const torch::Tensor&)> all_reduce_sum;
};

struct MocoOutput {
  torch::Tensor loss;    // scalar (sum of both directions when symmetric)
  torch::Tensor logits;  // N x (1+K), positive at column 0 (first direction)
  torch::Tensor keys;    // MoCo: the keys to enqueue, detached, L2-normalised
  // Memory bank: the queries (detached, L2-normalised) and the images' indices,
  // for the entries' update.
  torch::Tensor queries, indices;
};

class MocoImpl : public torch::nn::Module {
 public:
  MocoImpl(const ResNetOptions& encoder, const MocoOptions& options);

  // `indices`: the images' dataset indices (int64 N), which the memory bank
  // needs (the others ignore them).
  MocoOutput forward(const torch::Tensor& im_q, const torch::Tensor& im_k,
                     const torch::Tensor& indices = {});
  // theta_k <- m theta_k + (1 - m) theta_q over all parameters, as two fused
  // multi-tensor ops (MoCo only).
  void momentum_update();
  // After the optimizer step: MoCo enqueues the keys; the memory bank sets
  // each entry to normalise(m_b old + (1 - m_b) q), across processes every
  // rank's; end-to-end keeps nothing.
  void update_dictionary(const MocoOutput& out);
  // The memory bank's update alone (bank rows `indices` from `queries`).
  void update_bank(const torch::Tensor& queries, const torch::Tensor& indices);
  // f_k on the key batch, with shuffle-BN; no gradient; L2-normalised.
  torch::Tensor encode_keys(const torch::Tensor& im_k);
  // Writes keys (N x C) at queue_ptr, wrapping around; the oldest go. Across
  // processes: every rank's keys, in rank order, so the queues stay equal.
  void enqueue(const torch::Tensor& keys);
  // Shuffle-BN across processes (the official _batch_shuffle_ddp): gather
  // the key images, one permutation drawn on rank 0 and broadcast, each
  // rank encodes its slice, keys gathered back and un-shuffled.
  void set_key_exchange(KeyExchange exchange) { exchange_ = std::move(exchange); }
  // Where the one-process shuffle's permutations come from (default: a
  // randperm). The step-parity test replays the reference's permutations
  // through it.
  using ShuffleSource = std::function<BatchShuffle(int64_t n, const torch::Device&)>;
  void set_shuffle_source(ShuffleSource source) { shuffle_source_ = std::move(source); }

  const MocoOptions& options() const { return options_; }

  // encoder_k, queue and queue_ptr exist for MoCo only; memory_bank for the
  // memory bank only.
  ResNet encoder_q{nullptr}, encoder_k{nullptr};
  torch::Tensor queue;        // C x K
  torch::Tensor queue_ptr;    // int64 [1]
  torch::Tensor memory_bank;  // bank_size x C, rows L2-normalised

 private:
  torch::Tensor contrastive_loss(const torch::Tensor& im_q,
                                 const torch::Tensor& im_k,
                                 torch::Tensor* logits, torch::Tensor* keys);
  torch::Tensor end_to_end_loss(const torch::Tensor& im_q, const torch::Tensor& im_k,
                                torch::Tensor* logits);
  torch::Tensor memory_bank_loss(const torch::Tensor& im_q, const torch::Tensor& indices,
                                 torch::Tensor* logits, torch::Tensor* queries);
  // End-to-end's keys: f_q on the key batch with the gradient, shuffle-BN
  // as MoCo's keys; across processes, every rank's (the global batch).
  torch::Tensor end_to_end_keys(const torch::Tensor& im_k);
  // The dtype the loss is computed in: float32 (float64 when the whole
  // model is, as the parity test runs it).
  c10::ScalarType loss_dtype() const;
  MocoOptions options_;
  KeyExchange exchange_;
  ShuffleSource shuffle_source_;
  std::vector<torch::Tensor> params_q_, params_k_;
};
TORCH_MODULE(Moco);

// InfoNCE logits [q.k+ | q.queue] / T for normalised q, k (N x C) and queue
// (C x K).
torch::Tensor info_nce_logits(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& queue, double T);

// End-to-end's logits for queries q (N x C) against all keys k (M x C) of
// the global batch, q's own keys at rows offset..offset+N-1:
// [q_i.k_i | q_i.k_j, j != i in order] / T, N x M.
torch::Tensor end_to_end_logits(const torch::Tensor& q, const torch::Tensor& k,
                                int64_t offset, double T);

// The memory bank's logits for queries q (N x C) of images `indices`
// against the bank (B x C): [q.bank[i] | q.bank[negatives]] / T, where
// negatives (N x K, int64) index the bank.
torch::Tensor memory_bank_logits(const torch::Tensor& q, const torch::Tensor& bank,
                                 const torch::Tensor& indices,
                                 const torch::Tensor& negatives, double T);

// K bank rows for each of `indices`, uniformly with replacement from the
// bank_size - 1 others (never the image itself), from the CPU generator.
torch::Tensor draw_bank_negatives(const torch::Tensor& indices, int64_t bank_size,
                                  int64_t K);

// Fraction (in %) of rows whose target is among the top-k logits, for each k.
std::vector<double> topk_accuracy(const torch::Tensor& logits,
                                  const torch::Tensor& target,
                                  const std::vector<int64_t>& ks);

// Switches autocast (CPU and CUDA) off for its scope, restoring it after:
// the parts of a mixed-precision step that stay in fp32.
class AutocastOff {
 public:
  AutocastOff();
  ~AutocastOff();
  AutocastOff(const AutocastOff&) = delete;
  AutocastOff& operator=(const AutocastOff&) = delete;

 private:
  bool cpu_, gpu_;
};

// Stores every 4-D parameter and buffer of `module` in channels-last (NHWC)
// order, in place (the tensors stay the same objects, so optimizers and
// cached parameter lists keep working). Convolutions then run on NHWC
// activations without reordering: faster with oneDNN's bf16 kernels and
// with cuDNN's tensor-core kernels.
void to_channels_last(torch::nn::Module& module);



}  // namespace moco::models
