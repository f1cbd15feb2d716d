// moco sweep as a user runs it: points run once, a killed sweep continues,
// an interrupted point resumes from its checkpoint, bad --set and --point
// stop before anything runs; and a point's metrics read back by hand.
#include "train/sweep.h"

#include <fmt/format.h>

#include "../support.h"
#include "io/metrics.h"
#include "train/runtime.h"

namespace moco::train {
namespace {

namespace fs = test::fs;

std::string tiny_flags(const fs::path& data) {
  return "'" + data.string() +
         "' -a resnet18 --width 8 -b 16 --bn-splits 4 --moco-k 32 --epochs 2 "
         "--threads 1 -j 1 -p 1 --knn-k 5";
}

int count(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = 0; (p = s.find(what, p)) != std::string::npos; p += what.size()) ++n;
  return n;
}

TEST(Sweep, AKilledSweepContinuesAndAnInterruptedPointResumes) {
  auto dir = test::scratch_dir("sweep");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 64, 16, 4);
  const fs::path out = dir / "sw";
  const std::string sweep = "'" + test::moco_binary() +
                            "' sweep --set moco-m=0,0.9,0.99 -o '" + out.string() +
                            "' -- " + tiny_flags(dir / "data");
  // Kill the sweep (SIGKILL: no chance to clean up) once its first point is
  // done; its running point dies with it.
  const auto first = out / "moco_m=0,seed=0" / "point.json";
  auto r = test::run_capture(
      sweep + " > '" + (dir / "first.log").string() + "' 2>&1 & pid=$!; "
      "for i in $(seq 1 6000); do [ -f '" + first.string() + "' ] && break; "
      "sleep 0.05; done; kill -9 $pid; wait $pid; echo killed=$?",
      dir);
  ASSERT_NE(r.out.find("killed=137"), std::string::npos) << r.out;
  ASSERT_TRUE(fs::exists(first));
  EXPECT_FALSE(fs::exists(out / "moco_m=0.99,seed=0" / "point.json"));
  // Simulate a point interrupted after its first epoch: its folder holds a
  // checkpoint and no point.json.
  const fs::path third = out / "moco_m=0.99,seed=0";
  fs::remove_all(third);
  r = test::run_moco("pretrain " + tiny_flags(dir / "data") +
                         " --moco-m 0.99 --seed 0 --max-steps 4 --output '" +
                         third.string() + "'",
                     dir);
  ASSERT_EQ(r.rc, 0) << r.out;

  r = test::run_capture(sweep, dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("already done"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("starting moco_m=0,seed=0"), std::string::npos)
      << "a finished point ran again:\n" << r.out;
  EXPECT_NE(r.out.find("starting moco_m=0.99,seed=0"), std::string::npos) << r.out;
  EXPECT_NE(test::read_text(third / "log.txt").find("resumed from"), std::string::npos);
  // The finished point's run is the first one only.
  EXPECT_EQ(count(test::read_text(out / "moco_m=0,seed=0" / "metrics.jsonl"),
                  "\"kind\":\"config\""),
            1);
  const auto md = test::read_text(out / "sweep.md");
  EXPECT_EQ(count(md, "| done |"), 3) << md;
  EXPECT_NE(md.find("| --moco-m | seed | kNN top-1"), std::string::npos) << md;
  EXPECT_EQ(count(test::read_text(out / "sweep.jsonl"), "\n"), 3);
  const auto svg = test::read_text(out / "sweep.svg");
  EXPECT_NE(svg.find("final kNN top-1"), std::string::npos);
  EXPECT_NE(test::read_text(out / "sweep.html").find("<svg"), std::string::npos);
}

TEST(Sweep, BadSetOrPointFailsBeforeAnythingRuns) {
  auto dir = test::scratch_dir("bad");
  const fs::path out = dir / "sw";
  const std::string sweep = "sweep -o '" + out.string() + "' ";
  struct Bad {
    std::string args, message;
  };
  for (const Bad& b : std::vector<Bad>{
           {"--set moco-m", "expected --set FLAG=V1,V2,..., got 'moco-m'"},
           {"--set moco-kk=1", "no flag --moco-kk (did you mean --moco-k?)"},
           {"--set moco-m=0.5,2", "expected --moco-m in [0, 1), got 2"},
           {"--set moco-m=0.9,", "an empty value"},
           {"--set mlp=maybe", "expected --mlp on or off"},
           {"--set seed=1,2", "use --seeds"},
           {"--set moco-m=0.9 -- --moco-m 0.5", "--moco-m is swept by --set"},
           {"--set bn-splits=3 -- -b 16", "sweep point bn_splits=3,seed=0"},
           {"--set moco-m=0.9,0.9", "--set moco-m=0.9,0.9: 0.9 is given twice"},
           {"--set moco-m=0.9,0.90", "0.9 and 0.90 are the same value"},
           {"--set 'data=fm/x,fm_x'", "would share the folder"},
           {"--point 'v1'", "expected --point NAME=FLAGS"},
           {"--point 'a=--no-such-flag'", "--no-such-flag"},
           {"", "expected --set FLAG=V1,V2,... or --point NAME=FLAGS"}}) {
    auto r = test::run_moco(sweep + b.args, dir);
    EXPECT_NE(r.rc, 0) << b.args;
    EXPECT_NE(r.out.find(b.message), std::string::npos) << b.args << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST(Sweep, PointResultsFromMetricsByHand) {
  auto dir = test::scratch_dir("read");
  const auto path = (dir / "metrics.jsonl").string();
  {
    io::MetricsWriter w(path);
    w.write(io::KnnRecord{-1, 60, 90, 10, 10, 1, "encoder"});
    w.write(io::TrainRecord{0, 1, 7.0, 10, 20, 0.1, 100});
    w.write(io::EpochRecord{0, 7.0, 1, 10, 100, 0, 0, true});
    w.write(io::KnnRecord{0, 70, 95, 10, 10, 1, "encoder"});
    // Epoch 1 interrupted, then repeated after --resume.
    w.write(io::TrainRecord{1, 2, 6.0, 30, 40, 0.05, 100});
    w.write(io::EpochRecord{1, 6.5, 1, 5, 100, 0, 0, false});
    w.write(io::TrainRecord{1, 2, 5.0, 40, 50, 0.05, 100});
    w.write(io::TrainRecord{1, 3, 5.0, 50, 60, 0.05, 100});
    w.write(io::EpochRecord{1, 5.0, 2, 20, 100, 0, 0, true});
    w.write(io::KnnRecord{1, 75, 97, 10, 10, 1, "encoder"});
    w.write(io::KnnRecord{1, 65, 93, 10, 10, 1, "pixels"});
  }
  const auto r = read_point_result(path);
  EXPECT_DOUBLE_EQ(r.knn_top1, 75);
  EXPECT_DOUBLE_EQ(r.knn_top5, 97);
  EXPECT_DOUBLE_EQ(r.pixels_top1, 65);
  EXPECT_EQ(r.epochs, 2);
  EXPECT_DOUBLE_EQ(r.loss, 5.0);
  EXPECT_DOUBLE_EQ(r.train_seconds, 30);       // 10 + 20: a repeated epoch once
  EXPECT_DOUBLE_EQ(r.pretext_acc1, (30 + 40 + 50) / 3.0);  // the last epoch's
  ASSERT_EQ(r.knn_curve.size(), 3u);
  EXPECT_EQ(r.knn_curve[0], (std::pair<int64_t, double>{-1, 60}));
}

TEST(Sweep, OneSweepAFolder) {
  auto dir = test::scratch_dir("locked");
  const fs::path out = dir / "sw";
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 32, 8, 4);
  const OutputLock held(out.string());  // another sweep on the folder
  auto r = test::run_moco("sweep -o '" + out.string() + "' --set moco-m=0.9,0.99 -- " +
                              tiny_flags(dir / "data"),
                          dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("is in use by another moco run"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(out / "sweep.md"));
}

}  // namespace
}  // namespace moco::train
