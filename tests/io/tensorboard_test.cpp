// TensorBoard event files: CRC-32C against its check value, and the events
// of a metrics writer read back by an independent Python reader (framing,
// CRCs and protocol buffers decoded by hand; TensorBoard's own reader too
// where it is installed).
#include "io/tensorboard.h"

#include <nlohmann/json.hpp>

#include "../support.h"
#include "io/metrics.h"

namespace moco::io {
namespace {

TEST(Tensorboard, Crc32cMatchesItsCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(Tensorboard, MetricsBecomeScalarsAReaderDecodes) {
  auto dir = test::scratch_dir("tb");
  {
    MetricsWriter m((dir / "metrics.jsonl").string());
    m.enable_tensorboard(dir.string());
    m.write(ConfigRecord{nlohmann::json::object(), 10, "x"});
    TrainRecord t;
    t.step = 20;
    t.loss = 6.5;
    t.lr = 0.03;
    m.write(t);
    KnnRecord k;
    k.epoch = 0;
    k.top1 = 71.25;
    m.write(k);
    FinetuneRecord f;
    f.epoch = 2;
    f.acc1 = 88.5;
    m.write(f);
  }
  std::string file;
  for (const auto& e : test::fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) {
      file = e.path().string();
    }
  }
  ASSERT_FALSE(file.empty());
  const auto out = (dir / "scalars.json").string();
  ASSERT_EQ(test::run_command(test::python() + " '" +
                                  test::python_script("read_tfevents.py") + "' '" +
                                  file + "' '" + out + "'",
                              (dir / "py.log").string()),
            0)
      << test::read_text(dir / "py.log");
  const auto scalars = nlohmann::json::parse(test::read_text(out));
  auto find = [&](const std::string& tag) {
    for (const auto& s : scalars) {
      if (s[0] == tag) return s;
    }
    ADD_FAILURE() << tag << " not in " << scalars.dump();
    return nlohmann::json::array({"", 0, 0.0});
  };
  EXPECT_EQ(find("train/loss")[1], 20);
  EXPECT_FLOAT_EQ(find("train/loss")[2].get<float>(), 6.5f);
  EXPECT_FLOAT_EQ(find("train/lr")[2].get<float>(), 0.03f);
  EXPECT_EQ(find("knn/top1")[1], 1);  // after epoch 1
  EXPECT_FLOAT_EQ(find("knn/top1")[2].get<float>(), 71.25f);
  EXPECT_EQ(find("finetune/acc1")[1], 3);
  EXPECT_EQ(scalars.size(), 5u + 2u + 5u);
}

}  // namespace
}  // namespace moco::io
