// moco export and moco embed as a user runs them: torchvision loads the
// export, and embed's features equal torchvision's on the same images.
#include "train/export.h"

#include "../support.h"
#include "resnet50_export.h"

namespace moco::train {
namespace {

namespace fs = test::fs;

constexpr auto moco = test::run_moco;

TEST(Export, ExportLoadsIntoTorchvisionAndEmbedEqualsItsFeatures) {
  auto dir = test::scratch_dir("export");
  test::Resnet50Files f;
  test::resnet50_export(dir, &f);
  if (HasFatalFailure()) return;
  const auto& ckpt = f.ckpt;
  const auto& st = f.safetensors;
  const auto listing = test::read_text(dir / "feats.txt");
  EXPECT_EQ(std::count(listing.begin(), listing.end(), '\n'), 20);
  EXPECT_NE(listing.find("\t3\n"), std::string::npos) << listing;
  test::run_python("check_export.py", "resnet50 '" + f.pth + "' '" + st + "' '" + f.features +
                                          "' " + f.images_args + " '" + ckpt + "'",
                   dir);
  // The format follows the extension: .safetensors without --format is the
  // same file, .pkl is detectron2's.
  auto r = moco("export '" + ckpt + "' '" + (dir / "auto.safetensors").string() + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(test::read_text(dir / "auto.safetensors"), test::read_text(st));
  const auto pkl = (dir / "r50.pkl").string();
  r = moco("export '" + ckpt + "' '" + pkl + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("as detectron2"), std::string::npos) << r.out;
  // Detection and segmentation models take the export as their backbone.
  test::run_python("check_dense_export.py", "'" + f.pth + "' '" + pkl + "'", dir);
}

TEST(Export, Detectron2NamesFollowTheOfficialConverter) {
  EXPECT_EQ(detectron2_name("conv1.weight"), "stem.conv1.weight");
  EXPECT_EQ(detectron2_name("bn1.running_var"), "stem.conv1.norm.running_var");
  EXPECT_EQ(detectron2_name("layer1.0.bn3.bias"), "res2.0.conv3.norm.bias");
  EXPECT_EQ(detectron2_name("layer4.2.conv2.weight"), "res5.2.conv2.weight");
  EXPECT_EQ(detectron2_name("layer3.0.downsample.0.weight"), "res4.0.shortcut.weight");
  EXPECT_EQ(detectron2_name("layer3.0.downsample.1.weight"),
            "res4.0.shortcut.norm.weight");
  EXPECT_EQ(export_format("", "a/b.PTH"), "torchvision");
  EXPECT_EQ(export_format("", "model.pth.tar"), "torchvision");
  EXPECT_EQ(export_format("", "r50.pkl"), "detectron2");
  EXPECT_EQ(export_format("safetensors", "r50.pkl"), "safetensors");
  const auto msg = test::error_message([] { export_format("", "r50.onnx"); });
  EXPECT_NE(msg.find("cannot tell the format of r50.onnx"), std::string::npos) << msg;
}

}  // namespace
}  // namespace moco::train
