// The moco binary as a user runs it.
#include "cli/commands.h"

#include <nlohmann/json.hpp>

#include <sstream>

#include "../support.h"
#include "../data/image_fixtures.h"
#include "data/image_decode.h"
#include "data/preview.h"
#include "data/dataset.h"
#include "data/shards.h"
#include "train/pretrain.h"

namespace moco::cli {

namespace {

namespace fs = test::fs;


test::CommandResult moco(const std::string& args, const fs::path& dir) {
  return test::run_moco(args, dir);
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
  auto r4 = moco("knn --log-format yaml", dir);
  EXPECT_NE(r4.rc, 0);
  EXPECT_NE(r4.out.find("expected --log-format one of text, json, got 'yaml'"), std::string::npos)
      << r4.out;
  // In JSON mode the error is a JSON line too.
  auto r5 = moco("pretrian --log-format=json", dir);
  EXPECT_NE(r5.rc, 0);
  const auto e = nlohmann::json::parse(r5.out);
  EXPECT_EQ(e["level"], "error");
  EXPECT_NE(e["message"].get<std::string>().find("did you mean pretrain"), std::string::npos);
}

TEST(Cli, OutOfRangeValuesExitNonZeroNamingTheFlag) {
  auto dir = test::scratch_dir("range");
  test::write_idx_dataset(dir, 32, 12, 4);
  for (const char* args :
       {"--moco-k 0", "--moco-m 1", "--moco-t 0", "--batch-size 64",
        "--moco-m -0.5", "--threads 100000", "--workers 5000", "--moco-t inf",
        "--blur maybe", "--knn-bank -5", "--dist-timeout inf",
        "--nproc-per-node -2", "--max-image-pixels -1"}) {
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
  train::apply_preset("quick", {"lr"}, o.lr(0.5));
  EXPECT_EQ(o.arch(), "resnet18");
  EXPECT_EQ(o.moco_k(), 4096);
  EXPECT_EQ(o.lr(), 0.5);
  train::PretrainOptions v2;
  train::apply_preset("v2", {}, v2);
  EXPECT_TRUE(v2.mlp());
  EXPECT_TRUE(v2.aug_plus());
  EXPECT_TRUE(v2.cos());
  EXPECT_DOUBLE_EQ(v2.moco_t(), 0.2);
  EXPECT_EQ(v2.arch(), "resnet50");
  EXPECT_THROW(train::apply_preset("bogus", {}, v2), c10::Error);
}

TEST(Cli, TinyRunEndToEnd) {
  auto dir = test::scratch_dir("e2e");
  test::write_idx_dataset(dir, 64, 12, 4);
  auto r = moco("pretrain '" + dir.string() + "' --preset quick --width 8 "
                "-b 16 --bn-splits 4 --moco-k 32 --epochs 1 --threads 1 "
                "-j 1 --knn-bank 0 --knn-test 0 --log-format json --output '" +
                    (dir / "run").string() + "'",
                dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  // --log-format json: every line one object with time, level and message.
  std::istringstream lines(r.out);
  int64_t n = 0;
  bool final_line = false;
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);  // throws on a text line
    EXPECT_GT(j.at("time").get<double>(), 1.7e9) << line;
    EXPECT_TRUE(j.at("level") == "info" || j.at("level") == "warn") << line;
    final_line |= j.at("message").get<std::string>().rfind("final kNN top-1", 0) == 0;
    ++n;
  }
  EXPECT_GT(n, 5);
  EXPECT_TRUE(final_line) << r.out;
  const auto run = dir / "run";
  EXPECT_TRUE(test::fs::exists(run / "checkpoint.pth.tar"));
  EXPECT_TRUE(test::fs::exists(run / "metrics.jsonl"));
  // The pictures of the run, shown by its report: the augmentation of 8
  // images (two rows of 12 px views), the neighbour grid of 8 test images
  // and their 8 neighbours (12 px enlarged 6x to 72, framed: 78 px boxes),
  // the 2-D embedding of the 32 test images.
  const auto aug = data::decode_image(data::read_file((run / "preview-aug.png").string()), "aug");
  EXPECT_EQ(aug.height, 2 * 12 + data::kGridGap);
  EXPECT_EQ(aug.width, 8 * 12 + 7 * data::kGridGap);
  const auto nn = data::decode_image(data::read_file((run / "neighbours.png").string()), "nn");
  EXPECT_EQ(nn.height, 8 * 78 + 7 * 4);
  EXPECT_EQ(nn.width, 78 + 16 + 8 * 78 + 7 * 4);
  const auto e = nlohmann::json::parse(test::read_text(run / "embedding.json"));
  EXPECT_EQ(e["points"].size(), 32u);
  EXPECT_EQ(e["classes"].size(), 4u);
  auto report = moco("report '" + run.string() + "'", dir);
  ASSERT_EQ(report.rc, 0) << report.out;
  const auto html = test::read_text(run / "report.html");
  for (const char* id : {"id=\"augmentation\"", "id=\"neighbours\"", "id=\"embedding\""}) {
    EXPECT_NE(html.find(id), std::string::npos) << id;
  }
}

TEST(Cli, MixedPrecisionChannelsLastRunTrainsAndResumes) {
  auto dir = test::scratch_dir("amp");
  test::write_idx_dataset(dir, 64, 12, 4);
  const std::string common = "pretrain '" + dir.string() +
                             "' --preset quick --width 8 -b 16 --bn-splits 4 "
                             "--moco-k 32 --threads 1 -j 1 --knn-bank 0 "
                             "--knn-test 0 --amp bf16 --channels-last --output '" +
                             (dir / "run").string() + "'";
  auto r = moco(common + " --epochs 1", dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("bf16 autocast, channels-last"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("final kNN top-1"), std::string::npos) << r.out;
  // The checkpoint holds fp32 weights in the usual layout, and resumes.
  auto ckpt = io::load_pickle((dir / "run" / "checkpoint.pth.tar").string());
  auto sd = io::dict_get(ckpt, "state_dict", "ckpt").toGenericDict();
  auto w = sd.at(c10::IValue("module.encoder_q.conv1.weight")).toTensor();
  EXPECT_EQ(w.scalar_type(), torch::kFloat32);
  r = moco(common + " --epochs 2 --resume '" +
               (dir / "run" / "checkpoint.pth.tar").string() + "'",
           dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("epoch 2/2 done"), std::string::npos) << r.out;
}

TEST(Cli, Fp16OnTheCpuFailsNamingTheFlag) {
  auto dir = test::scratch_dir("fp16");
  test::write_idx_dataset(dir, 64, 12, 4);
  auto r = moco("pretrain '" + dir.string() + "' --preset quick --width 8 -b 16 "
                "--bn-splits 4 --moco-k 32 --amp fp16 --output '" +
                    (dir / "run").string() + "'",
                dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--amp fp16 needs a CUDA device"), std::string::npos) << r.out;
  EXPECT_FALSE(test::fs::exists(dir / "run" / "checkpoint.pth.tar"));
}

namespace {

// DIR/train/{a,b}/ and DIR/val/{a,b}/ with small JPEGs and PNGs, and one
// truncated JPEG in train/a.
void photo_folder(const test::fs::path& dir) {
  for (const char* split : {"train", "val"}) {
    for (const char* cls : {"a", "b"}) {
      const auto d = dir / split / cls;
      test::fs::create_directories(d);
      for (int i = 0; i < 8; ++i) {
        const unsigned seed = (cls[0] == 'a' ? 0 : 100) + i;
        if (i % 2) {
          test::small_png(d / ("p" + std::to_string(i) + ".png"), 40, 48, seed);
        } else {
          test::small_jpeg(d / ("j" + std::to_string(i) + ".JPEG"), 60, 50, seed);
        }
      }
    }
  }
  test::truncate_copy(dir / "train" / "a" / "j0.JPEG",
                      dir / "train" / "a" / "broken.jpg", 300);
}

const char* kTinyImageRun =
    " --width 8 --crop-size 32 -b 8 --bn-splits 2 --moco-k 16 --epochs 1 "
    "--threads 1 -j 2 --aug-plus --knn-k 5 --output ";

}  // namespace

TEST(Cli, ImageFolderRunSkipsTheBrokenFileAndScoresKnnOnVal) {
  auto dir = test::scratch_dir("photos");
  photo_folder(dir / "data");
  auto r = moco("pretrain '" + (dir / "data").string() + "' -a resnet18" +
                    kTinyImageRun + "'" + (dir / "run").string() + "'",
                dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("ImageFolder"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("17 images, 2 classes (JPEG 9, PNG 8)"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("skipping unreadable image"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("broken.jpg"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("waiting for data"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("final kNN top-1"), std::string::npos) << r.out;
  EXPECT_TRUE(test::fs::exists(dir / "run" / "checkpoint.pth.tar"));
}

TEST(Cli, StrictDataStopsAtTheBrokenFileNamingIt) {
  auto dir = test::scratch_dir("strict");
  photo_folder(dir / "data");
  auto r = moco("pretrain '" + (dir / "data").string() +
                    "' -a resnet18 --strict-data" + kTinyImageRun + "'" +
                    (dir / "run").string() + "'",
                dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("--strict-data"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find((dir / "data" / "train" / "a" / "broken.jpg").string()),
            std::string::npos) << r.out;
  EXPECT_FALSE(test::fs::exists(dir / "run" / "checkpoint.pth.tar"));
}

TEST(Cli, FolderWithoutImagesFailsBeforeTraining) {
  auto dir = test::scratch_dir("noimg");
  test::fs::create_directories(dir / "data" / "sub");
  test::write_file(dir / "data" / "sub" / "x.txt", "x");
  auto r = moco("pretrain '" + (dir / "data").string() + "' --output '" +
                    (dir / "run").string() + "'",
                dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("no images"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find((dir / "data").string()), std::string::npos) << r.out;
  auto bad = moco("pretrain --channels 2", dir);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("--channels"), std::string::npos) << bad.out;
}

TEST(Cli, BenchDataReportsOneCoreAllWorkersAndWaitShare) {
  auto dir = test::scratch_dir("bench");
  photo_folder(dir / "data");
  auto r = moco("bench-data '" + (dir / "data").string() +
                    "' -j 2 -b 4 --crop-size 32 --step-ms 20",
                dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("1 core (on the calling thread):"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("2 workers:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("images/s"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("waiting for data"), std::string::npos) << r.out;
}

// A checkpoint's values are checked before use: an epoch of -5 once trained
// and logged "knn epoch -5", 10^6 exited 0 without training, a float epoch
// gave "isInt() INTERNAL ASSERT FAILED", NaN weights a silent 8.8% kNN.
TEST(Cli, ResumedCheckpointValuesAreChecked) {
  auto dir = test::scratch_dir("ckvalues");
  test::write_idx_dataset(dir, 64, 12, 4);
  const std::string run = (dir / "run").string();
  auto r = moco("pretrain '" + dir.string() +
                    "' --preset quick --width 8 -b 16 "
                    "--bn-splits 4 --moco-k 32 --epochs 1 --threads 1 -j 1 "
                    "--knn-bank 0 --knn-test 0 --output '" +
                    run + "'",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto good = (dir / "run" / "checkpoint.pth.tar").string();
  auto with = [&](const std::string& name, auto change) {
    auto ckpt = io::load_pickle(good).toGenericDict();
    change(ckpt);
    const auto path = (dir / name).string();
    io::save_pickle(path, ckpt);
    return path;
  };
  auto weights = [](c10::impl::GenericDict& ck) {
    return ck.at(c10::IValue("state_dict")).toGenericDict();
  };
  struct Case {
    std::string path, says;
  };
  const std::vector<Case> cases = {
      {with("neg.pth",
            [](auto& ck) { ck.insert_or_assign("epoch", int64_t{-5}); }),
       "expected 'epoch' in [0, "},
      {with("big.pth",
            [](auto& ck) { ck.insert_or_assign("epoch", int64_t{1000000}); }),
       "has trained 1000000 epochs, more than this run's --epochs 2"},
      {with("float.pth", [](auto& ck) { ck.insert_or_assign("epoch", 1.5); }),
       "expected 'epoch' to be an integer, got Double"},
      {with("step.pth",
            [](auto& ck) { ck.insert_or_assign("global_step", int64_t{-1}); }),
       "expected 'global_step' in [0, "},
      {with("nan.pth",
            [&](auto& ck) {
              weights(ck)
                  .at(c10::IValue("module.encoder_q.conv1.weight"))
                  .toTensor()
                  .fill_(std::nan(""));
            }),
       "hold NaN or infinity (first: 'module.encoder_q.conv1.weight')"},
      {with("ptr.pth",
            [&](auto& ck) {
              weights(ck)
                  .at(c10::IValue("module.queue_ptr"))
                  .toTensor()
                  .fill_(999);
            }),
       "queue pointer 999 is outside the queue of 32 keys"},
      {with("opts.pth", [](auto& ck) {
         auto j = nlohmann::json::parse(ck.at(c10::IValue("moco_options")).toStringRef());
         j["moco_t"] = -1.0;
         ck.insert_or_assign("moco_options", j.dump());
       }),
       "its saved options are wrong: expected --moco-t > 0, got -1"},
  };
  for (const auto& c : cases) {
    r = moco("pretrain '" + dir.string() + "' --epochs 2 --resume '" + c.path +
                 "' --output '" + (dir / "resumed").string() + "'",
             dir);
    EXPECT_EQ(r.rc, 1) << c.path << "\n" << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << c.path << "\n" << r.out;
    EXPECT_NE(r.out.find(c.path), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("INTERNAL ASSERT"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "resumed" / "checkpoint.pth.tar")) << c.path;
  }
  // Evaluation commands warn about NaN weights.
  r = moco("knn '" + dir.string() + "' --pretrained '" + cases[4].path +
               "' --threads 1 --knn-k 5",
           dir);
  EXPECT_NE(r.out.find("hold NaN or infinity"), std::string::npos) << r.out;
  // A finished run resumed: nothing to train, its numbers again.
  r = moco("pretrain '" + dir.string() + "' --resume '" + good + "'", dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("nothing to train"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("final kNN top-1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("checkpoint: " + good), std::string::npos) << r.out;
}

// SIGTERM/SIGINT: a line says so, the exit status says which signal, and no
// half-written file is left (the signal lands at random moments, checkpoint
// writes included: each run below saves every epoch of a few steps).
TEST(Cli, SignalsAreLoggedAndLeaveNoPartialFile) {
  auto dir = test::scratch_dir("signals");
  test::write_idx_dataset(dir, 64, 12, 4);
  // set -m: the job gets its own process group, and SIGINT is not ignored
  // as it is for a script's background jobs.
  const std::string script = R"(
    set -m
    moco=$1 data=$2 out=$3 sig=$4 delay=$5
    "$moco" pretrain "$data" --preset quick --width 8 -b 16 --bn-splits 4 \
      --moco-k 32 --epochs 1000 --threads 1 -j 1 --knn-freq 0 --knn-bank 0 \
      --knn-test 0 --knn-init=false --knn-pixels=false --output "$out" > "$out.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 3000); do [ -e "$out/checkpoint.pth.tar" ] && break; sleep 0.1; done
    sleep "$delay"
    kill -s "$sig" $pid
    wait $pid
    echo "rc=$?"
    ls "$out"
  )";
  test::write_file(dir / "sig.sh", script);
  int i = 0;
  for (const char* sig : {"TERM", "INT", "TERM", "TERM", "INT"}) {
    const auto out = (dir / ("run" + std::to_string(i))).string();
    const std::string delay = std::to_string(0.037 * i * i);
    auto r = test::run_capture("bash '" + (dir / "sig.sh").string() + "' '" +
                                   test::moco_binary() + "' '" + dir.string() +
                                   "' '" + out + "' " + sig + " " + delay,
                               dir);
    const auto log = test::read_text(out + ".log");
    EXPECT_NE(r.out.find(std::string("rc=") +
                         (sig == std::string("TERM") ? "143" : "130")),
              std::string::npos)
        << r.out << log;
    EXPECT_NE(log.find(sig == std::string("TERM") ? "received SIGTERM"
                                                  : "interrupted (SIGINT)"),
              std::string::npos)
        << log;
    EXPECT_EQ(r.out.find(".tmp"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("checkpoint.pth.tar"), std::string::npos) << r.out;
    // What is left reads back.
    EXPECT_NO_THROW(io::load_pickle(out + "/checkpoint.pth.tar")) << out;
    ++i;
  }
}

}  // namespace moco::cli
namespace moco::cli {
namespace {

// A tiny Fashion-MNIST-like run: 64 images of 12 px, 8 steps an epoch.
const char* kResumable =
    " --preset none -a resnet18 --width 8 -b 8 --bn-splits 2 --moco-k 16 "
    "--moco-dim 16 --lr 0.05 --cos --threads 1 -j 1 "
    "--knn-freq 0 --knn-k 5 --no-progress --seed 5 ";

std::map<std::string, torch::Tensor> weights_of(const std::string& ckpt) {
  std::map<std::string, torch::Tensor> out;
  auto sd = io::dict_get(io::load_pickle(ckpt), "state_dict", ckpt);
  for (const auto& e : sd.toGenericDict()) out[e.key().toStringRef()] = e.value().toTensor();
  return out;
}

}  // namespace

TEST(Cli, SmallImageFilesGetTheirOwnCropAndTheSmallStem) {
  auto dir = test::scratch_dir("small_files");
  fs::create_directories(dir / "data");
  for (int i = 0; i < 12; ++i) {
    test::small_png(dir / "data" / ("p" + std::to_string(i) + ".png"), 32, 32, i);
  }
  auto r = moco("pretrain '" + (dir / "data").string() +
                    "' -a resnet18 --width 8 -b 4 --bn-splits 2 --moco-k 8 "
                    "--epochs 1 --threads 1 -j 1 --no-progress -o '" +
                    (dir / "run").string() + "'",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("chosen from the data: crop 32 (the images are 32 px, "
                       "median of sampled headers), small-image stem (crop 32 px)"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resnet18 (small-image stem) width 8, crop 32"),
            std::string::npos) << r.out;
  // A run of a few steps is said, and below a queue larger than the data.
  EXPECT_NE(r.out.find("3 optimizer steps in all"), std::string::npos) << r.out;
  r = moco("pretrain '" + (dir / "data").string() +
               "' -a resnet18 --width 8 -b 4 --bn-splits 2 --moco-k 64 --crop-size 48 "
               "--epochs 1 --threads 1 -j 1 --no-progress -o '" +
               (dir / "run2").string() + "'",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("small-image stem (crop 48 px)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--moco-k 64 is larger than the 12 training images"),
            std::string::npos) << r.out;
}

TEST(Cli, ResumeTakesTheRunsFlagsAndRefusesChangedOnes) {
  auto dir = test::scratch_dir("resume_flags");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 64, 12, 4);
  const auto data = (dir / "data").string();
  const auto run = (dir / "run").string();
  auto r = moco("pretrain '" + data + "'" + kResumable +
                    "--epochs 50 --max-steps 3 -o '" + run + "'",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto ckpt = run + "/checkpoint.pth.tar";
  // Nothing but --resume: the run's flags and folder.
  r = moco("pretrain --resume '" + ckpt + "' --max-steps 5", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from " + ckpt + " at epoch 1, step 4 of 8"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("width 8"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(dir / "runs"));
  // Another --lr is refused naming it; --epochs may change.
  r = moco("pretrain --resume '" + ckpt + "' --lr 0.5 --epochs 60 --max-steps 6", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("--lr (0.05 -> 0.5) differs from the run's flags"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--override"), std::string::npos) << r.out;
  r = moco("pretrain --resume '" + ckpt + "' --lr 0.5 --epochs 60 --max-steps 6 --override",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--epochs (50 -> 60), --lr (0.05 -> 0.5)"), std::string::npos)
      << r.out;
  const auto metrics = test::read_text(run + "/metrics.jsonl");
  EXPECT_NE(metrics.find("\"resume_changes\":[\"--epochs (50 -> 60)\",\"--lr (0.05 -> 0.5)\"]"),
            std::string::npos) << metrics;
  // A start that fails leaves no folder behind.
  r = moco("pretrain '" + (dir / "missing").string() + "'" + kResumable + "--epochs 2 -o '" +
               (dir / "failed").string() + "'",
           dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_FALSE(fs::exists(dir / "failed"));
}

TEST(Cli, InterruptedMidEpochThenResumedEqualsAnUninterruptedRun) {
  auto dir = test::scratch_dir("interrupt");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 64, 12, 4);
  const auto data = (dir / "data").string();
  auto r = moco("pretrain '" + data + "'" + kResumable + "--epochs 50 --max-steps 40 -o '" +
                    (dir / "whole").string() + "'",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  // SIGINT once the first mid-epoch checkpoint (step 3) is written: the step
  // in flight finishes, a checkpoint is saved, the exit says how to resume.
  const std::string script = R"(
    set -m
    moco=$1 data=$2 out=$3
    shift 3
    "$moco" pretrain "$data" "$@" --save-freq 3 -o "$out" > "$out.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 30000); do [ -e "$out/checkpoint.pth.tar" ] && break; sleep 0.01; done
    kill -s INT $pid
    wait $pid
    echo "rc=$?"
  )";
  test::write_file(dir / "int.sh", script);
  const auto part = (dir / "part").string();
  r = test::run_capture("bash '" + (dir / "int.sh").string() + "' '" +
                            test::moco_binary() + "' '" + data + "' '" + part + "'" +
                            kResumable + "--epochs 50 --max-steps 40",
                        dir);
  const auto log = test::read_text(part + ".log");
  ASSERT_NE(r.out.find("rc=130"), std::string::npos) << r.out << log;
  EXPECT_NE(log.find("finishing this step and saving a checkpoint"), std::string::npos)
      << log;
  EXPECT_NE(log.find("Continue with: moco pretrain --resume " + part +
                     "/checkpoint.pth.tar"),
            std::string::npos) << log;
  // The same threads: another count sums in another order (the flag is the
  // machine's, not the run's, and is not restored).
  r = moco("pretrain --resume '" + part + "/checkpoint.pth.tar' --max-steps 40 "
           "--threads 1 -j 1",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto a = weights_of((dir / "whole" / "checkpoint.pth.tar").string());
  const auto b = weights_of(part + "/checkpoint.pth.tar");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(v.equal(b.at(k))) << k;
}

TEST(Cli, ALiveRunLocksItsFolderAndAStaleLockIsTakenOver) {
  auto dir = test::scratch_dir("lock");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 64, 12, 4);
  const auto out = (dir / "run").string();
  const std::string script = R"(
    moco=$1 data=$2 out=$3
    shift 3
    "$moco" pretrain "$data" "$@" --epochs 100000 -o "$out" > "$out.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 6000); do [ -e "$out/checkpoint.pth.tar" ] && break; sleep 0.05; done
    "$moco" pretrain --resume "$out/checkpoint.pth.tar" --epochs 100000 > "$out.second.log" 2>&1
    echo "second rc=$?"
    kill -9 $pid
    wait $pid
    cat "$out/moco.lock"
  )";
  test::write_file(dir / "lock.sh", script);
  auto r = test::run_capture("bash '" + (dir / "lock.sh").string() + "' '" +
                                 test::moco_binary() + "' '" + (dir / "data").string() +
                                 "' '" + out + "'" + kResumable,
                             dir);
  const auto second = test::read_text(out + ".second.log");
  EXPECT_NE(r.out.find("second rc=1"), std::string::npos) << r.out << second;
  EXPECT_NE(second.find("is in use by another moco run (pid "), std::string::npos)
      << second;
  EXPECT_NE(r.out.find("pid "), std::string::npos) << r.out;  // left by kill -9
  auto r2 = moco("pretrain --resume '" + out + "/checkpoint.pth.tar' --epochs 100000 "
                 "--max-steps 1",
                 dir);
  EXPECT_EQ(r2.rc, 0) << r2.out;
  EXPECT_NE(r2.out.find("taking over the lock of a run that is gone"), std::string::npos)
      << r2.out;
  EXPECT_FALSE(fs::exists(out + "/moco.lock"));
}

TEST(Cli, PlantedLinksInTheOutputAreNeverWrittenThrough) {
  auto dir = test::scratch_dir("links");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 32, 8, 4);
  const auto outside = dir / "outside.txt";
  test::write_file(outside, "keep me\n");
  const auto run = [&](const fs::path& out) {
    return moco("pretrain '" + (dir / "data").string() + "' -a resnet18 --width 8 --max-steps 2" +
                    test::kTinyRun + "'" + out.string() + "'",
                dir);
  };
  // A lock file that is a link: refused, the file it points to untouched.
  fs::create_directories(dir / "a");
  fs::create_symlink(outside, dir / "a" / "moco.lock");
  auto r = run(dir / "a");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("moco.lock is a symbolic link"), std::string::npos) << r.out;
  EXPECT_EQ(test::read_text(outside), "keep me\n");
  // metrics.jsonl as a link: refused too.
  fs::create_directories(dir / "m");
  fs::create_symlink(outside, dir / "m" / "metrics.jsonl");
  r = run(dir / "m");
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("metrics.jsonl is a symbolic link"), std::string::npos) << r.out;
  EXPECT_EQ(test::read_text(outside), "keep me\n");
  // The checkpoint's temporary name as a link: the link goes, the
  // checkpoint is written as a file of its own.
  fs::create_directories(dir / "t");
  fs::create_symlink(outside, dir / "t" / "checkpoint.pth.tar.tmp");
  r = run(dir / "t");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(test::read_text(outside), "keep me\n");
  EXPECT_TRUE(fs::is_regular_file(fs::symlink_status(dir / "t" / "checkpoint.pth.tar")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(dir / "t" / "checkpoint.pth.tar.tmp")));
  // A stale lock that moco did not write: nothing of it reaches the log.
  fs::create_directories(dir / "s");
  test::write_file(dir / "s" / "moco.lock", "\x1b]0;pwned\x07\x1b[2J rm -rf ~\n");
  r = run(dir / "s");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("a lock file moco did not write"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("pwned"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;

  // moco export never writes over what it exports, nor over a file
  // without --force; its .safetensors reads back as --pretrained, its .pkl
  // is refused saying why.
  const auto ckpt = (dir / "t" / "checkpoint.pth.tar").string();
  const auto before = test::read_text(ckpt);
  r = moco("export '" + ckpt + "' '" + ckpt + "' --format torchvision", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("is the checkpoint it exports"), std::string::npos) << r.out;
  fs::create_symlink(ckpt, dir / "alias.pth");  // the same file by another name
  r = moco("export '" + ckpt + "' '" + (dir / "alias.pth").string() + "' --force", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("is the checkpoint it exports"), std::string::npos) << r.out;
  EXPECT_EQ(test::read_text(ckpt), before);
  const auto pth = (dir / "r18.pth").string();
  ASSERT_EQ(moco("export '" + ckpt + "' '" + pth + "'", dir).rc, 0);
  test::write_file(pth, "mine");
  r = moco("export '" + ckpt + "' '" + pth + "'", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("r18.pth exists; pass --force"), std::string::npos) << r.out;
  EXPECT_EQ(test::read_text(pth), "mine");
  EXPECT_EQ(moco("export '" + ckpt + "' '" + pth + "' --force", dir).rc, 0);
  EXPECT_NE(test::read_text(pth), "mine");
  const auto st = (dir / "r18.safetensors").string();
  ASSERT_EQ(moco("export '" + ckpt + "' '" + st + "'", dir).rc, 0);
  r = moco("inspect '" + st + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("network: resnet18 (small-image stem), width 8, 1 channel"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find(": a state dict (torchvision's, or a moco export)"), std::string::npos)
      << r.out;
  r = moco("knn '" + (dir / "data").string() + "' --pretrained '" + st + "' --threads 2 -j 1",
           dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  const auto pkl = (dir / "r18.pkl").string();
  ASSERT_EQ(moco("export '" + ckpt + "' '" + pkl + "'", dir).rc, 0);
  r = moco("inspect '" + pkl + "'", dir);
  EXPECT_EQ(r.rc, 1) << r.out;
  EXPECT_NE(r.out.find("detectron2 export (.pkl), which moco does not read back"),
            std::string::npos) << r.out;
}

TEST(Cli, EvaluationNeedsDataAndMistypedCommandsGetASuggestion) {
  auto dir = test::scratch_dir("suggest");
  for (const char* cmd : {"knn --pretrained x.pth", "lincls --pretrained x.pth",
                          "embed --pretrained x.pth"}) {
    const auto r = moco(cmd, dir);
    EXPECT_NE(r.rc, 0) << cmd;
    EXPECT_NE(r.out.find("--data is required"), std::string::npos) << cmd << r.out;
  }
  const auto r = moco("pretrian --epochs 1", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("unknown command 'pretrian' (did you mean pretrain?)"),
            std::string::npos) << r.out;
}

TEST(Cli, LinclsWarnsWhenTheLossExplodesAndValSplitHoldsOutImages) {
  auto dir = test::scratch_dir("lincls_warn");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 64, 12, 4);
  const auto data = (dir / "data").string();
  auto r = moco("pretrain '" + data + "'" + kResumable + "--epochs 50 --max-steps 2 -o '" +
                    (dir / "run").string() + "'",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto ckpt = (dir / "run" / "checkpoint.pth.tar").string();
  r = moco("lincls '" + data + "' --pretrained '" + ckpt +
               "' --lr 30000 --epochs 2 -b 16 --threads 1 -j 1 --no-progress -o '" +
               (dir / "lin").string() + "'",
           dir);
  EXPECT_NE(r.out.find("lincls: the loss"), std::string::npos) << r.out;
  // The advice is below the rate in use.
  EXPECT_NE(r.out.find("--lr 30000 is too high for these features; try --lr 3000 or 300"),
            std::string::npos)
      << r.out;
  // finetune warns too when its loss runs above twice a uniform guess's.
  r = moco("finetune '" + data + "' --pretrained '" + ckpt +
               "' --lr 3 --epochs 2 -b 16 --threads 1 -j 1 --no-progress -o '" +
               (dir / "ft").string() + "'",
           dir);
  EXPECT_NE(r.out.find("finetune: the loss"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--lr 3 (head 30) is too high for these features; try --lr 0.3 or "
                       "0.03"),
            std::string::npos)
      << r.out;
  // Each kind of checkpoint given to the wrong command is named, with the
  // command and flag that take it; a run's folder stands for its checkpoint.
  const auto lin = (dir / "lin" / "checkpoint.pth.tar").string();
  const auto ft = (dir / "ft" / "checkpoint.pth.tar").string();
  struct Case {
    std::string args, want;
  };
  for (const Case& c : std::vector<Case>{
           {"pretrain --resume '" + ft + "'",
            "is a fine-tuned classifier (moco finetune); pretrain --resume continues a "
            "pretraining run"},
           {"finetune '" + data + "' --resume '" + lin + "'",
            "is a linear classifier (moco lincls, main_lincls.py); finetune --resume continues"},
           {"lincls '" + data + "' --resume '" + ckpt + "'",
            "is a MoCo v1 pretraining checkpoint (moco pretrain); lincls --resume continues a "
            "linear classifier (pretrain --resume continues it; lincls, finetune, knn, embed "
            "and export take it as --pretrained)"}}) {
    r = moco(c.args + " --threads 1 -j 1 --no-progress", dir);
    EXPECT_NE(r.rc, 0) << c.args;
    EXPECT_NE(r.out.find(c.want), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("fashion-mnist"), std::string::npos) << r.out;
  }
  r = moco("lincls '" + data + "' -e --resume '" + (dir / "lin").string() +
               "' --threads 1 -j 1 --no-progress",
           dir);
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("its checkpoint " + lin), std::string::npos) << r.out;
  // The list of image files with labels, without a test split: --val-split.
  std::string list;
  fs::create_directories(dir / "imgs");
  for (int i = 0; i < 16; ++i) {
    const auto p = dir / "imgs" / ("i" + std::to_string(i) + ".png");
    test::small_png(p, 12, 12, i);
    list += p.string() + " " + std::to_string(i % 2) + "\n";
  }
  test::write_file(dir / "list.txt", list);
  r = moco("lincls '" + (dir / "list.txt").string() + "' --pretrained '" + ckpt +
               "' --channels 1 --val-split 0.25 --lr 1 --epochs 1 -b 4 --threads 1 -j 1 "
               "--no-progress -o '" + (dir / "lin2").string() + "'",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("(12) / "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("4 held out) (4)"), std::string::npos) << r.out;
  r = moco("knn '" + (dir / "list.txt").string() + "' --pretrained '" + ckpt +
               "' --channels 1 --val-split 0.25 --knn-k 3 --threads 1",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("(bank 12, test 4)"), std::string::npos) << r.out;
}

}  // namespace moco::cli

namespace moco::cli {

TEST(Cli, ShardsWrittenByMocoShardTrainAndResumeExactly) {
  auto dir = test::scratch_dir("shards");
  // Image files keep their bytes: a photo folder's JPEGs and PNGs, and the
  // broken one is left out with a warning.
  photo_folder(dir / "photos");
  auto r = moco("shard '" + (dir / "photos").string() + "' '" + (dir / "ps").string() +
                    "' --shard-size 4",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("wrote 16 samples (16 labelled, 1 unreadable skipped) in 4 shards"),
            std::string::npos) << r.out;
  // Printed quoted, so that it pastes into a shell as one word.
  EXPECT_NE(r.out.find("'" + (dir / "ps" / "train-{000000..000003}.tar").string() + "'"),
            std::string::npos)
      << r.out;
  const auto photos = data::open_dataset((dir / "photos").string()).train;
  std::map<std::string, std::vector<uint8_t>> originals;
  for (const auto& f : photos.files) originals[f] = data::read_file(f);
  int64_t same = 0;
  for (const auto& e : fs::directory_iterator(dir / "ps")) {
    data::ShardReader reader(e.path().string());
    data::ShardSample s;
    while (reader.next(s)) {
      const auto& f = photos.files[static_cast<size_t>(std::stoll(s.key))];
      EXPECT_EQ(s.image, originals[f]) << s.name() << " vs " << f;
      EXPECT_EQ(s.label, photos.labels[std::stoll(s.key)].item<int64_t>());
      same += s.image == originals[f];
    }
  }
  EXPECT_EQ(same, 16);
  // bench-data reads them back: every image decoded, labels with them.
  r = moco("bench-data '" + (dir / "ps").string() + "' --crop-size 32 -b 4 -j 2", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("16 samples in 4 shards"), std::string::npos) << r.out;
  // Evaluation commands pick images by index: refused, naming what works.
  r = moco("knn '" + (dir / "ps").string() + "' --pretrained x.pth", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("streamed, not indexed"), std::string::npos) << r.out;
  r = moco("pretrain '" + (dir / "ps" / "train-{000003..000001}.tar").string() + "'", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("counts down"), std::string::npos) << r.out;

  // IDX images become PNG shards; pretraining streams them, and a run
  // stopped mid-epoch (step 5 of 12) and resumed ends with the weights of an
  // uninterrupted one.
  fs::create_directories(dir / "idx");
  test::write_idx_dataset(dir / "idx", 96, 12, 4);
  r = moco("shard '" + (dir / "idx").string() + "' '" + (dir / "is").string() +
               "' --shard-size 16",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const std::string shards = (dir / "is" / "train-{000000..000005}.tar").string();
  std::string flags = std::string(kResumable) + "--shuffle-buffer 5 --epochs 3 ";
  flags.replace(flags.find("-j 1"), 4, "-j 2");  // two workers, three shards each
  r = moco("pretrain '" + shards + "'" + flags + "--max-steps 20 -o '" +
               (dir / "whole").string() + "'",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("96 samples in 6 shards"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("12 steps/epoch"), std::string::npos) << r.out;
  r = moco("pretrain '" + shards + "'" + flags + "--max-steps 17 -o '" +
               (dir / "part").string() + "'",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  r = moco("pretrain --resume '" + (dir / "part" / "checkpoint.pth.tar").string() +
               "' --max-steps 20 --threads 1 -j 2",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("at epoch 2, step 6 of 12"), std::string::npos) << r.out;
  const auto a = weights_of((dir / "whole" / "checkpoint.pth.tar").string());
  const auto b = weights_of((dir / "part" / "checkpoint.pth.tar").string());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(v.equal(b.at(k))) << k;

  // A memory bank stores a feature per image by its index, which shards lack.
  r = moco("pretrain '" + shards + "'" + flags + "--mechanism memory-bank -o '" +
               (dir / "bank").string() + "'",
           dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("--mechanism memory-bank keeps one feature per training image"),
            std::string::npos)
      << r.out;
  EXPECT_FALSE(fs::exists(dir / "bank" / "checkpoint.pth.tar"));
}

TEST(Cli, MechanismFlagsThatDoNotFitAreRefusedByName) {
  auto refused = [](std::vector<std::string> words) {
    return test::error_message([&] { parse_pretrain(words); });
  };
  auto e = refused({"--mechanism", "end-to-end", "--moco-k", "1024"});
  EXPECT_NE(e.find("--moco-k"), std::string::npos) << e;
  EXPECT_NE(e.find("K = --batch-size - 1"), std::string::npos) << e;
  e = refused({"--bank-momentum", "0.9"});
  EXPECT_NE(e.find("--bank-momentum is the memory bank's"), std::string::npos) << e;
  e = refused({"--mechanism", "queue"});
  EXPECT_NE(e.find("--mechanism"), std::string::npos) << e;
  // The preset's K is not the user's: end-to-end on the CIFAR preset runs.
  const auto o = parse_pretrain({"--preset", "cifar", "--mechanism", "end-to-end"});
  EXPECT_EQ(o.mechanism(), "end-to-end");
  EXPECT_EQ(parse_pretrain({"--mechanism", "memory-bank", "--bank-momentum", "0.7"})
                .bank_momentum(),
            0.7);
}

}  // namespace moco::cli
