// The client libraries users read moco's files with, on those files:
// TensorBoard's EventAccumulator, webdataset (both ways), safetensors and
// timm. They are PyPI packages, installed in the pip build's venv
// (scripts/setup.sh --torch pip --tests), which builds these tests with
// MOCO_TEST_CLIENTS=1; Debian has none of them, so its build skips them
// saying so, and CI runs both builds.
#include <nlohmann/json.hpp>

#include <map>

#include "../data/image_fixtures.h"
#include "../support.h"
#include "../train/resnet50_export.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "data/shards.h"
#include "io/metrics.h"

namespace moco::io {
namespace {

namespace fs = test::fs;
using test::kTinyRun;
constexpr auto moco = test::run_moco;

#define MOCO_NEED_CLIENTS()                                                      \
  if (!MOCO_TEST_CLIENTS) {                                                      \
    GTEST_SKIP() << "needs tensorboard, webdataset, timm and safetensors: the "  \
                    "pip build's suite (scripts/test.sh --torch pip) runs this"; \
  }

std::string events_file(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      return e.path().string();
    }
  }
  return "";
}

TEST(Clients, TensorboardLoadsEveryScalarAndStep) {
  MOCO_NEED_CLIENTS();
  auto dir = test::scratch_dir("tb");
  {
    MetricsWriter m((dir / "metrics.jsonl").string());
    m.enable_tensorboard(dir.string());
    m.write(ConfigRecord{nlohmann::json::object(), 10, "x"});
    for (int64_t step = 1; step <= 30; ++step) {
      TrainRecord t;
      t.step = step;
      t.loss = 9.0 - 0.125 * static_cast<double>(step);
      t.lr = 0.03 * static_cast<double>(step) / 30;
      m.write(t);
    }
    for (int64_t epoch = 0; epoch < 3; ++epoch) {
      KnnRecord k;
      k.epoch = epoch;
      k.top1 = 40.5 + static_cast<double>(epoch);
      m.write(k);
    }
  }
  const auto file = events_file(dir);
  ASSERT_FALSE(file.empty());
  // TensorBoard's own reader, and the project's independent one.
  test::run_python("client_tensorboard.py",
                   "'" + dir.string() + "' '" + (dir / "tb.json").string() + "'", dir);
  test::run_python("read_tfevents.py", "'" + file + "' '" + (dir / "ours.json").string() + "'",
                   dir);
  const auto tb = nlohmann::json::parse(test::read_text(dir / "tb.json"));
  const auto ours = nlohmann::json::parse(test::read_text(dir / "ours.json"));
  size_t seen = 0;
  for (const auto& [tag, points] : tb.items()) seen += points.size();
  EXPECT_EQ(seen, ours.size()) << tb.dump();
  for (const auto& s : ours) {
    const std::string tag = s[0];
    ASSERT_TRUE(tb.contains(tag)) << tag << " not in " << tb.dump();
    bool found = false;
    for (const auto& p : tb[tag]) {
      found |= p[0] == s[1] && p[1].get<float>() == s[2].get<float>();
    }
    EXPECT_TRUE(found) << tag << " step " << s[1] << " value " << s[2];
  }
  ASSERT_TRUE(tb.contains("train/loss"));
  EXPECT_EQ(tb["train/loss"].size(), 30u);
  EXPECT_EQ(tb["train/loss"][29][0], 30);
  EXPECT_FLOAT_EQ(tb["train/loss"][29][1].get<float>(), 5.25f);
  ASSERT_TRUE(tb.contains("knn/top1"));
  EXPECT_EQ(tb["knn/top1"].size(), 3u);
  EXPECT_EQ(tb["knn/top1"][2][0], 3);  // after epoch 3
  EXPECT_FLOAT_EQ(tb["knn/top1"][2][1].get<float>(), 42.5f);
}

// Two classes of JPEGs and PNGs, lower-case extensions as webdataset keys
// them; returns FILE:LABEL words for client_webdataset.py write.
std::string photos(const fs::path& dir) {
  std::string words;
  for (int c = 0; c < 2; ++c) {
    const auto d = dir / (c == 0 ? "a" : "b");
    fs::create_directories(d);
    for (int i = 0; i < 4; ++i) {
      const auto seed = static_cast<unsigned>(10 * c + i);
      const auto f = d / (std::to_string(i) + (i % 2 ? ".png" : ".jpg"));
      if (i % 2) {
        test::small_png(f, 40, 48, seed);
      } else {
        test::small_jpeg(f, 44, 36, seed);
      }
      words += " '" + f.string() + ":" + std::to_string(c) + "'";
    }
  }
  return words;
}

TEST(Clients, WebdatasetReadsMocoShardsAndWritesShardsMocoTrainsOn) {
  MOCO_NEED_CLIENTS();
  auto dir = test::scratch_dir("wds");
  const auto words = photos(dir / "photos");
  auto r = moco("shard '" + (dir / "photos").string() + "' '" + (dir / "ours").string() +
                    "' --shard-size 3",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto pattern = (dir / "ours" / "train-{000000..000002}.tar").string();
  EXPECT_NE(r.out.find(pattern), std::string::npos) << r.out;
  // webdataset reads every sample: its key, its label, its image's bytes.
  fs::create_directories(dir / "read");
  test::run_python("client_webdataset.py",
                   "read '" + pattern + "' '" + (dir / "read").string() + "'", dir);
  const auto rows = nlohmann::json::parse(test::read_text(dir / "read" / "samples.json"));
  const auto folder = data::open_dataset((dir / "photos").string()).train;
  ASSERT_EQ(rows.size(), folder.files.size());
  for (const auto& row : rows) {
    const std::string key = row[0], ext = row[1];
    const auto i = static_cast<size_t>(std::stoll(key));
    ASSERT_LT(i, folder.files.size()) << key;
    EXPECT_EQ(row[2].get<int64_t>(), folder.labels[static_cast<int64_t>(i)].item<int64_t>())
        << key;
    EXPECT_EQ(fs::path(folder.files[i]).extension().string(), "." + ext) << key;
    EXPECT_EQ(test::file_bytes(dir / "read" / (key + "." + ext)),
              test::file_bytes(folder.files[i]))
        << key << " vs " << folder.files[i];
  }
  // webdataset's ShardWriter writes shards moco reads and pretrains on.
  fs::create_directories(dir / "theirs");
  test::run_python("client_webdataset.py", "write '" + (dir / "theirs").string() + "'" + words,
                   dir);
  const auto list = data::open_shards((dir / "theirs" / "wds-{000000..000002}.tar").string());
  EXPECT_EQ(list.samples, 8);
  EXPECT_EQ(list.labelled, 8);
  std::map<std::string, int64_t> labels;
  for (const auto& shard : list.shards) {
    data::ShardReader reader(shard.path);
    data::ShardSample s;
    while (reader.next(s)) labels[s.key] = s.label;
  }
  ASSERT_EQ(labels.size(), 8u);
  EXPECT_EQ(labels["s0000"], 0);
  EXPECT_EQ(labels["s0007"], 1);
  r = moco("pretrain '" + (dir / "theirs" / "wds-{000000..000002}.tar").string() +
               "' -a resnet18 --width 8 --crop-size 32 --max-steps 1" + kTinyRun + "'" +
               (dir / "run").string() + "'",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("8 samples in 3 shards"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoint.pth.tar")) << r.out;
}

TEST(Clients, SafetensorsAndTimmLoadTheResnet50Export) {
  MOCO_NEED_CLIENTS();
  auto dir = test::scratch_dir("timm");
  test::Resnet50Files f;
  test::resnet50_export(dir, &f);
  if (HasFatalFailure()) return;
  test::run_python("client_timm_safetensors.py",
                   "'" + f.pth + "' '" + f.safetensors + "' '" + f.features + "' " + f.images_args,
                   dir);
}

}  // namespace
}  // namespace moco::io
