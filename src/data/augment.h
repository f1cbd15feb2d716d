// Image augmentations with torchvision's semantics, on float C x H x W
// tensors in [0, 1] (1 or 3 channels).
//
// Each op is a plain function given its parameters, so it can be compared
// with torchvision.transforms.functional; the random parts (drawing the
// parameters) are separate and take a moco::Rng.
//
//   moco::Rng rng(moco::mix_seed(seed, epoch, index, view));
//   auto opts = moco::data::moco_v2_augment(/*size=*/224);
//   torch::Tensor v = moco::data::augment_view(image_u8, opts, rng);
#pragma once

#include <torch/types.h>
#include <torch/arg.h>

#include <array>
#include <vector>

#include "core/rng.h"

namespace moco::data {

struct CropBox {
  int64_t top, left, height, width;
};

// RandomResizedCrop.get_params: 10 tries, then the centre-crop fallback.
CropBox random_resized_crop_params(int64_t height, int64_t width,
                                   std::array<double, 2> scale,
                                   std::array<double, 2> ratio, Rng& rng);
// Crop then bilinear resize (align_corners=false, no antialias), as
// torchvision's F.resized_crop on tensors.
torch::Tensor resized_crop(const torch::Tensor& img, const CropBox& box,
                           int64_t size);

torch::Tensor rgb_to_grayscale(const torch::Tensor& img,
                               int64_t out_channels);
torch::Tensor adjust_brightness(const torch::Tensor& img, double factor);
torch::Tensor adjust_contrast(const torch::Tensor& img, double factor);
torch::Tensor adjust_saturation(const torch::Tensor& img, double factor);
torch::Tensor adjust_hue(const torch::Tensor& img, double hue_factor);
// torchvision's F.gaussian_blur with reflect padding (odd kernel_size).
torch::Tensor gaussian_blur(const torch::Tensor& img, int64_t kernel_size,
                            double sigma);
// The kernel size we pair with sigma: 2*ceil(3 sigma)+1, which covers the
// support of PIL's GaussianBlur(radius=sigma) that the official code uses.
int64_t blur_kernel_size(double sigma, int64_t height, int64_t width);
torch::Tensor hflip(const torch::Tensor& img);
torch::Tensor normalize(const torch::Tensor& img, const std::vector<double>& mean,
                        const std::vector<double>& std);

struct AugmentOptions {
  TORCH_ARG(int64_t, size) = 224;
  TORCH_ARG(double, scale_min) = 0.2;
  TORCH_ARG(double, scale_max) = 1.0;
  TORCH_ARG(double, ratio_min) = 3.0 / 4.0;
  TORCH_ARG(double, ratio_max) = 4.0 / 3.0;
  TORCH_ARG(double, brightness) = 0.4;
  TORCH_ARG(double, contrast) = 0.4;
  TORCH_ARG(double, saturation) = 0.4;
  TORCH_ARG(double, hue) = 0.4;
  TORCH_ARG(double, jitter_p) = 1.0;
  TORCH_ARG(double, grayscale_p) = 0.2;
  // v1 applies RandomGrayscale before ColorJitter, v2 after it.
  TORCH_ARG(bool, grayscale_first) = true;
  TORCH_ARG(double, blur_p) = 0.0;
  TORCH_ARG(double, blur_sigma_min) = 0.1;
  TORCH_ARG(double, blur_sigma_max) = 2.0;
  TORCH_ARG(double, flip_p) = 0.5;
  TORCH_ARG(std::vector<double>, mean) = {0.485, 0.456, 0.406};
  TORCH_ARG(std::vector<double>, std) = {0.229, 0.224, 0.225};
};

// Official main_moco.py without --aug-plus (MoCo v1).
AugmentOptions moco_v1_augment(int64_t size);
// Official main_moco.py with --aug-plus (MoCo v2): jitter p=0.8 with hue 0.1,
// grayscale 0.2, blur p=0.5.
AugmentOptions moco_v2_augment(int64_t size);

// Everything random about one view, drawn up front from the image size
// alone, so a loader can pick the JPEG decode scale from both views' crops
// before decoding.
struct ViewParams {
  CropBox crop{0, 0, 0, 0};
  bool grayscale_before = false;  // v1 order
  bool jitter = false;
  std::array<int, 4> jitter_order = {0, 1, 2, 3};  // brightness, contrast,
                                                   // saturation, hue
  double brightness = 1, contrast = 1, saturation = 1, hue = 0;
  bool grayscale_after = false;   // v2 order
  double blur_sigma = 0;          // 0: no blur
  bool flip = false;
};

// Draws in the order torchvision's Compose would: crop, (grey), jitter,
// (grey), blur, flip.
ViewParams draw_view_params(int64_t height, int64_t width,
                            const AugmentOptions& opts, Rng& rng);

// Pixels of an 8-bit image in any layout: element (c, y, x) is at
// data[c * stride_c + y * stride_y + x * stride_x].
struct ImageView8 {
  const uint8_t* data;
  int64_t channels, height, width;
  int64_t stride_c, stride_y, stride_x;
};
ImageView8 image_view(const torch::Tensor& chw_u8);  // contiguous C x H x W

// Renders one view (crop + resize, colour ops, blur, flip, normalise) into
// out, a float C x size x size buffer, in fused single-threaded loops: the
// same arithmetic as composing the ops above, without a tensor per op.
void render_view(const ImageView8& image, const ViewParams& params,
                 const AugmentOptions& opts, float* out);

// One random view of a uint8 C x H x W image, as a normalised float tensor
// C x size x size (draw_view_params + render_view).
torch::Tensor augment_view(const torch::Tensor& image_u8,
                           const AugmentOptions& opts, Rng& rng);
// The same view composed from the tensor ops above: the readable reference
// that render_view is tested against.
torch::Tensor augment_view_reference(const torch::Tensor& image_u8,
                                     const ViewParams& params,
                                     const AugmentOptions& opts);

}  // namespace moco::data
