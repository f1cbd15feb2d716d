// The moco binary as a user runs it.
#include "cli/commands.h"

#include "../support.h"
#include "train/pretrain.h"

namespace moco::cli {

namespace {

struct Run {
  int rc;
  std::string out;
};

Run moco(const std::string& args, const test::fs::path& dir) {
  const auto log = (dir / "out.log").string();
  const int rc = test::run_command("'" + test::moco_binary() + "' " + args, log);
  return {rc, test::read_text(log)};
}

}  // namespace

TEST(Cli, HelpListsTheSubcommandAndEveryFlagWithItsDefault) {
  auto dir = test::scratch_dir("help");
  auto top = moco("--help", dir);
  EXPECT_EQ(top.rc, 0);
  EXPECT_NE(top.out.find("pretrain"), std::string::npos);
  auto help = moco("pretrain --help", dir);
  EXPECT_EQ(help.rc, 0) << help.out;
  for (const char* flag :
       {"--arch", "--workers", "--epochs", "--start-epoch", "--batch-size",
        "--lr", "--schedule", "--momentum", "--wd", "--print-freq",
        "--resume", "--seed", "--moco-dim", "--moco-k", "--moco-m",
        "--moco-t", "--mlp", "--aug-plus", "--cos", "--threads",
        "--bn-splits", "--symmetric", "--max-steps", "--output", "--device",
        "--preset", "--knn-k", "--knn-t"}) {
    EXPECT_NE(help.out.find(flag), std::string::npos) << flag;
  }
  // Official defaults shown.
  for (const char* def : {"65536", "0.999", "0.07", "resnet50", "0.03",
                          "120 160", "0.0001"}) {
    EXPECT_NE(help.out.find(def), std::string::npos) << def;
  }
}

TEST(Cli, UnknownOrMalformedFlagsFail) {
  auto dir = test::scratch_dir("bad");
  auto r = moco("pretrain --no-such-flag", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--no-such-flag"), std::string::npos) << r.out;
  auto r2 = moco("pretrain --moco-k lots", dir);
  EXPECT_NE(r2.rc, 0);
  EXPECT_NE(r2.out.find("--moco-k"), std::string::npos) << r2.out;
  auto r3 = moco("", dir);
  EXPECT_NE(r3.rc, 0);
}

TEST(Cli, OutOfRangeValuesExitNonZeroNamingTheFlag) {
  auto dir = test::scratch_dir("range");
  test::write_idx_dataset(dir, 32, 12, 4);
  for (const char* args :
       {"--moco-k 0", "--moco-m 1", "--moco-t 0", "--batch-size 64",
        "--moco-m -0.5"}) {
    auto r = moco("pretrain '" + dir.string() + "' --output '" +
                      (dir / "run").string() + "' " + args,
                  dir);
    EXPECT_EQ(r.rc, 1) << args << "\n" << r.out;
    const std::string flag = std::string(args).substr(0, std::string(args).find(' '));
    EXPECT_NE(r.out.find(flag), std::string::npos) << args << "\n" << r.out;
    EXPECT_EQ(r.out.find("Exception raised from"), std::string::npos)
        << "no C++ backtrace for user errors:\n" << r.out;
  }
}

TEST(Cli, PresetsFillOnlyTheFlagsNotGiven) {
  train::PretrainOptions o;
  apply_preset("quick", {"--lr"}, o.lr(0.5));
  EXPECT_EQ(o.arch(), "resnet18");
  EXPECT_EQ(o.moco_k(), 4096);
  EXPECT_EQ(o.lr(), 0.5);
  train::PretrainOptions v2;
  apply_preset("v2", {}, v2);
  EXPECT_TRUE(v2.mlp());
  EXPECT_TRUE(v2.aug_plus());
  EXPECT_TRUE(v2.cos());
  EXPECT_DOUBLE_EQ(v2.moco_t(), 0.2);
  EXPECT_EQ(v2.arch(), "resnet50");
  EXPECT_THROW(apply_preset("bogus", {}, v2), c10::Error);
}

TEST(Cli, TinyRunEndToEnd) {
  auto dir = test::scratch_dir("e2e");
  test::write_idx_dataset(dir, 64, 12, 4);
  auto r = moco("pretrain '" + dir.string() + "' --preset quick --width 8 "
                "-b 16 --bn-splits 4 --moco-k 32 --epochs 1 --threads 1 "
                "-j 1 --knn-bank 0 --knn-test 0 --output '" +
                    (dir / "run").string() + "'",
                dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("final kNN top-1"), std::string::npos) << r.out;
  EXPECT_TRUE(test::fs::exists(dir / "run" / "checkpoint.pth.tar"));
  EXPECT_TRUE(test::fs::exists(dir / "run" / "metrics.jsonl"));
}

}  // namespace moco::cli
