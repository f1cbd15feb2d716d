// Data-parallel MoCo over c10d's Gloo backend, 2 and 3 ranks as threads of
// this process sharing a FileStore on 127.0.0.1: collectives, shuffle-BN
// across ranks, identical parameters and queues after a step, and a 2-rank
// step equal to a 1-rank step on the same global batch.
#include "distributed/communicator.h"
#include "distributed/environment.h"
#include "distributed/gradient_reducer.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>

#include <thread>

#include "../support.h"
#include "models/moco.h"

namespace moco::distributed {
namespace {

// Runs body(comm) on `ranks` threads, each its own rank; rethrows the first
// failure. Torch's default generator is shared by the threads: models and
// data are made before, on the main thread.
void run_ranks(int64_t ranks, const std::function<void(Communicator&)>& body) {
  const auto dir = test::suite_scratch_dir("dist-stores");
  static int counter = 0;
  const auto path = (dir / ("store" + std::to_string(counter++))).string();
  test::fs::remove(path);
  std::vector<std::thread> threads;
  std::vector<std::exception_ptr> errors(ranks);
  for (int64_t r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto store = c10::make_intrusive<c10d::FileStore>(path, static_cast<int>(ranks));
        auto comm = Communicator::over_store(store, r, ranks, std::chrono::seconds(30));
        body(*comm);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

TEST(DistEnv, TorchrunSlurmAndFlags) {
  auto d = resolve(DistOptions(), {{"RANK", "3"}, {"WORLD_SIZE", "4"},
                                   {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                                   {"MASTER_ADDR", "10.0.0.5"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(d.source, "torchrun");
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.world_size, 4);
  EXPECT_EQ(d.local_rank, 1);
  EXPECT_EQ(d.master_addr, "10.0.0.5");
  EXPECT_EQ(d.master_port, 1234);
  d = resolve(DistOptions().dist_url("tcp://node7:2345"),
              {{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"}});
  EXPECT_EQ(d.source, "SLURM");
  EXPECT_EQ(d.rank, 5);
  EXPECT_EQ(d.world_size, 8);
  EXPECT_EQ(d.master_addr, "node7");
  EXPECT_EQ(d.master_port, 2345);
  d = resolve(DistOptions().world_size(2).rank(1).dist_url("tcp://h:99"), {});
  EXPECT_EQ(d.source, "flags");
  EXPECT_EQ(d.world_size, 2);
  EXPECT_FALSE(resolve(DistOptions(), {}).distributed());
  auto msg = test::error_message([] {
    resolve(DistOptions(), {{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}});
  });
  EXPECT_NE(msg.find("MASTER_ADDR"), std::string::npos) << msg;
  msg = test::error_message(
      [] { resolve(DistOptions(), {{"RANK", "x"}, {"WORLD_SIZE", "2"}}); });
  EXPECT_NE(msg.find("RANK"), std::string::npos) << msg;
  msg = test::error_message(
      [] { resolve(DistOptions().dist_url("http://a:1").world_size(2).rank(0), {}); });
  EXPECT_NE(msg.find("--dist-url"), std::string::npos) << msg;
}

TEST(Dist, CollectivesOnTwoAndThreeRanks) {
  for (int64_t ranks : {2, 3}) {
    run_ranks(ranks, [&](Communicator& c) {
      const double r = static_cast<double>(c.rank());
      auto g = c.all_gather(torch::full({2, 3}, r));
      ASSERT_EQ(g.size(0), 2 * ranks);
      for (int64_t i = 0; i < ranks; ++i) {
        EXPECT_TRUE(g.slice(0, 2 * i, 2 * i + 2).eq(double(i)).all().item<bool>());
      }
      std::vector<torch::Tensor> b = {torch::full({4}, r), torch::full({2}, r + 10),
                                      torch::full({3}, static_cast<int64_t>(r))};
      c.broadcast(b, ranks - 1);
      EXPECT_TRUE(b[0].eq(double(ranks - 1)).all().item<bool>());
      EXPECT_TRUE(b[1].eq(double(ranks - 1 + 10)).all().item<bool>());
      EXPECT_TRUE(b[2].eq(ranks - 1).all().item<bool>());
      std::vector<torch::Tensor> m = {torch::full({5}, r), torch::full({1000}, 2 * r)};
      c.all_reduce_mean(m);
      const double mean = (ranks - 1) / 2.0;
      EXPECT_TRUE(m[0].allclose(torch::full({5}, mean)));
      EXPECT_TRUE(m[1].allclose(torch::full({1000}, 2 * mean)));
      EXPECT_DOUBLE_EQ(c.mean(r), mean);
      c.barrier();
    });
  }
}

models::Moco tiny_moco(int64_t splits, bool shuffle,
                       models::Mechanism mech = models::Mechanism::moco) {
  torch::manual_seed(11);
  return models::Moco(models::ResNetOptions("resnet18")
                          .small_stem(true)
                          .in_channels(1)
                          .width(8)
                          .bn_splits(splits),
                      models::MocoOptions()
                          .mechanism(mech)
                          .bank_size(16)
                          .dim(16)
                          .K(mech == models::Mechanism::memory_bank ? 5 : 24)
                          .m(0.9)
                          .T(0.2)
                          .shuffle_bn(shuffle));
}

void wire(models::Moco& m, Communicator& c) {
  models::KeyExchange ex;
  ex.rank = c.rank();
  ex.world_size = c.world_size();
  ex.all_gather = [&c](const torch::Tensor& t) { return c.all_gather(t); };
  ex.broadcast = [&c](torch::Tensor& t, int64_t r) {
    std::vector<torch::Tensor> v = {t};
    c.broadcast(v, r);
  };
  ex.all_reduce_sum = [&c](const torch::Tensor& t) { return c.all_reduce_sum(t); };
  m->set_key_exchange(ex);
}

// One training step on this rank's slice of a fixed global batch; the
// gradients averaged by all_reduce_mean after backward, or by a
// GradientReducer during it.
void step(models::Moco& m, const torch::Tensor& q, const torch::Tensor& k,
          Communicator* c, GradientReducer* reducer = nullptr,
          const torch::Tensor& indices = {}) {
  for (auto& p : m->encoder_q->parameters()) p.mutable_grad() = torch::Tensor();
  auto out = m->forward(q, k, indices);
  out.loss.backward();
  std::vector<torch::Tensor> grads;
  for (auto& p : m->encoder_q->parameters()) grads.push_back(p.grad());
  if (reducer) {
    reducer->finish();
  } else if (c) {
    c->all_reduce_mean(grads);
  }
  torch::NoGradGuard no_grad;
  for (auto& p : m->encoder_q->parameters()) p.sub_(0.1 * p.grad());
  m->update_dictionary(out);
}

std::pair<torch::Tensor, torch::Tensor> global_batch(int64_t n, int seed) {
  torch::manual_seed(seed);
  return {torch::randn({n, 1, 12, 12}), torch::randn({n, 1, 12, 12})};
}

TEST(Dist, RanksStayIdenticalWithShuffleBnAcrossRanks) {
  for (int64_t ranks : {2, 3}) {
    std::vector<std::vector<torch::Tensor>> params(ranks);
    std::vector<torch::Tensor> queues(ranks);
    std::vector<models::Moco> models;
    for (int64_t r = 0; r < ranks; ++r) models.push_back(tiny_moco(1, true));
    const auto b0 = global_batch(4 * ranks, 100), b1 = global_batch(4 * ranks, 101);
    run_ranks(ranks, [&](Communicator& c) {
      auto m = models[c.rank()];
      {
        // Different starting points on purpose: the broadcast must fix it.
        torch::NoGradGuard no_grad;
        for (auto& p : m->parameters()) p.add_(0.01 * c.rank());
      }
      std::vector<torch::Tensor> state;
      for (auto& p : m->parameters()) state.push_back(p.data());
      for (auto& b : m->buffers()) state.push_back(b);
      c.broadcast(state, 0);
      wire(m, c);
      for (int s = 0; s < 2; ++s) {
        const auto& [q, k] = s == 0 ? b0 : b1;
        const int64_t r = c.rank();
        // Each rank draws its own shuffle (the generator is shared and
        // raced here): only rank 0's, broadcast, counts.
        step(m, q.slice(0, 4 * r, 4 * r + 4), k.slice(0, 4 * r, 4 * r + 4), &c);
      }
      for (auto& p : m->parameters()) params[c.rank()].push_back(p.detach().clone());
      queues[c.rank()] = m->queue.clone();
    });
    for (int64_t r = 1; r < ranks; ++r) {
      ASSERT_EQ(params[r].size(), params[0].size());
      for (size_t i = 0; i < params[0].size(); ++i) {
        EXPECT_TRUE(params[r][i].equal(params[0][i])) << "rank " << r << " param " << i;
      }
      EXPECT_TRUE(queues[r].equal(queues[0])) << "rank " << r;
    }
  }
}

TEST(Dist, ShuffleAcrossRanksIsUndoneExactly) {
  // With BN in eval mode the encoder is per-sample, so shuffled keys must
  // come back equal to the unshuffled ones, row for row.
  std::vector<models::Moco> models;
  for (int r = 0; r < 3; ++r) models.push_back(tiny_moco(1, true));
  auto [q, k] = global_batch(12, 7);
  run_ranks(3, [&](Communicator& c) {
    auto m = models[c.rank()];
    m->encoder_k->eval();
    auto mine = k.slice(0, 4 * c.rank(), 4 * c.rank() + 4);
    torch::NoGradGuard no_grad;
    auto plain = torch::nn::functional::normalize(
        m->encoder_k->forward(mine), torch::nn::functional::NormalizeFuncOptions().dim(1));
    wire(m, c);
    torch::manual_seed(5 + c.rank());
    auto keys = m->encode_keys(mine);
    EXPECT_LE((keys - plain).abs().max().item<double>(), 1e-6);
  });
  auto p = models::draw_batch_shuffle(37, torch::kCPU);
  EXPECT_TRUE(p.forward.index_select(0, p.inverse).equal(torch::arange(37)));
}

TEST(Dist, TwoRanksEqualOneRankOnTheSameGlobalBatch) {
  // BN made batch-independent across the two set-ups: one process with 2
  // BN splits (the CIFAR demo's split BN puts sample j in split j % 2) sees
  // the same groups as two processes with one each, rank r holding samples
  // r, r + 2, ...; no shuffle (a shuffle draws different permutations).
  auto [q, k] = global_batch(8, 3);
  auto single = tiny_moco(2, false);
  step(single, q, k, nullptr);
  std::vector<torch::Tensor> two;
  torch::Tensor queue;
  std::vector<models::Moco> models = {tiny_moco(1, false), tiny_moco(1, false)};
  std::vector<int64_t> buckets(2), early(2);
  run_ranks(2, [&](Communicator& c) {
    auto m = models[c.rank()];
    wire(m, c);
    const int64_t r = c.rank();
    const auto mine = torch::arange(r, 8, 2);
    // Small buckets, so that some start before backward ends.
    std::shared_ptr<Communicator> shared(&c, [](Communicator*) {});
    GradientReducer reducer(shared, m->encoder_q->parameters(), 4096);
    step(m, q.index_select(0, mine), k.index_select(0, mine), &c, &reducer);
    buckets[r] = reducer.buckets();
    early[r] = reducer.started_early();
    if (r == 0) {
      for (auto& p : m->encoder_q->parameters()) two.push_back(p.detach().clone());
      queue = m->queue.clone();
    }
  });
  auto ps = single->encoder_q->parameters();
  ASSERT_EQ(ps.size(), two.size());
  double worst = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    worst = std::max(worst, (ps[i] - two[i]).abs().max().item<double>());
  }
  EXPECT_LE(worst, 1e-5);
  // Every bucket's all-reduce started from a gradient hook, before
  // backward returned (each parameter of f_q gets a gradient).
  for (int r = 0; r < 2; ++r) {
    EXPECT_GE(buckets[r], 2) << "rank " << r;
    EXPECT_EQ(early[r], buckets[r]) << "rank " << r;
  }
  // The gathered keys arrive rank by rank: samples 0, 2, 4, 6, then 1, 3, ...
  const auto order = torch::cat({torch::arange(0, 8, 2), torch::arange(1, 8, 2),
                                 torch::arange(8, 24)});
  EXPECT_LE((single->queue.index_select(1, order) - queue).abs().max().item<double>(),
            1e-5);
}

TEST(Dist, EndToEndOnTwoRanksEqualsOneRankOnTheSameGlobalBatch) {
  // As above, with end-to-end's keys: each rank's queries score the keys of
  // the whole global batch, and each rank's keys get the gradient of every
  // rank's queries (summed across the ranks in the gather's backward).
  const auto mech = models::Mechanism::end_to_end;
  auto [q, k] = global_batch(8, 4);
  auto single = tiny_moco(2, false, mech);
  step(single, q, k, nullptr);
  std::vector<torch::Tensor> two;
  std::vector<models::Moco> models = {tiny_moco(1, false, mech), tiny_moco(1, false, mech)};
  run_ranks(2, [&](Communicator& c) {
    auto m = models[c.rank()];
    wire(m, c);
    const auto mine = torch::arange(c.rank(), 8, 2);
    step(m, q.index_select(0, mine), k.index_select(0, mine), &c);
    if (c.rank() == 0) {
      for (auto& p : m->encoder_q->parameters()) two.push_back(p.detach().clone());
    }
  });
  auto ps = single->encoder_q->parameters();
  ASSERT_EQ(ps.size(), two.size());
  double worst = 0, moved = 0;
  for (size_t i = 0; i < ps.size(); ++i) {
    worst = std::max(worst, (ps[i] - two[i]).abs().max().item<double>());
  }
  // Without the keys' gradient from the other rank the step would differ
  // by about as much as it moves the weights.
  auto start = tiny_moco(2, false, mech)->encoder_q->parameters();
  for (size_t i = 0; i < ps.size(); ++i) {
    moved = std::max(moved, (ps[i] - start[i]).abs().max().item<double>());
  }
  EXPECT_GT(moved, 1e-3);
  EXPECT_LE(worst, 1e-5);
}

TEST(Dist, MemoryBankRanksApplyEveryRanksUpdates) {
  const auto mech = models::Mechanism::memory_bank;
  std::vector<models::Moco> models = {tiny_moco(1, false, mech), tiny_moco(1, false, mech)};
  const auto initial = models[0]->memory_bank.clone();
  auto [q, k] = global_batch(16, 5);
  std::vector<torch::Tensor> banks(2);
  run_ranks(2, [&](Communicator& c) {
    auto m = models[c.rank()];
    wire(m, c);
    // Two steps of 8 images, each rank 4 of them, by dataset index.
    for (int64_t s = 0; s < 2; ++s) {
      const auto mine = torch::arange(8 * s + c.rank(), 8 * s + 8, 2);
      step(m, q.index_select(0, mine), k.index_select(0, mine), &c, nullptr, mine);
    }
    banks[c.rank()] = m->memory_bank.clone();
  });
  EXPECT_TRUE(banks[0].equal(banks[1]));
  // Every image's entry moved, the other rank's included.
  for (int64_t i = 0; i < 16; ++i) {
    EXPECT_FALSE(banks[0][i].equal(initial[i])) << "entry " << i;
  }
  EXPECT_TRUE(torch::allclose(banks[0].norm(2, 1), torch::ones({16}), 1e-5, 1e-6));
}

TEST(Dist, SyncBnEqualsBatchNormOverTheGlobalBatch) {
  torch::manual_seed(4);
  const auto x = torch::randn({6, 3, 5, 5}) * 2 + 1;
  const auto gy = torch::randn({6, 3, 5, 5});
  // Reference: plain BN over all six samples.
  models::SplitBatchNorm2d ref(models::SplitBatchNorm2dOptions(3));
  auto xr = x.clone().requires_grad_(true);
  auto yr = ref->forward(xr);
  (yr * gy).sum().backward();
  std::vector<torch::Tensor> y(2), gx(2), gw(2), rm(2);
  std::vector<models::SplitBatchNorm2d> bns = {
      models::SplitBatchNorm2d(models::SplitBatchNorm2dOptions(3)),
      models::SplitBatchNorm2d(models::SplitBatchNorm2dOptions(3))};
  run_ranks(2, [&](Communicator& c) {
    const int64_t r = c.rank();
    auto bn = bns[r];
    bn->set_sync([&c](const torch::Tensor& t) { return c.all_reduce_sum(t); });
    auto xi = x.slice(0, 3 * r, 3 * r + 3).clone().requires_grad_(true);
    auto yi = bn->forward(xi);
    (yi * gy.slice(0, 3 * r, 3 * r + 3)).sum().backward();
    y[r] = yi.detach();
    gx[r] = xi.grad();
    gw[r] = bn->weight.grad().clone();
    rm[r] = bn->running_var.clone();
  });
  EXPECT_LE((torch::cat(y) - yr.detach()).abs().max().item<double>(), 1e-5);
  EXPECT_LE((torch::cat(gx) - xr.grad()).abs().max().item<double>(), 1e-5);
  // Each rank's weight gradient is its own share; their sum is the total.
  EXPECT_LE((gw[0] + gw[1] - ref->weight.grad()).abs().max().item<double>(), 1e-4);
  EXPECT_LE((rm[0] - ref->running_var).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace moco::distributed
