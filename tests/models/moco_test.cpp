// The MoCo core against hand-computed tensors.
#include "models/moco.h"

#include <ATen/autocast_mode.h>

#include <cmath>

#include "../support.h"
#include "core/autocast.h"

namespace moco::models {

namespace {

ResNetOptions tiny_encoder() {
  return ResNetOptions("resnet18").in_channels(1).small_stem(true).width(8);
}

Moco tiny_moco(MocoOptions o = MocoOptions().dim(4).K(10)) {
  return Moco(tiny_encoder(), o);
}

}  // namespace

TEST(Moco, KeyEncoderStartsAsACopyWithoutGradient) {
  auto model = tiny_moco();
  auto q = model->encoder_q->named_parameters();
  auto k = model->encoder_k->named_parameters();
  ASSERT_EQ(q.size(), k.size());
  for (size_t i = 0; i < q.size(); ++i) {
    EXPECT_EQ(q[i].key(), k[i].key());
    EXPECT_TRUE(q[i].value().equal(k[i].value())) << q[i].key();
    EXPECT_TRUE(q[i].value().requires_grad());
    EXPECT_FALSE(k[i].value().requires_grad());
  }
  // The official state-dict names.
  auto names = model->named_buffers();
  EXPECT_TRUE(names.contains("queue"));
  EXPECT_TRUE(names.contains("queue_ptr"));
  EXPECT_TRUE(model->named_parameters().contains("encoder_q.conv1.weight"));
  EXPECT_TRUE(model->named_parameters().contains("encoder_k.fc.bias"));
}

TEST(Moco, MomentumUpdateIsTheConvexCombination) {
  auto model = tiny_moco(MocoOptions().dim(4).K(10).m(0.9));
  auto q = model->encoder_q->parameters();
  auto k = model->encoder_k->parameters();
  std::vector<torch::Tensor> k_before, q_vals;
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < q.size(); ++i) {
      q[i].copy_(torch::randn_like(q[i]));
      k_before.push_back(k[i].clone());
      q_vals.push_back(q[i].clone());
    }
  }
  model->momentum_update();
  for (size_t i = 0; i < q.size(); ++i) {
    auto want = k_before[i] * 0.9 + q_vals[i] * 0.1;
    EXPECT_TRUE(torch::allclose(k[i], want, 1e-5, 1e-6)) << i;
    EXPECT_TRUE(q[i].equal(q_vals[i]));  // the query encoder is untouched
  }
}

TEST(Moco, QueueStartsNormalisedAndEnqueueWrapsAround) {
  auto model = tiny_moco(MocoOptions().dim(2).K(5));
  EXPECT_EQ(model->queue.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_TRUE(torch::allclose(model->queue.norm(2, 0), torch::ones({5}),
                              1e-5, 1e-6));
  EXPECT_EQ(model->queue_ptr.item<int64_t>(), 0);

  auto keys = [](int64_t first, int64_t n) {
    // Key j is (j, -j), easy to find in the queue.
    auto v = torch::arange(first, first + n).to(torch::kFloat32);
    return torch::stack({v, -v}, 1);
  };
  auto col = [&](int64_t c) { return model->queue[0][c].item<float>(); };
  model->enqueue(keys(0, 3));  // K = 5 is not a multiple of 3
  EXPECT_EQ(model->queue_ptr.item<int64_t>(), 3);
  EXPECT_EQ(col(0), 0);
  EXPECT_EQ(col(2), 2);
  EXPECT_EQ(model->queue[1][2].item<float>(), -2);
  model->enqueue(keys(3, 3));  // fills 3, 4, wraps to 0
  EXPECT_EQ(model->queue_ptr.item<int64_t>(), 1);
  EXPECT_EQ(col(3), 3);
  EXPECT_EQ(col(4), 4);
  EXPECT_EQ(col(0), 5);
  EXPECT_EQ(col(1), 1);  // not yet overwritten
  // A batch larger than K: as if written one by one from ptr 1: positions
  // 1,2,3,4,0,1,2 get keys 10..16; the last five survive.
  model->enqueue(keys(10, 7));
  EXPECT_EQ(model->queue_ptr.item<int64_t>(), 3);
  EXPECT_EQ(col(0), 14);
  EXPECT_EQ(col(1), 15);
  EXPECT_EQ(col(2), 16);
  EXPECT_EQ(col(3), 12);
  EXPECT_EQ(col(4), 13);
}

TEST(Moco, InfoNceLogitsAndLossByHand) {
  auto q = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  auto k = torch::tensor({{0.6f, 0.8f}, {0.0f, 1.0f}});
  auto queue = torch::tensor({{1.0f, 0.0f, -1.0f}, {0.0f, 0.5f, 0.0f}});
  auto logits = info_nce_logits(q, k, queue, 0.5);
  auto want = torch::tensor({{1.2f, 2.0f, 0.0f, -2.0f}, {2.0f, 0.0f, 1.0f, 0.0f}});
  EXPECT_TRUE(torch::allclose(logits, want, 1e-6, 1e-6));
  const double l0 = -1.2 + std::log(std::exp(1.2) + std::exp(2.0) + 1.0 +
                                    std::exp(-2.0));
  const double l1 = -2.0 + std::log(std::exp(2.0) + std::exp(1.0) + 2.0);
  auto loss = torch::nn::functional::cross_entropy(
      logits, torch::zeros({2}, torch::kInt64));
  EXPECT_NEAR(loss.item<double>(), (l0 + l1) / 2, 1e-6);
  auto acc = topk_accuracy(logits, torch::zeros({2}, torch::kInt64), {1, 2});
  EXPECT_DOUBLE_EQ(acc[0], 50.0);   // row 0's positive is only second
  EXPECT_DOUBLE_EQ(acc[1], 100.0);
}

TEST(Moco, ForwardIsInfoNceOverTheEncoders) {
  torch::manual_seed(1);
  auto model = tiny_moco(MocoOptions().dim(4).K(10).T(0.2).m(0.5));
  model->eval();  // BN from running stats: the shuffle cannot matter
  auto im_q = torch::randn({4, 1, 8, 8});
  auto im_k = torch::randn({4, 1, 8, 8});
  auto out = model->forward(im_q, im_k);
  namespace F = torch::nn::functional;
  auto q = F::normalize(model->encoder_q->forward(im_q),
                        F::NormalizeFuncOptions().dim(1));
  torch::Tensor k;
  {
    torch::NoGradGuard g;
    k = F::normalize(model->encoder_k->forward(im_k),
                     F::NormalizeFuncOptions().dim(1));
  }
  auto want = info_nce_logits(q, k, model->queue, 0.2);
  EXPECT_TRUE(torch::allclose(out.logits, want, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out.keys, k, 1e-5, 1e-6));
  EXPECT_NEAR(out.loss.item<double>(),
              F::cross_entropy(want, torch::zeros({4}, torch::kInt64))
                  .item<double>(),
              1e-5);
  EXPECT_FALSE(out.keys.requires_grad());
  out.loss.backward();
  EXPECT_TRUE(model->encoder_q->parameters()[0].grad().defined());
  EXPECT_FALSE(model->encoder_k->parameters()[0].grad().defined());
}

TEST(Moco, SymmetricLossUsesBothDirections) {
  torch::manual_seed(2);
  auto model = tiny_moco(MocoOptions().dim(4).K(10).m(0.5).symmetric(true));
  model->eval();  // BN from running stats: the shuffle cannot matter
  auto a = torch::randn({4, 1, 8, 8});
  auto b = torch::randn({4, 1, 8, 8});
  auto out = model->forward(a, b);
  // By hand, after the one momentum update forward() made: loss(a->b) +
  // loss(b->a), keys [k(a); k(b)] as the CIFAR demo's cat([k1, k2]).
  namespace F = torch::nn::functional;
  torch::NoGradGuard g;
  auto norm = [](const torch::Tensor& t) {
    return F::normalize(t, F::NormalizeFuncOptions().dim(1));
  };
  auto qa = norm(model->encoder_q->forward(a));
  auto qb = norm(model->encoder_q->forward(b));
  auto ka = norm(model->encoder_k->forward(a));
  auto kb = norm(model->encoder_k->forward(b));
  auto target = torch::zeros({4}, torch::kInt64);
  const double want =
      F::cross_entropy(info_nce_logits(qa, kb, model->queue, 0.07), target)
          .item<double>() +
      F::cross_entropy(info_nce_logits(qb, ka, model->queue, 0.07), target)
          .item<double>();
  EXPECT_NEAR(out.loss.item<double>(), want, 1e-4);
  EXPECT_TRUE(torch::allclose(out.keys, torch::cat({ka, kb}), 1e-5, 1e-6));
}

TEST(Moco, BatchShuffleAndInverseAreExact) {
  auto s = draw_batch_shuffle(37, torch::kCPU);
  auto x = torch::arange(37);
  EXPECT_TRUE(x.index_select(0, s.forward).index_select(0, s.inverse).equal(x));
  EXPECT_FALSE(s.forward.equal(x));
}

// Which samples' inputs a key depends on: in train mode a key depends on the
// other samples only through its BatchNorm sub-batch. Perturb sample j, see
// which keys move.
torch::Tensor key_dependencies(Moco& model, const torch::Tensor& x) {
  const int64_t n = x.size(0);
  torch::manual_seed(5);
  auto base = model->encode_keys(x);
  auto dep = torch::zeros({n, n}, torch::kBool);
  for (int64_t j = 0; j < n; ++j) {
    auto xj = x.clone();
    xj[j].add_(3.0);
    torch::manual_seed(5);  // the same shuffle
    auto kj = model->encode_keys(xj);
    auto moved = (kj - base).abs().amax(1) > 1e-6;
    dep.select(1, j).copy_(moved);
  }
  return dep;
}

TEST(Moco, ShuffleBnKeepsKeysOutOfTheQuerySubBatch) {
  const int64_t n = 16, splits = 4;
  auto x = torch::randn({n, 1, 8, 8});
  // The query's sub-batches: sample i shares BN statistics with j iff
  // i % splits == j % splits.
  auto idx = torch::arange(n);
  auto query_groups = (idx.view({n, 1}) % splits) == (idx.view({1, n}) % splits);

  auto plain = tiny_moco(MocoOptions().dim(4).K(10).shuffle_bn(false));
  plain->encoder_k->set_bn_splits(splits);
  plain->train();
  auto dep_plain = key_dependencies(plain, x);
  EXPECT_TRUE(dep_plain.equal(query_groups))
      << "without the shuffle the key's BN sub-batch is the query's";

  auto shuffled = tiny_moco(MocoOptions().dim(4).K(10).shuffle_bn(true));
  shuffled->encoder_k->set_bn_splits(splits);
  shuffled->train();
  auto dep = key_dependencies(shuffled, x);
  EXPECT_FALSE(dep.equal(query_groups));
  // Still split BN: every key depends on exactly n / splits samples.
  EXPECT_TRUE(dep.sum(1).eq(n / splits).all().item<bool>());
  // Most keys now share their statistics with other samples than their
  // query did.
  const int64_t same_rows =
      (dep == query_groups).all(1).sum().item<int64_t>();
  EXPECT_LT(same_rows, n / 2);
}

TEST(Moco, RejectsOutOfRangeOptions) {
  auto expect_error = [](MocoOptions o, const std::string& flag) {
    try {
      Moco m(tiny_encoder(), o);
      FAIL() << "expected an error for " << flag;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what_without_backtrace()).find(flag),
                std::string::npos)
          << e.what_without_backtrace();
    }
  };
  expect_error(MocoOptions().K(0), "--moco-k");
  expect_error(MocoOptions().m(1.0), "--moco-m");
  expect_error(MocoOptions().m(-0.1), "--moco-m");
  expect_error(MocoOptions().T(0.0), "--moco-t");
}

}  // namespace moco::models

namespace moco::models {

TEST(MocoAmp, Bf16AutocastKeepsLossQueueAndKeysInFp32) {
  torch::manual_seed(2);
  Moco m(ResNetOptions("resnet18").small_stem(true).in_channels(1).width(8).bn_splits(2),
         MocoOptions().dim(16).K(32).m(0.9).T(0.2));
  auto q = torch::randn({8, 1, 12, 12}), k = torch::randn({8, 1, 12, 12});
  // The fp32 step as the reference.
  Moco ref(ResNetOptions("resnet18").small_stem(true).in_channels(1).width(8).bn_splits(2),
           MocoOptions().dim(16).K(32).m(0.9).T(0.2));
  test::copy_state(*m, *ref);
  torch::manual_seed(5);
  auto want = ref->forward(q, k);
  moco::autocast::set_dtype(c10::DeviceType::CPU, at::kBFloat16);
  moco::autocast::set_enabled(c10::DeviceType::CPU, true);
  torch::manual_seed(5);
  // Inside the encoders the convolutions run in bf16 ...
  EXPECT_EQ(m->encoder_q->forward_features(q).scalar_type(), torch::kBFloat16);
  auto out = m->forward(q, k);
  moco::autocast::set_enabled(c10::DeviceType::CPU, false);
  at::autocast::clear_cache();
  // ... the logits, loss and keys come out in fp32, close to the fp32 step.
  EXPECT_EQ(out.logits.scalar_type(), torch::kFloat32);
  EXPECT_EQ(out.loss.scalar_type(), torch::kFloat32);
  EXPECT_EQ(out.keys.scalar_type(), torch::kFloat32);
  EXPECT_NEAR(out.loss.item<double>(), want.loss.item<double>(), 0.05);
  out.loss.backward();
  for (auto& p : m->encoder_q->parameters()) {
    ASSERT_TRUE(p.grad().defined());
    EXPECT_EQ(p.grad().scalar_type(), torch::kFloat32);
  }
  m->enqueue(out.keys);
  EXPECT_EQ(m->queue.scalar_type(), torch::kFloat32);
}

}  // namespace moco::models

// ---- The paper's other two dictionaries (its Fig. 3) -------------------------

namespace moco::models {

namespace {

torch::Tensor unit_rows(const torch::Tensor& t) {
  return torch::nn::functional::normalize(t, torch::nn::functional::NormalizeFuncOptions().dim(1));
}

}  // namespace

TEST(EndToEnd, LogitsPutTheOwnKeyFirstAndTheBatchsOthersAfter) {
  // Two queries whose keys are rows 1 and 2 of a global batch of three.
  auto q = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}});
  auto k = torch::tensor({{0.6f, 0.8f}, {1.0f, 0.0f}, {0.8f, -0.6f}});
  auto l = end_to_end_logits(q, k, /*offset=*/1, 0.5);
  // q0: own k1 = 1; others k0 = 0.6, k2 = 0.8.  q1: own k2 = -0.6; k0 0.8, k1 0.
  auto want = torch::tensor({{1.0f, 0.6f, 0.8f}, {-0.6f, 0.8f, 0.0f}}) / 0.5;
  EXPECT_TRUE(torch::allclose(l, want, 1e-6, 1e-6)) << l;
  EXPECT_THROW(end_to_end_logits(q, k, 2, 0.5), c10::Error);
}

TEST(EndToEnd, OneEncoderWithTheGradientThroughBothViews) {
  torch::manual_seed(4);
  auto model = Moco(tiny_encoder(), MocoOptions().mechanism(Mechanism::end_to_end).dim(4).T(0.2));
  EXPECT_FALSE(model->encoder_k);
  EXPECT_FALSE(model->named_buffers().contains("queue"));
  EXPECT_EQ(model->named_parameters().size(), model->encoder_q->named_parameters().size());
  model->eval();  // BN from running stats: the shuffle cannot matter
  auto im_q = torch::randn({4, 1, 8, 8});
  auto im_k = torch::randn({4, 1, 8, 8});
  auto out = model->forward(im_q, im_k);
  out.loss.backward();
  const auto g = model->encoder_q->parameters()[0].grad().clone();

  // By hand: f_q on both views, InfoNCE over the batch's other keys.
  auto by_hand = [&](bool detach_keys) {
    for (auto& p : model->encoder_q->parameters()) p.mutable_grad() = torch::Tensor();
    auto q = unit_rows(model->encoder_q->forward(im_q));
    auto k = unit_rows(model->encoder_q->forward(im_k));
    if (detach_keys) k = k.detach();
    auto l = end_to_end_logits(q, k, 0, 0.2);
    auto loss = torch::nn::functional::cross_entropy(l, torch::zeros({4}, torch::kInt64));
    loss.backward();
    return std::make_pair(l.detach(), model->encoder_q->parameters()[0].grad().clone());
  };
  const auto [logits, grad] = by_hand(false);
  EXPECT_TRUE(torch::allclose(out.logits, logits, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(g, grad, 1e-5, 1e-6));
  // Detached keys (MoCo's side) give another gradient: the keys' half counts.
  EXPECT_FALSE(torch::allclose(g, by_hand(true).second, 1e-3, 1e-5));
  // Nothing is kept between steps.
  model->update_dictionary(out);
  EXPECT_EQ(model->named_buffers().size(), model->encoder_q->named_buffers().size());
}

TEST(MemoryBank, LogitsAreTheOwnEntryThenTheDrawnOnes) {
  auto bank = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.6f, 0.8f}, {-1.0f, 0.0f}});
  auto q = torch::tensor({{0.6f, 0.8f}, {1.0f, 0.0f}});
  auto idx = torch::tensor({2, 0}, torch::kInt64);
  auto neg = torch::tensor({{0, 3, 3}, {1, 2, 3}}, torch::kInt64);
  auto l = memory_bank_logits(q, bank, idx, neg, 0.1);
  // q0 . bank[2] = 1; . bank[0] = 0.6, bank[3] = -0.6.  q1 . bank[0] = 1;
  // . bank[1] = 0, bank[2] = 0.6, bank[3] = -1.
  auto want = torch::tensor({{1.0f, 0.6f, -0.6f, -0.6f}, {1.0f, 0.0f, 0.6f, -1.0f}}) / 0.1;
  EXPECT_TRUE(torch::allclose(l, want, 1e-5, 1e-5)) << l;
}

TEST(MemoryBank, NegativesAreDrawnUniformlyFromTheOthers) {
  torch::manual_seed(0);
  auto idx = torch::tensor({0, 3, 5}, torch::kInt64);
  auto neg = draw_bank_negatives(idx, 6, 6000);
  ASSERT_EQ(neg.sizes(), (c10::IntArrayRef{3, 6000}));
  for (int64_t r = 0; r < 3; ++r) {
    const int64_t own = idx[r].item<int64_t>();
    auto row = neg[r];
    EXPECT_EQ(row.eq(own).sum().item<int64_t>(), 0) << "row " << r << " drew itself";
    EXPECT_GE(row.min().item<int64_t>(), 0);
    EXPECT_LE(row.max().item<int64_t>(), 5);
    for (int64_t j = 0; j < 6; ++j) {
      if (j == own) continue;
      // 1200 expected of each of the five others; 4 sigma is about 125.
      EXPECT_NEAR(row.eq(j).sum().item<double>(), 1200, 150) << "row " << r << " entry " << j;
    }
  }
}

TEST(MemoryBank, UpdateIsTheMomentumMeanRenormalised) {
  torch::manual_seed(1);
  auto model = Moco(tiny_encoder(), MocoOptions()
                                        .mechanism(Mechanism::memory_bank)
                                        .dim(2)
                                        .K(3)
                                        .bank_size(5)
                                        .bank_momentum(0.75));
  EXPECT_FALSE(model->encoder_k);
  ASSERT_EQ(model->memory_bank.sizes(), (c10::IntArrayRef{5, 2}));
  EXPECT_TRUE(torch::allclose(model->memory_bank.norm(2, 1), torch::ones({5}), 1e-5, 1e-6));
  {
    torch::NoGradGuard g;
    model->memory_bank.copy_(torch::tensor(
        {{1.0f, 0.0f}, {0.0f, 1.0f}, {0.6f, 0.8f}, {-1.0f, 0.0f}, {0.0f, -1.0f}}));
  }
  const auto before = model->memory_bank.clone();
  model->update_bank(torch::tensor({{0.0f, 1.0f}, {0.6f, -0.8f}}),
                     torch::tensor({0, 3}, torch::kInt64));
  // Row 0: 0.75 (1, 0) + 0.25 (0, 1) = (0.75, 0.25), over its norm.
  const double n0 = std::sqrt(0.75 * 0.75 + 0.25 * 0.25);
  // Row 3: 0.75 (-1, 0) + 0.25 (0.6, -0.8) = (-0.6, -0.2).
  const double n3 = std::sqrt(0.36 + 0.04);
  auto b = model->memory_bank;
  EXPECT_NEAR(b[0][0].item<double>(), 0.75 / n0, 1e-6);
  EXPECT_NEAR(b[0][1].item<double>(), 0.25 / n0, 1e-6);
  EXPECT_NEAR(b[3][0].item<double>(), -0.6 / n3, 1e-6);
  EXPECT_NEAR(b[3][1].item<double>(), -0.2 / n3, 1e-6);
  for (int64_t r : {1, 2, 4}) EXPECT_TRUE(b[r].equal(before[r])) << "row " << r << " moved";
}

TEST(MemoryBank, ForwardScoresTheQueryAgainstItsOwnEntryAndKDrawn) {
  torch::manual_seed(2);
  auto model = Moco(tiny_encoder(), MocoOptions()
                                        .mechanism(Mechanism::memory_bank)
                                        .dim(4)
                                        .K(6)
                                        .T(0.1)
                                        .bank_size(12));
  model->eval();
  auto im_q = torch::randn({3, 1, 8, 8});
  auto idx = torch::tensor({7, 0, 11}, torch::kInt64);
  const auto bank = model->memory_bank.clone();
  torch::manual_seed(9);
  auto out = model->forward(im_q, torch::randn({3, 1, 8, 8}), idx);
  ASSERT_EQ(out.logits.sizes(), (c10::IntArrayRef{3, 7}));
  // The same draw again, by hand.
  torch::manual_seed(9);
  torch::randn({3, 1, 8, 8});
  auto neg = draw_bank_negatives(idx, 12, 6);
  auto q = unit_rows(model->encoder_q->forward(im_q));
  EXPECT_TRUE(torch::allclose(out.logits, memory_bank_logits(q, bank, idx, neg, 0.1), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(out.queries, q.detach(), 1e-6, 1e-6));
  EXPECT_TRUE(out.indices.equal(idx));
  // The bank changes only in update_dictionary, after the step.
  EXPECT_TRUE(model->memory_bank.equal(bank));
  model->update_dictionary(out);
  EXPECT_FALSE(model->memory_bank.index_select(0, idx).equal(bank.index_select(0, idx)));
  // Without indices there is no bank row to score.
  EXPECT_THROW(model->forward(im_q, im_q), c10::Error);
}

TEST(Mechanisms, BadCombinationsNameTheFlag) {
  auto message = [](const MocoOptions& o) {
    return test::error_message([&] { Moco(tiny_encoder(), o); });
  };
  EXPECT_NE(message(MocoOptions().mechanism(Mechanism::memory_bank).K(10).bank_size(10))
                .find("--moco-k"),
            std::string::npos);
  EXPECT_NE(message(MocoOptions().mechanism(Mechanism::memory_bank).K(2).bank_size(10)
                        .bank_momentum(1.0))
                .find("--bank-momentum"),
            std::string::npos);
  EXPECT_NE(message(MocoOptions().mechanism(Mechanism::end_to_end).symmetric(true))
                .find("--symmetric"),
            std::string::npos);
  EXPECT_NE(test::error_message([] { parse_mechanism("queue"); }).find("--mechanism"),
            std::string::npos);
  EXPECT_EQ(parse_mechanism("end-to-end"), Mechanism::end_to_end);
  EXPECT_STREQ(mechanism_name(Mechanism::memory_bank), "memory-bank");
}

}  // namespace moco::models
