// moco finetune as a user runs it: label subsets saved and reused, exact
// resume, our, the official and torchvision checkpoints as starting points,
// exports that predict in torchvision as moco does, and bad input named.
#include "train/finetune.h"

#include <fmt/format.h>

#include "../support.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "train/backbone.h"

namespace moco::train {
namespace {

namespace fs = test::fs;

using test::kTinyRun;
constexpr auto moco = test::run_moco;
constexpr const char* kFinetune = " -b 8 --threads 2 -j 1 --no-progress ";

double number_after(const std::string& text, const std::string& key) {
  const auto pos = text.rfind(key);
  EXPECT_NE(pos, std::string::npos) << key << " not in " << text;
  return pos == std::string::npos ? -1 : std::stod(text.substr(pos + key.size()));
}

int64_t data_lines(const fs::path& p) {
  int64_t n = 0;
  std::istringstream in(test::read_text(p));
  for (std::string line; std::getline(in, line);) n += !line.empty() && line[0] != '#';
  return n;
}

TEST(Finetune, LabelSubsetIsSavedReusedAndResumeIsExact) {
  auto dir = test::scratch_dir("finetune");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 64, 16, 4);
  const auto data = (dir / "data").string();
  auto r = moco("pretrain '" + data + "' -a resnet18 --width 8 --max-steps 2" +
                    kTinyRun + "'" + (dir / "run").string() + "'",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto ckpt = (dir / "run" / "checkpoint.pth.tar").string();
  const std::string common = "finetune '" + data + "' --pretrained '" + ckpt +
                             "' --labels-per-class 4 --seed 3" + kFinetune;
  r = moco(common + "--epochs 2 -o '" + (dir / "a").string() + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const double best = number_after(r.out, "best val Acc@1 ");
  EXPECT_NE(r.out.find("16 of 64 labelled images (4 per class, seed 3"),
            std::string::npos) << r.out;
  EXPECT_NE(r.out.find("finetune epoch 2/2"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir / "a" / "model_best.pth.tar"));
  // The subset: 4 of each class, listed in the run's folder.
  ASSERT_EQ(data_lines(dir / "a" / "labels.txt"), 16);
  auto splits = data::open_dataset(data);
  std::map<int64_t, int> per_class;
  {
    std::istringstream in(test::read_text(dir / "a" / "labels.txt"));
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      const int64_t index = std::stoll(line);
      const int64_t label = std::stoll(line.substr(line.find('\t') + 1));
      EXPECT_EQ(splits.train.labels[index].item<int64_t>(), label) << line;
      ++per_class[label];
    }
  }
  EXPECT_EQ(per_class, (std::map<int64_t, int>{{0, 4}, {1, 4}, {2, 4}, {3, 4}}));
  const auto metrics = test::read_text(dir / "a" / "metrics.jsonl");
  EXPECT_EQ(std::count(metrics.begin(), metrics.end(), '\n'), 3) << metrics;
  EXPECT_NE(metrics.find("\"kind\":\"finetune\""), std::string::npos) << metrics;

  // Stopped after epoch 1 and resumed: the same weights, bit for bit.
  r = moco(common + "--epochs 1 -o '" + (dir / "b").string() + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  r = moco(common + "--epochs 2 --resume '" +
               (dir / "b" / "checkpoint.pth.tar").string() + "' -o '" +
               (dir / "b").string() + "'",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("resumed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the list in"), std::string::npos) << r.out;
  const auto a = load_backbone((dir / "a" / "checkpoint.pth.tar").string());
  const auto b = load_backbone((dir / "b" / "checkpoint.pth.tar").string());
  ASSERT_EQ(a.state.size(), b.state.size());
  for (const auto& [k, v] : a.state) {
    EXPECT_TRUE(v.equal(b.state.at(k))) << k;
  }
  EXPECT_TRUE(a.head.at("fc.weight").equal(b.head.at("fc.weight")));
  // ... and the weights did change from the pretrained ones.
  const auto pre = load_backbone(ckpt);
  EXPECT_FALSE(pre.state.at("layer1.0.conv1.weight").equal(a.state.at("layer1.0.conv1.weight")));

  // Another run reuses the list.
  r = moco("finetune '" + data + "' --pretrained '" + ckpt + "' --label-subset '" +
               (dir / "a" / "labels.txt").string() + "' --epochs 1" + kFinetune +
               "-o '" + (dir / "c").string() + "'",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(test::read_text(dir / "c" / "labels.txt"),
            test::read_text(dir / "a" / "labels.txt"));

  // -e reproduces the best checkpoint's accuracy.
  r = moco("finetune '" + data + "' -e --resume '" +
               (dir / "a" / "model_best.pth.tar").string() + "' --threads 2",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NEAR(number_after(r.out, "Acc@1 "), best, 1e-3) << r.out;
  // The report charts the fine-tuning.
  r = moco("report '" + (dir / "a").string() + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(test::read_text(dir / "a" / "report.html").find("fine-tuning val top-1"),
            std::string::npos);
}

TEST(Finetune, StartsFromOfficialTorchvisionOrNothingAndExportsPredictAsMoco) {
  auto dir = test::scratch_dir("sources");
  test::run_python("make_torch_files.py", "'" + dir.string() + "'", dir);
  test::write_cifar(dir / "cifar", 40);
  const auto cifar = (dir / "cifar").string();
  struct Source {
    std::string flags, kind;
  };
  const std::vector<Source> sources = {
      {"--pretrained '" + (dir / "release_zip.pth.tar").string() + "'",
       "MoCo pretraining checkpoint"},
      {"--pretrained '" + (dir / "torchvision_resnet18.pth").string() + "'",
       "state dict"},
      {"--pretrained none -a resnet18 --stem imagenet", "random initialisation"},
  };
  for (size_t i = 0; i < sources.size(); ++i) {
    auto r = moco("finetune '" + cifar + "' " + sources[i].flags +
                      " --epochs 1 --label-fraction 0.5" + kFinetune + "-o '" +
                      (dir / ("ft" + std::to_string(i))).string() + "'",
                  dir);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find(sources[i].kind), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("20 of 40 labelled images"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("resnet18,"), std::string::npos) << r.out;
  }
  // A lincls classifier too.
  auto r = moco("lincls '" + cifar + "' --pretrained '" +
                    (dir / "release_zip.pth.tar").string() + "' --epochs 1 --lr 1" +
                    kFinetune + "-o '" + (dir / "lin").string() + "'",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;

  auto splits = data::open_dataset(cifar);
  auto [mean, std] = data::normalization(splits.train);
  auto csv = [](const std::vector<double>& v) {
    return fmt::format("{:.17g},{:.17g},{:.17g}", v[0], v[1], v[2]);
  };
  for (const std::string command : {"finetune", "lincls"}) {
    const auto run = dir / (command == "finetune" ? "ft0" : "lin");
    const auto best = (run / "model_best.pth.tar").string();
    const auto pth = (dir / (command + ".pth")).string();
    const auto npy = (dir / (command + "_logits.npy")).string();
    r = moco("export '" + best + "' '" + pth + "'", dir);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("with its 10-class fc"), std::string::npos) << r.out;
    r = moco(command + " '" + cifar + "' -e --resume '" + best + "' --threads 2", dir);
    ASSERT_EQ(r.rc, 0) << r.out;
    const double acc = number_after(r.out, "Acc@1 ");
    r = moco("embed '" + cifar + "' --pretrained '" + best +
                 "' --head --split test -o '" + npy + "' --threads 2",
             dir);
    ASSERT_EQ(r.rc, 0) << r.out;
    test::run_python("check_classifier_export.py",
                     "resnet18 10 '" + pth + "' '" +
                         (dir / "cifar" / "test_batch.bin").string() + "' " +
                         csv(mean) + " " + csv(std) + " '" + npy + "' " +
                         fmt::format("{:.6f}", acc),
                     dir);
  }
}

TEST(Finetune, BadInputNamesTheFlag) {
  auto dir = test::scratch_dir("bad");
  test::run_python("make_torch_files.py", "'" + dir.string() + "'", dir);
  test::write_cifar(dir / "cifar", 40);
  const std::string base = "finetune '" + (dir / "cifar").string() +
                           "' --pretrained '" +
                           (dir / "release_zip.pth.tar").string() + "' ";
  auto expect_error = [&](const std::string& args, const std::string& what) {
    const auto r = moco(args, dir);
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_NE(r.out.find(what), std::string::npos) << args << "\n" << r.out;
  };
  expect_error(base + "--label-fraction 0", "--label-fraction");
  expect_error(base + "--label-fraction 1.5", "--label-fraction");
  expect_error(base + "--labels-per-class 11 -o '" + (dir / "x").string() + "'",
               "--labels-per-class <= 10");
  expect_error(base + "--labels-per-class 2 --label-fraction 0.5",
               "--label-fraction or --labels-per-class, not both");
  expect_error("finetune '" + (dir / "cifar").string() + "' --pretrained none",
               "-a/--arch");
  expect_error("finetune --pretrained none -a resnet18", "--data is required");
  expect_error("export '" + (dir / "release_zip.pth.tar").string() + "' '" +
                   (dir / "out.bin").string() + "'",
               "cannot tell the format of " + (dir / "out.bin").string());
  expect_error("export '" + (dir / "release_zip.pth.tar").string() + "' '" +
                   (dir / "out.pth").string() + "' --format onnx",
               "--format");
  EXPECT_FALSE(fs::exists(dir / "out.bin"));
  EXPECT_FALSE(fs::exists(dir / "x" / "checkpoint.pth.tar"));
}

}  // namespace
}  // namespace moco::train
