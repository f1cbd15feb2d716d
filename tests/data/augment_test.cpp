// Each augmentation, given fixed parameters, against torchvision 0.14's
// functional op on the same float image. Tolerance 1e-5 absolute (float32
// rounding; hue goes through HSV and gets 1e-5 too).
#include "data/augment.h"

#include <cmath>

#include "../support.h"

namespace moco::data {

class AugmentVsTorchvision : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    torch::manual_seed(3);
    rgb_ = torch::rand({3, 40, 50});
    grey_ = torch::rand({1, 28, 28});
    auto dir = test::suite_scratch_dir("tv-augment");
    test::save_tensors(dir / "in.pt", {{"rgb", rgb_}, {"grey", grey_}});
    const auto log = (dir / "py.log").string();
    const int rc = test::run_command(
        test::python() + " '" + test::python_script("tv_augment.py") + "' '" +
            (dir / "in.pt").string() + "' '" + (dir / "out.pt").string() + "'",
        log);
    // A failure here would only skip the suite's tests (ctest counts them
    // as passed): each test fails on it instead.
    if (rc != 0) {
      setup_error_ = "python reference failed:\n" + test::read_text(log);
      return;
    }
    ref_ = test::load_tensors(dir / "out.pt");
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }
  static std::string setup_error_;
  static void expect_close(const torch::Tensor& ours, const std::string& key,
                           double tol = 1e-5) {
    ASSERT_TRUE(ref_.count(key)) << key;
    const auto& ref = ref_.at(key);
    ASSERT_EQ(ours.sizes(), ref.sizes()) << key;
    const double err = (ours - ref).abs().max().item<double>();
    EXPECT_LE(err, tol) << key << ": max abs difference " << err;
  }
  static torch::Tensor rgb_, grey_;
  static std::map<std::string, torch::Tensor> ref_;
};
torch::Tensor AugmentVsTorchvision::rgb_, AugmentVsTorchvision::grey_;
std::map<std::string, torch::Tensor> AugmentVsTorchvision::ref_;
std::string AugmentVsTorchvision::setup_error_;

TEST_F(AugmentVsTorchvision, ResizedCrop) {
  expect_close(resized_crop(rgb_, {5, 7, 20, 30}, 24), "crop");
  expect_close(resized_crop(grey_, {0, 0, 9, 13}, 28), "crop_up");
}

TEST_F(AugmentVsTorchvision, ColorOps) {
  expect_close(adjust_brightness(rgb_, 1.3), "brightness");
  expect_close(adjust_contrast(rgb_, 0.7), "contrast");
  expect_close(adjust_contrast(grey_, 1.35), "contrast_grey");
  expect_close(adjust_saturation(rgb_, 1.4), "saturation");
  expect_close(adjust_hue(rgb_, 0.08), "hue_pos");
  expect_close(adjust_hue(rgb_, -0.3), "hue_neg");
  expect_close(rgb_to_grayscale(rgb_, 3), "grayscale");
}

TEST_F(AugmentVsTorchvision, BlurFlipNormalize) {
  expect_close(gaussian_blur(rgb_, 7, 1.3), "blur");
  expect_close(gaussian_blur(grey_, 13, 2.0), "blur_grey");
  expect_close(hflip(rgb_), "flip", 0.0);
  expect_close(normalize(rgb_, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}),
               "normalize");
}

TEST(Augment, CropParamsStayWithinScaleAndRatio) {
  Rng rng(1);
  int fallbacks = 0;
  for (int i = 0; i < 2000; ++i) {
    auto b = random_resized_crop_params(28, 28, {0.2, 1.0}, {0.75, 4.0 / 3},
                                        rng);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, 28);
    ASSERT_LE(b.left + b.width, 28);
    const double area = double(b.height * b.width) / (28 * 28);
    // Rounding w and h to integers moves area and ratio a little.
    ASSERT_GE(area, 0.2 * 0.8);
    const double ratio = double(b.width) / b.height;
    ASSERT_GE(ratio, 0.75 * 0.8);
    ASSERT_LE(ratio, 4.0 / 3 * 1.25);
    if (b.height == 28 && b.width == 28) ++fallbacks;
  }
  EXPECT_LT(fallbacks, 200);
}

TEST(Augment, CropFallsBackToTheCentreAsTorchvision) {
  Rng rng(1);
  // No crop of 2-3x the image area exists: after 10 tries, the centre crop
  // clamped to the ratio range. 100 x 40 has ratio 2.5 > 4/3, so
  // h = 40, w = round(40 * 4/3) = 53, top 0, left (100 - 53) / 2 = 23.
  auto b = random_resized_crop_params(40, 100, {2.0, 3.0}, {0.75, 4.0 / 3},
                                      rng);
  EXPECT_EQ(b.height, 40);
  EXPECT_EQ(b.width, 53);
  EXPECT_EQ(b.top, 0);
  EXPECT_EQ(b.left, 23);
}

TEST(Augment, ViewsAreSeededAndNormalised) {
  auto img = (torch::rand({1, 28, 28}) * 255).to(torch::kUInt8);
  auto opts = moco_v2_augment(28).mean({0.5}).std({0.25});
  Rng a(9), b(9), c(10);
  auto va = augment_view(img, opts, a);
  auto vb = augment_view(img, opts, b);
  auto vc = augment_view(img, opts, c);
  EXPECT_EQ(va.sizes(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_TRUE(va.equal(vb));
  EXPECT_FALSE(va.equal(vc));
  EXPECT_GE(va.min().item<double>(), (0 - 0.5) / 0.25 - 1e-6);
  EXPECT_LE(va.max().item<double>(), (1 - 0.5) / 0.25 + 1e-6);
}

TEST(Augment, RecipesMatchTheOfficialCode) {
  auto v1 = moco_v1_augment(224);
  EXPECT_EQ(v1.jitter_p(), 1.0);
  EXPECT_EQ(v1.hue(), 0.4);
  EXPECT_TRUE(v1.grayscale_first());
  EXPECT_EQ(v1.blur_p(), 0.0);
  auto v2 = moco_v2_augment(224);
  EXPECT_EQ(v2.jitter_p(), 0.8);
  EXPECT_EQ(v2.hue(), 0.1);
  EXPECT_FALSE(v2.grayscale_first());
  EXPECT_EQ(v2.blur_p(), 0.5);
  EXPECT_EQ(v2.blur_sigma_min(), 0.1);
  EXPECT_EQ(v2.blur_sigma_max(), 2.0);
  EXPECT_EQ(v2.scale_min(), 0.2);
}

TEST(Augment, BlurKernelCoversThreeSigma) {
  EXPECT_EQ(blur_kernel_size(0.1, 224, 224), 3);
  EXPECT_EQ(blur_kernel_size(2.0, 224, 224), 13);
  EXPECT_EQ(blur_kernel_size(2.0, 5, 5), 9);  // reflect pad must be < 5
}

// The fused loops (render_view) against the same view composed from the
// tensor ops, each of which is checked against torchvision above: many random
// parameter draws, RGB and grey, crops scaled up and down, any layout.
TEST(Augment, FusedViewEqualsTheComposedOps) {
  torch::manual_seed(5);
  const auto rgb = (torch::rand({3, 45, 61}) * 255).to(torch::kUInt8);
  const auto grey = (torch::rand({1, 30, 30}) * 255).to(torch::kUInt8);
  int checked = 0, hue_checked = 0, blur_checked = 0;
  for (const auto& img : {rgb, grey}) {
    const int64_t c = img.size(0);
    for (int64_t size : {24, 40}) {
      for (auto base : {moco_v1_augment(size), moco_v2_augment(size)}) {
        auto opts = base.mean(std::vector<double>(c, 0.45))
                        .std(std::vector<double>(c, 0.22));
        for (int i = 0; i < 60; ++i) {
          Rng rng(1000 + i);
          const auto p = draw_view_params(img.size(1), img.size(2), opts, rng);
          auto fast = torch::empty({c, size, size});
          render_view(image_view(img), p, opts, fast.data_ptr<float>());
          const auto ref = augment_view_reference(img, p, opts);
          const double err = (fast - ref).abs().max().item<double>();
          // 5e-5 after dividing by std 0.22 is 1.1e-5 in [0, 1] pixels.
          ASSERT_LE(err, 5e-5) << "draw " << i << " size " << size << " c " << c;
          // The same image stored height x width x channels (as decoded).
          const auto hwc = img.permute({1, 2, 0}).contiguous();
          const ImageView8 v{hwc.data_ptr<uint8_t>(), c, img.size(1),
                             img.size(2), 1, img.size(2) * c, c};
          auto fast_hwc = torch::empty({c, size, size});
          render_view(v, p, opts, fast_hwc.data_ptr<float>());
          ASSERT_TRUE(fast_hwc.equal(fast));
          ++checked;
          hue_checked += p.jitter && c == 3;
          blur_checked += p.blur_sigma > 0;
        }
      }
    }
  }
  EXPECT_EQ(checked, 480);
  EXPECT_GT(hue_checked, 50);
  EXPECT_GT(blur_checked, 30);
}

}  // namespace moco::data
