// End-to-end pretraining on a tiny IDX dataset made on the fly: resume
// equals an uninterrupted run, checkpoints in the official layout that
// Python reads, and bad input stops with a clear error.
#include "train/pretrain.h"

#include "../support.h"
#include "../data/image_fixtures.h"
#include "io/metrics.h"
#include "train/knn.h"
#include "train/options.h"

namespace moco::train {

namespace {

PretrainOptions tiny_run(const test::fs::path& data,
                         const test::fs::path& out) {
  return PretrainOptions()
      .data(data.string())
      .arch("resnet18")
      .width(8)
      .epochs(2)
      .batch_size(16)
      .bn_splits(4)
      .moco_k(40)
      .moco_dim(16)
      .lr(0.05)
      .cos(true)
      .aug_plus(true)
      .workers(2)
      .threads(1)
      .seed(3)
      .print_freq(1)
      .knn_k(5)
      .progress(false)
      .output(out.string());
}

std::map<std::string, torch::Tensor> state_dict_of(const std::string& ckpt) {
  std::map<std::string, torch::Tensor> out;
  auto sd = io::dict_get(io::load_pickle(ckpt), "state_dict", ckpt);
  for (const auto& e : sd.toGenericDict()) {
    out[e.key().toStringRef()] = e.value().toTensor();
  }
  return out;
}

std::string error_of(const PretrainOptions& o) {
  try {
    run_pretrain(o);
  } catch (const c10::Error& e) {
    return e.what_without_backtrace();
  }
  return "";
}

}  // namespace

class Pretrain : public ::testing::Test {
 protected:
  void SetUp() override {
    data_ = test::scratch_dir("data");
    test::write_idx_dataset(data_, 64, 16, 4);
  }
  test::fs::path data_;
};

TEST_F(Pretrain, ResumedRunEndsWithTheSameWeights) {
  auto full_dir = test::scratch_dir("full");
  auto full = run_pretrain(tiny_run(data_, full_dir));
  EXPECT_EQ(full.steps, 8);
  EXPECT_EQ(full.epochs_done, 2);

  auto part_dir = test::scratch_dir("part");
  auto first = run_pretrain(tiny_run(data_, part_dir).max_steps(4));
  EXPECT_EQ(first.steps, 4);
  auto second = run_pretrain(
      tiny_run(data_, part_dir).resume(first.checkpoint));
  EXPECT_EQ(second.steps, 4);
  // The same weights score the same: the final kNN monitor agrees exactly.
  EXPECT_GT(full.knn_top1, 0);
  EXPECT_DOUBLE_EQ(second.knn_top1, full.knn_top1);

  auto a = state_dict_of(full.checkpoint);
  auto b = state_dict_of(second.checkpoint);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    EXPECT_TRUE(v.equal(b.at(k))) << k << " differs after resume";
  }
  // The metrics file has the records a user plots.
  const auto metrics = test::read_text(full_dir / "metrics.jsonl");
  EXPECT_NE(metrics.find("\"kind\":\"train\""), std::string::npos);
  EXPECT_NE(metrics.find("\"kind\":\"knn\""), std::string::npos);
  EXPECT_NE(metrics.find("\"data_wait_share\""), std::string::npos);
}

TEST_F(Pretrain, EndToEndAndMemoryBankResumeExactly) {
  for (const std::string mech : {"end-to-end", "memory-bank"}) {
    SCOPED_TRACE(mech);
    auto full_dir = test::scratch_dir("full_" + mech);
    auto full = run_pretrain(tiny_run(data_, full_dir).mechanism(mech));
    auto part_dir = test::scratch_dir("part_" + mech);
    auto first = run_pretrain(tiny_run(data_, part_dir).mechanism(mech).max_steps(3));
    auto second = run_pretrain(tiny_run(data_, part_dir).mechanism(mech).resume(first.checkpoint));
    EXPECT_EQ(first.steps + second.steps, full.steps);
    EXPECT_DOUBLE_EQ(second.knn_top1, full.knn_top1);
    const auto a = state_dict_of(full.checkpoint);
    const auto b = state_dict_of(second.checkpoint);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [k, v] : a) {
      ASSERT_TRUE(b.count(k)) << k;
      EXPECT_TRUE(v.equal(b.at(k))) << k << " differs after resume";
    }
    // One encoder; the bank (one row per training image) only for the bank.
    EXPECT_EQ(a.count("module.encoder_k.conv1.weight"), 0u);
    EXPECT_EQ(a.count("module.queue"), 0u);
    if (mech == "memory-bank") {
      ASSERT_EQ(a.count("module.memory_bank"), 1u);
      EXPECT_EQ(a.at("module.memory_bank").size(0), 64);
      EXPECT_TRUE(torch::allclose(a.at("module.memory_bank").norm(2, 1), torch::ones({64}),
                                  1e-4, 1e-5));
    }
  }
}

TEST_F(Pretrain, TheUntrainedScoreIsTakenOnceAndKeptOnResume) {
  auto out = test::scratch_dir("init");
  // Stopped within the first epoch, so the checkpoint's epoch is still 0.
  auto first = run_pretrain(tiny_run(data_, out).knn_init(true).max_steps(2));
  ASSERT_GE(first.knn_init_top1, 0);
  auto second = run_pretrain(tiny_run(data_, out).knn_init(true).resume(first.checkpoint));
  EXPECT_DOUBLE_EQ(second.knn_init_top1, first.knn_init_top1);
  int before = 0;
  for (const auto& k : io::read_metrics((out / "metrics.jsonl").string()).knn) {
    before += k.epoch < 0 ? 1 : 0;
  }
  EXPECT_EQ(before, 1);
}

TEST_F(Pretrain, PythonReadsTheCheckpointInTheOfficialLayout) {
  auto out = test::scratch_dir("out");
  auto r = run_pretrain(tiny_run(data_, out).epochs(1).mlp(true));
  test::run_python("check_checkpoint.py",
                   "'" + r.checkpoint + "' resnet18 mlp", out);
}

TEST_F(Pretrain, BadOptionsNameTheFlag) {
  auto out = test::scratch_dir("out");
  auto expect_flag = [&](PretrainOptions o, const std::string& flag) {
    const auto msg = error_of(o);
    EXPECT_NE(msg.find(flag), std::string::npos)
        << "expected '" << flag << "' in: " << msg;
  };
  expect_flag(tiny_run(data_, out).moco_k(0), "--moco-k");
  expect_flag(tiny_run(data_, out).moco_m(1.0), "--moco-m");
  expect_flag(tiny_run(data_, out).moco_t(0), "--moco-t");
  expect_flag(tiny_run(data_, out).batch_size(128), "--batch-size");
  expect_flag(tiny_run(data_, out).bn_splits(3), "--bn-splits");
  expect_flag(tiny_run(data_, out).arch("vgg16"), "--arch");
  expect_flag(tiny_run(data_, out).device("tpu"), "--device");
  EXPECT_FALSE(test::fs::exists(out / "checkpoint.pth.tar"));
}

TEST_F(Pretrain, BadDataNamesTheFile) {
  auto out = test::scratch_dir("out");
  auto missing = error_of(tiny_run(data_ / "nope", out));
  EXPECT_NE(missing.find("nope"), std::string::npos) << missing;
  // Truncate the gzip stream of the training images.
  const auto f = data_ / "train-images-idx3-ubyte.gz";
  auto bytes = test::read_text(f);
  test::write_file(f, bytes.substr(0, bytes.size() / 2));
  auto corrupt = error_of(tiny_run(data_, out));
  EXPECT_NE(corrupt.find("train-images-idx3-ubyte.gz"), std::string::npos)
      << corrupt;
}

TEST_F(Pretrain, NonFiniteLossStopsAndKeepsTheLastCheckpoint) {
  auto out = test::scratch_dir("out");
  auto first = run_pretrain(tiny_run(data_, out).epochs(3).max_steps(4));
  const auto before = test::read_text(first.checkpoint);
  const auto msg = error_of(
      tiny_run(data_, out).epochs(3).lr(1e38).resume(first.checkpoint));
  EXPECT_NE(msg.find("non-finite loss"), std::string::npos) << msg;
  EXPECT_NE(msg.find(first.checkpoint), std::string::npos) << msg;
  EXPECT_EQ(test::read_text(first.checkpoint), before);
}

TEST_F(Pretrain, RefusesToOverwriteARunWithoutResume) {
  auto out = test::scratch_dir("out");
  run_pretrain(tiny_run(data_, out).epochs(1));
  const auto msg = error_of(tiny_run(data_, out).epochs(1));
  EXPECT_NE(msg.find("--resume"), std::string::npos) << msg;
}

TEST_F(Pretrain, ResumeFromAnotherArchitectureNamesTheFile) {
  auto out = test::scratch_dir("out");
  auto r = run_pretrain(tiny_run(data_, out).epochs(1));
  auto out2 = test::scratch_dir("out2");
  const auto msg = error_of(
      tiny_run(data_, out2).arch("resnet34").resume(r.checkpoint));
  EXPECT_NE(msg.find(r.checkpoint), std::string::npos) << msg;
}

}  // namespace moco::train

namespace moco::train {

// `moco knn` on a pretraining checkpoint evaluates at the crop the run
// trained at (64 px here, on 80 px photos), and so gives the run's own
// final kNN monitor on the same bank and held-out images.
TEST(PretrainPhotos, KnnOnTheCheckpointEqualsTheRunsMonitor) {
  auto dir = test::scratch_dir("photos");
  for (int c = 0; c < 2; ++c) {
    test::fs::create_directories(dir / ("class" + std::to_string(c)));
    for (int i = 0; i < 20; ++i) {
      test::small_jpeg(dir / ("class" + std::to_string(c)) / (std::to_string(i) + ".jpg"),
                       80, 88, static_cast<unsigned>(100 * c + i));
    }
  }
  auto out = test::scratch_dir("photos_run");
  auto o = tiny_run(dir, out).epochs(1).crop_size(64).val_split(0.25).knn_k(5);
  const auto r = run_pretrain(o);
  ASSERT_GT(r.knn_top1, 0);
  const auto k = run_knn(KnnCommandOptions()
                             .data(dir.string())
                             .pretrained(r.checkpoint)
                             .val_split(0.25)
                             .knn_k(5)
                             .threads(1));
  EXPECT_EQ(k.crop, 64);
  EXPECT_EQ(k.test_size, 10);  // a quarter of 40 held out, as the run held out
  EXPECT_EQ(k.bank_size, 30);
  EXPECT_DOUBLE_EQ(k.top1, r.knn_top1);
  // --crop-size still wins over the checkpoint's.
  EXPECT_EQ(run_knn(KnnCommandOptions()
                        .data(dir.string())
                        .pretrained(r.checkpoint)
                        .val_split(0.25)
                        .crop_size(48)
                        .knn_k(5)
                        .threads(1))
                .crop,
            48);
}

}  // namespace moco::train
