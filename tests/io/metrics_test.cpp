// metrics.jsonl records written and read by the same definitions.
#include "io/metrics.h"

#include "../support.h"

namespace moco::io {
namespace {

TEST(Metrics, RecordsRoundTripWithKindAndTime) {
  auto dir = test::scratch_dir("m");
  const auto path = (dir / "metrics.jsonl").string();
  {
    MetricsWriter w(path);
    w.write(ConfigRecord{{{"arch", "resnet18"}}, 100, "IDX x"});
    w.write(TrainRecord{0, 10, 7.5, 12.5, 40, 0.06, 300});
    w.write(EpochRecord{0, 7.25, 10, 12.5, 320, 0.01, 2, true});
    w.write(KnnRecord{0, 71.5, 99.1, 1000, 500, 3.5, "encoder"});
    w.write(KnnRecord{0, 77.3, 98.0, 1000, 500, 1.0, "pixels"});
    w.write(LinclsRecord{1, 0.5, 1.25, 80, 99, 4});
    MetricsWriter nothing;  // ranks other than 0
    nothing.write(TrainRecord{});
  }
  test::write_file(dir / "torn", test::read_text(path) + "{\"kind\":\"train\",\"st");
  for (const auto& p : {path, (dir / "torn").string()}) {
    const auto m = read_metrics(p);
    ASSERT_EQ(m.config.size(), 1u);
    EXPECT_EQ(m.config[0].options["arch"], "resnet18");
    ASSERT_EQ(m.train.size(), 1u);
    EXPECT_EQ(m.train[0].step, 10);
    EXPECT_DOUBLE_EQ(m.train[0].acc1, 12.5);
    ASSERT_EQ(m.epochs.size(), 1u);
    EXPECT_EQ(m.epochs[0].skipped_files, 2);
    ASSERT_EQ(m.knn.size(), 2u);
    EXPECT_EQ(m.knn[1].features, "pixels");
    ASSERT_EQ(m.lincls.size(), 1u);
    EXPECT_DOUBLE_EQ(m.lincls[0].acc1, 80);
  }
  const auto text = test::read_text(path);
  EXPECT_NE(text.find("\"kind\":\"knn\""), std::string::npos);
  EXPECT_NE(text.find("\"time\":"), std::string::npos);
}

TEST(Metrics, OlderRecordsWithoutNewFieldsRead) {
  auto dir = test::scratch_dir("old");
  test::write_file(dir / "m.jsonl",
                   "{\"kind\":\"knn\",\"epoch\":-1,\"top1\":68,\"top5\":99}\n");
  const auto m = read_metrics((dir / "m.jsonl").string());
  ASSERT_EQ(m.knn.size(), 1u);
  EXPECT_EQ(m.knn[0].features, "encoder");
  EXPECT_EQ(m.knn[0].epoch, -1);
}

}  // namespace
}  // namespace moco::io
