#include "data/augment.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moco::data {

namespace F = torch::nn::functional;

namespace {

// Python's round() rounds half to even; std::nearbyint does the same in the
// default rounding mode.
int64_t py_round(double x) { return static_cast<int64_t>(std::nearbyint(x)); }

torch::Tensor blend(const torch::Tensor& a, const torch::Tensor& b,
                    double ratio) {
  return (a * ratio + b * (1.0 - ratio)).clamp_(0.0, 1.0);
}

torch::Tensor rgb_to_hsv(const torch::Tensor& img) {
  auto r = img[0], g = img[1], b = img[2];
  auto maxc = std::get<0>(img.max(0));
  auto minc = std::get<0>(img.min(0));
  auto eqc = maxc == minc;
  auto cr = maxc - minc;
  auto ones = torch::ones_like(maxc);
  auto s = cr / torch::where(eqc, ones, maxc);
  auto cr_div = torch::where(eqc, ones, cr);
  auto rc = (maxc - r) / cr_div;
  auto gc = (maxc - g) / cr_div;
  auto bc = (maxc - b) / cr_div;
  auto hr = (maxc == r).to(img.dtype()) * (bc - gc);
  auto hg = ((maxc == g) & (maxc != r)).to(img.dtype()) * (2.0 + rc - bc);
  auto hb = ((maxc != g) & (maxc != r)).to(img.dtype()) * (4.0 + gc - rc);
  auto h = torch::fmod((hr + hg + hb) / 6.0 + 1.0, 1.0);
  return torch::stack({h, s, maxc});
}

torch::Tensor hsv_to_rgb(const torch::Tensor& hsv) {
  auto h = hsv[0], s = hsv[1], v = hsv[2];
  auto i = torch::floor(h * 6.0);
  auto f = h * 6.0 - i;
  auto sector = i.to(torch::kInt32).remainder(6);
  auto p = (v * (1.0 - s)).clamp(0.0, 1.0);
  auto q = (v * (1.0 - s * f)).clamp(0.0, 1.0);
  auto t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0);
  // The six sectors of the hue circle, each a (r, g, b) choice of v, p, q, t.
  const std::array<std::array<torch::Tensor*, 3>, 6> table = {{
      {&v, &t, &p}, {&q, &v, &p}, {&p, &v, &t},
      {&p, &q, &v}, {&t, &p, &v}, {&v, &p, &q}}};
  auto out = torch::zeros({3, h.size(0), h.size(1)}, hsv.options());
  for (int k = 0; k < 6; ++k) {
    auto mask = (sector == k).to(hsv.dtype());
    for (int c = 0; c < 3; ++c) out[c].add_(*table[k][c] * mask);
  }
  return out;
}

}  // namespace

CropBox random_resized_crop_params(int64_t height, int64_t width,
                                   std::array<double, 2> scale,
                                   std::array<double, 2> ratio, Rng& rng) {
  const double area = static_cast<double>(height * width);
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target_area = area * rng.uniform(scale[0], scale[1]);
    const double aspect = std::exp(rng.uniform(log_lo, log_hi));
    const int64_t w = py_round(std::sqrt(target_area * aspect));
    const int64_t h = py_round(std::sqrt(target_area / aspect));
    if (0 < w && w <= width && 0 < h && h <= height) {
      const int64_t top = rng.randint(0, height - h);
      const int64_t left = rng.randint(0, width - w);
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(width) / height;
  int64_t w = width, h = height;
  if (in_ratio < ratio[0]) {
    h = py_round(w / ratio[0]);
  } else if (in_ratio > ratio[1]) {
    w = py_round(h * ratio[1]);
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

torch::Tensor resized_crop(const torch::Tensor& img, const CropBox& box,
                           int64_t size) {
  auto crop = img.slice(1, box.top, box.top + box.height)
                  .slice(2, box.left, box.left + box.width);
  if (box.height == size && box.width == size) return crop.contiguous();
  return F::interpolate(crop.unsqueeze(0),
                        F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{size, size})
                            .mode(torch::kBilinear)
                            .align_corners(false))
      .squeeze(0);
}

torch::Tensor rgb_to_grayscale(const torch::Tensor& img,
                               int64_t out_channels) {
  if (img.size(0) == 1) {
    return out_channels == 1 ? img.clone() : img.expand({3, -1, -1}).clone();
  }
  auto l = (img[0] * 0.2989 + img[1] * 0.587 + img[2] * 0.114).unsqueeze(0);
  return out_channels == 1 ? l : l.expand({3, -1, -1}).contiguous();
}

torch::Tensor adjust_brightness(const torch::Tensor& img, double factor) {
  return (img * factor).clamp_(0.0, 1.0);
}

torch::Tensor adjust_contrast(const torch::Tensor& img, double factor) {
  auto mean = rgb_to_grayscale(img, 1).mean();
  return blend(img, mean, factor);
}

torch::Tensor adjust_saturation(const torch::Tensor& img, double factor) {
  if (img.size(0) == 1) return img;  // as torchvision: no-op on grey
  return blend(img, rgb_to_grayscale(img, 1), factor);
}

torch::Tensor adjust_hue(const torch::Tensor& img, double hue_factor) {
  TORCH_CHECK(hue_factor >= -0.5 && hue_factor <= 0.5,
              "expected hue_factor in [-0.5, 0.5], got ", hue_factor);
  if (img.size(0) == 1) return img;
  auto hsv = rgb_to_hsv(img);
  hsv[0] = torch::remainder(hsv[0] + hue_factor, 1.0);
  return hsv_to_rgb(hsv);
}

int64_t blur_kernel_size(double sigma, int64_t height, int64_t width) {
  int64_t k = 2 * static_cast<int64_t>(std::ceil(3.0 * sigma)) + 1;
  // Reflect padding needs pad < dim.
  const int64_t max_k = 2 * std::min(height, width) - 1;
  if (k > max_k) k = max_k % 2 == 1 ? max_k : max_k - 1;
  return std::max<int64_t>(k, 1);
}

torch::Tensor gaussian_blur(const torch::Tensor& img, int64_t kernel_size,
                            double sigma) {
  TORCH_CHECK(kernel_size > 0 && kernel_size % 2 == 1,
              "expected an odd positive kernel_size, got ", kernel_size);
  TORCH_CHECK(sigma > 0, "expected sigma > 0, got ", sigma);
  const double half = (kernel_size - 1) * 0.5;
  auto x = torch::linspace(-half, half, kernel_size, img.options());
  auto pdf = torch::exp(-0.5 * (x / sigma).pow(2));
  auto k1d = pdf / pdf.sum();
  const int64_t c = img.size(0);
  const int64_t pad = kernel_size / 2;
  auto padded = F::pad(img.unsqueeze(0),
                       F::PadFuncOptions({pad, pad, pad, pad})
                           .mode(torch::kReflect));
  // The 2-D Gaussian is separable: a row pass then a column pass.
  auto kx = k1d.view({1, 1, 1, kernel_size}).expand({c, 1, 1, kernel_size});
  auto ky = k1d.view({1, 1, kernel_size, 1}).expand({c, 1, kernel_size, 1});
  auto out = F::conv2d(padded, kx, F::Conv2dFuncOptions().groups(c));
  out = F::conv2d(out, ky, F::Conv2dFuncOptions().groups(c));
  return out.squeeze(0);
}

torch::Tensor hflip(const torch::Tensor& img) { return img.flip({-1}); }

torch::Tensor normalize(const torch::Tensor& img,
                        const std::vector<double>& mean,
                        const std::vector<double>& std) {
  const int64_t c = img.size(0);
  TORCH_CHECK(static_cast<int64_t>(mean.size()) == c &&
                  static_cast<int64_t>(std.size()) == c,
              "expected ", c, " mean/std values, got ", mean.size(), "/",
              std.size());
  auto m = torch::tensor(mean, img.options()).view({c, 1, 1});
  auto s = torch::tensor(std, img.options()).view({c, 1, 1});
  return (img - m) / s;
}

AugmentOptions moco_v1_augment(int64_t size) {
  return AugmentOptions()
      .size(size)
      .brightness(0.4)
      .contrast(0.4)
      .saturation(0.4)
      .hue(0.4)
      .jitter_p(1.0)
      .grayscale_p(0.2)
      .grayscale_first(true)
      .blur_p(0.0);
}

AugmentOptions moco_v2_augment(int64_t size) {
  return AugmentOptions()
      .size(size)
      .brightness(0.4)
      .contrast(0.4)
      .saturation(0.4)
      .hue(0.1)
      .jitter_p(0.8)
      .grayscale_p(0.2)
      .grayscale_first(false)
      .blur_p(0.5);
}

namespace {

torch::Tensor color_jitter(torch::Tensor img, const AugmentOptions& o,
                           Rng& rng) {
  // ColorJitter draws the order of its four ops, then each factor.
  std::array<int, 4> order = {0, 1, 2, 3};
  for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.randint(0, i)]);
  const double b = rng.uniform(std::max(0.0, 1 - o.brightness()),
                               1 + o.brightness());
  const double c =
      rng.uniform(std::max(0.0, 1 - o.contrast()), 1 + o.contrast());
  const double s =
      rng.uniform(std::max(0.0, 1 - o.saturation()), 1 + o.saturation());
  const double h = rng.uniform(-o.hue(), o.hue());
  for (int op : order) {
    if (op == 0 && o.brightness() > 0) img = adjust_brightness(img, b);
    if (op == 1 && o.contrast() > 0) img = adjust_contrast(img, c);
    if (op == 2 && o.saturation() > 0) img = adjust_saturation(img, s);
    if (op == 3 && o.hue() > 0) img = adjust_hue(img, h);
  }
  return img;
}

}  // namespace

torch::Tensor augment_view(const torch::Tensor& image_u8,
                           const AugmentOptions& o, Rng& rng) {
  auto img = image_u8.to(torch::kFloat32).div_(255.0);
  const auto box = random_resized_crop_params(
      img.size(1), img.size(2), {o.scale_min(), o.scale_max()},
      {o.ratio_min(), o.ratio_max()}, rng);
  img = resized_crop(img, box, o.size());
  auto grayscale = [&] {
    if (rng.bernoulli(o.grayscale_p())) img = rgb_to_grayscale(img, img.size(0));
  };
  if (o.grayscale_first()) grayscale();
  if (rng.bernoulli(o.jitter_p())) img = color_jitter(img, o, rng);
  if (!o.grayscale_first()) grayscale();
  if (o.blur_p() > 0 && rng.bernoulli(o.blur_p())) {
    const double sigma = rng.uniform(o.blur_sigma_min(), o.blur_sigma_max());
    img = gaussian_blur(img, blur_kernel_size(sigma, img.size(1), img.size(2)),
                        sigma);
  }
  if (rng.bernoulli(o.flip_p())) img = hflip(img);
  return normalize(img, o.mean(), o.std());
}

}  // namespace moco::data
