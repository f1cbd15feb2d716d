// lincls and knn as a user runs them, with Python torch/torchvision as the
// independent client.
#include "train/lincls.h"

#include <fmt/format.h>

#include "../support.h"
#include "data/dataset.h"
#include "train/backbone.h"

namespace moco::train {
namespace {

namespace fs = test::fs;

using test::kTinyRun;
constexpr auto moco = test::run_moco;

TEST(Lincls, LinclsTrainsOnlyFcAndResumesAndEvaluates) {
  auto dir = test::scratch_dir("lincls");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 64, 16, 4);
  auto r = moco("pretrain '" + (dir / "data").string() +
                    "' -a resnet18 --width 8 --max-steps 2" + kTinyRun + "'" +
                    (dir / "run").string() + "'",
                dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto ckpt = (dir / "run" / "checkpoint.pth.tar").string();
  r = moco("lincls '" + (dir / "data").string() + "' --pretrained '" + ckpt +
               "' --epochs 6 --schedule 4 --lr 10 -b 16 --threads 2 -j 1 "
               "--no-progress --output '" + (dir / "lin").string() + "'",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("sanity check passed"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lincls epoch 6/6"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir / "lin" / "model_best.pth.tar"));
  // The bright band gives the class away: a linear probe must beat chance
  // (25%) by far.
  const auto pos = r.out.find("best val Acc@1 ");
  ASSERT_NE(pos, std::string::npos) << r.out;
  const double best = std::stod(r.out.substr(pos + 15));
  EXPECT_GT(best, 50.0) << r.out;
  // Python reads the classifier checkpoint (main_lincls.py's layout).
  test::write_file(dir / "check.py",
                   "import sys, torch\n"
                   "c = torch.load(sys.argv[1])\n"
                   "sd = c['state_dict']\n"
                   "assert tuple(sd['module.fc.weight'].shape) == (4, 64), sd['module.fc.weight'].shape\n"
                   "assert 'module.layer4.1.bn2.running_var' in sd\n"
                   "assert c['epoch'] == 6 and c['best_acc1'] > 0\n"
                   "assert c['optimizer']['param_groups'][0]['params'] == [0, 1]\n");
  ASSERT_EQ(test::run_command(test::python() + " '" + (dir / "check.py").string() +
                                  "' '" + (dir / "lin" / "checkpoint.pth.tar").string() + "'",
                              (dir / "py.log").string()),
            0)
      << test::read_text(dir / "py.log");
  // -e with the best checkpoint reproduces its accuracy.
  r = moco("lincls '" + (dir / "data").string() + "' -e --resume '" +
               (dir / "lin" / "model_best.pth.tar").string() + "' --threads 2",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto e = r.out.find("Acc@1 ");
  ASSERT_NE(e, std::string::npos) << r.out;
  EXPECT_NEAR(std::stod(r.out.substr(e + 6)), best, 1e-3) << r.out;
  // knn on the same backbone.
  r = moco("knn '" + (dir / "data").string() + "' --pretrained '" + ckpt +
               "' --knn-k 10 --threads 2",
           dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("knn top-1"), std::string::npos) << r.out;
}

TEST(Lincls, PythonReleaseFilesFeedLinclsAndKnn) {
  auto dir = test::scratch_dir("release");
  test::run_python("make_torch_files.py", "'" + dir.string() + "'", dir);
  test::write_cifar(dir / "cifar", 40);
  for (const char* f : {"release_zip.pth.tar", "release_legacy.pth.tar"}) {
    const auto ckpt = (dir / f).string();
    auto r = moco("knn '" + (dir / "cifar").string() + "' --pretrained '" +
                      ckpt + "' --knn-k 5 --threads 2",
                  dir);
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("knn top-1"), std::string::npos) << r.out;
    r = moco("lincls '" + (dir / "cifar").string() + "' --pretrained '" + ckpt +
                 "' --epochs 1 -b 8 --threads 2 -j 1 --no-progress --output '" +
                 (dir / (std::string("lin_") + f)).string() + "'",
             dir);
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("resnet18"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("sanity check passed"), std::string::npos) << r.out;
  }
  // A torchvision state dict is a backbone too.
  auto b = load_backbone((dir / "torchvision_resnet18.pth").string());
  EXPECT_EQ(b.options.arch(), "resnet18");
  EXPECT_EQ(b.kind, "state dict");
  EXPECT_FALSE(b.options.small_stem());
}

TEST(Lincls, BadInputNamesTheFileOrFlag) {
  auto dir = test::scratch_dir("bad");
  test::run_python("make_torch_files.py", "'" + dir.string() + "'", dir);
  test::write_cifar(dir / "cifar", 40);
  const auto cifar = (dir / "cifar").string();
  const auto ckpt = (dir / "release_zip.pth.tar").string();
  // Another architecture than asked for.
  auto r = moco("lincls '" + cifar + "' --pretrained '" + ckpt + "' -a resnet50",
                dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find(ckpt), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("resnet18"), std::string::npos) << r.out;
  // Truncated, and not a checkpoint at all.
  const auto bytes = test::read_text(ckpt);
  test::write_file(dir / "cut.pth.tar", bytes.substr(0, bytes.size() / 3));
  test::write_file(dir / "notes.txt", "not a checkpoint");
  for (const char* f : {"cut.pth.tar", "notes.txt"}) {
    r = moco("knn '" + cifar + "' --pretrained '" + (dir / f).string() + "'", dir);
    EXPECT_EQ(r.rc, 1) << f;
    EXPECT_NE(r.out.find((dir / f).string()), std::string::npos) << r.out;
  }
  // A dataset without labels.
  fs::create_directories(dir / "photos");
  test::write_file(dir / "photos" / "a.png", test::read_text(dir / "notes.txt"));
  r = moco("lincls '" + (dir / "photos").string() + "' --pretrained '" + ckpt + "'",
           dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("needs labelled"), std::string::npos) << r.out;
  // 1-channel images for a 3-channel backbone.
  fs::create_directories(dir / "idx");
  test::write_idx_dataset(dir / "idx", 16, 16, 2);
  r = moco("knn '" + (dir / "idx").string() + "' --pretrained '" + ckpt + "'", dir);
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.out.find("--channels"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace moco::train
