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

ViewParams draw_view_params(int64_t height, int64_t width,
                            const AugmentOptions& o, Rng& rng) {
  ViewParams p;
  p.crop = random_resized_crop_params(height, width,
                                      {o.scale_min(), o.scale_max()},
                                      {o.ratio_min(), o.ratio_max()}, rng);
  if (o.grayscale_first()) p.grayscale_before = rng.bernoulli(o.grayscale_p());
  p.jitter = rng.bernoulli(o.jitter_p());
  if (p.jitter) {
    // ColorJitter draws the order of its four ops, then each factor.
    for (int i = 3; i > 0; --i) {
      std::swap(p.jitter_order[i], p.jitter_order[rng.randint(0, i)]);
    }
    p.brightness = rng.uniform(std::max(0.0, 1 - o.brightness()),
                               1 + o.brightness());
    p.contrast =
        rng.uniform(std::max(0.0, 1 - o.contrast()), 1 + o.contrast());
    p.saturation =
        rng.uniform(std::max(0.0, 1 - o.saturation()), 1 + o.saturation());
    p.hue = rng.uniform(-o.hue(), o.hue());
  }
  if (!o.grayscale_first()) p.grayscale_after = rng.bernoulli(o.grayscale_p());
  if (o.blur_p() > 0 && rng.bernoulli(o.blur_p())) {
    p.blur_sigma = rng.uniform(o.blur_sigma_min(), o.blur_sigma_max());
  }
  p.flip = rng.bernoulli(o.flip_p());
  return p;
}

ImageView8 image_view(const torch::Tensor& t) {
  TORCH_CHECK(t.dim() == 3 && t.scalar_type() == torch::kUInt8 &&
                  t.is_contiguous(),
              "expected a contiguous uint8 C x H x W image, got ", t.sizes(),
              " ", t.scalar_type());
  return {t.data_ptr<uint8_t>(), t.size(0), t.size(1), t.size(2),
          t.size(1) * t.size(2), t.size(2), 1};
}

torch::Tensor augment_view_reference(const torch::Tensor& image_u8,
                                     const ViewParams& p,
                                     const AugmentOptions& o) {
  auto img = image_u8.to(torch::kFloat32).div_(255.0);
  img = resized_crop(img, p.crop, o.size());
  if (p.grayscale_before) img = rgb_to_grayscale(img, img.size(0));
  if (p.jitter) {
    for (int op : p.jitter_order) {
      if (op == 0 && o.brightness() > 0) img = adjust_brightness(img, p.brightness);
      if (op == 1 && o.contrast() > 0) img = adjust_contrast(img, p.contrast);
      if (op == 2 && o.saturation() > 0) img = adjust_saturation(img, p.saturation);
      if (op == 3 && o.hue() > 0) img = adjust_hue(img, p.hue);
    }
  }
  if (p.grayscale_after) img = rgb_to_grayscale(img, img.size(0));
  if (p.blur_sigma > 0) {
    img = gaussian_blur(
        img, blur_kernel_size(p.blur_sigma, img.size(1), img.size(2)),
        p.blur_sigma);
  }
  if (p.flip) img = hflip(img);
  return normalize(img, o.mean(), o.std());
}

namespace {

// The fused loops below work on planar float images (C planes of n pixels),
// so the compiler can vectorise each pass; the per-op tensor code above
// would allocate a tensor per op and per view, which on 224 px costs more
// than the arithmetic itself.
//
// Each pass reproduces the float32 arithmetic of the matching torchvision op
// (see the reference ops above); tests compare the two.

// Why by hand, not OpenCV or PIL-SIMD: the point is torchvision's float32
// arithmetic (tested to 1e-5), which their 8-bit resize and HSV code do not
// reproduce. The loops are built for AVX-512, AVX2 and baseline x86-64, the
// best chosen at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MOCO_SIMD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MOCO_SIMD_CLONES
#endif

inline float clamp01(float v) { return v < 0.f ? 0.f : (v > 1.f ? 1.f : v); }

// Bilinear, align_corners=false, as ATen's upsample_bilinear2d on float:
// src = scale * (dst + 0.5) - 0.5, clamped at 0.
struct Taps {
  std::vector<int64_t> i0, i1;
  std::vector<float> w0, w1;
};

void make_taps(int64_t in, int64_t out, Taps& t) {
  t.i0.resize(out);
  t.i1.resize(out);
  t.w0.resize(out);
  t.w1.resize(out);
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t d = 0; d < out; ++d) {
    float src = scale * (static_cast<float>(d) + 0.5f) - 0.5f;
    if (src < 0.f) src = 0.f;
    const int64_t i0 = static_cast<int64_t>(src);
    const float l1 = src - static_cast<float>(i0);
    t.i0[d] = i0;
    t.i1[d] = i0 + (i0 < in - 1 ? 1 : 0);
    t.w0[d] = 1.f - l1;
    t.w1[d] = l1;
  }
}

MOCO_SIMD_CLONES
void crop_resize(const ImageView8& im, const CropBox& box, int64_t size,
                 float* out) {
  thread_local Taps ty, tx;
  thread_local std::vector<float> row0, row1;
  make_taps(box.height, size, ty);
  make_taps(box.width, size, tx);
  row0.resize(box.width);
  row1.resize(box.width);
  const int64_t n = size * size;
  constexpr float kInv255 = 1.f / 255.f;
  for (int64_t c = 0; c < im.channels; ++c) {
    const uint8_t* plane = im.data + c * im.stride_c +
                           box.top * im.stride_y + box.left * im.stride_x;
    float* o = out + c * n;
    for (int64_t y = 0; y < size; ++y) {
      const uint8_t* r0 = plane + ty.i0[y] * im.stride_y;
      const uint8_t* r1 = plane + ty.i1[y] * im.stride_y;
      const float a = ty.w0[y], b = ty.w1[y];
      // Vertical blend of the two source rows first (contiguous, cheap),
      // then the horizontal gather.
      for (int64_t x = 0; x < box.width; ++x) {
        row0[x] = r0[x * im.stride_x] * kInv255;
        row1[x] = r1[x * im.stride_x] * kInv255;
      }
      float* orow = o + y * size;
      for (int64_t x = 0; x < size; ++x) {
        const int64_t x0 = tx.i0[x], x1 = tx.i1[x];
        const float top = row0[x0] * tx.w0[x] + row0[x1] * tx.w1[x];
        const float bot = row1[x0] * tx.w0[x] + row1[x1] * tx.w1[x];
        orow[x] = a * top + b * bot;
      }
    }
  }
}

MOCO_SIMD_CLONES
void grayscale(float* img, int64_t channels, int64_t n) {
  if (channels == 1) return;
  float *r = img, *g = img + n, *b = img + 2 * n;
  for (int64_t i = 0; i < n; ++i) {
    const float l = r[i] * 0.2989f + g[i] * 0.587f + b[i] * 0.114f;
    r[i] = g[i] = b[i] = l;
  }
}

MOCO_SIMD_CLONES
void brightness(float* img, int64_t len, float f) {
  for (int64_t i = 0; i < len; ++i) img[i] = clamp01(img[i] * f);
}

MOCO_SIMD_CLONES
void contrast(float* img, int64_t channels, int64_t n, float f) {
  double sum = 0;
  if (channels == 1) {
    for (int64_t i = 0; i < n; ++i) sum += img[i];
  } else {
    const float *r = img, *g = img + n, *b = img + 2 * n;
    for (int64_t i = 0; i < n; ++i) {
      sum += r[i] * 0.2989f + g[i] * 0.587f + b[i] * 0.114f;
    }
  }
  const float mean = static_cast<float>(sum / static_cast<double>(n));
  const float rest = (1.f - f) * mean;
  for (int64_t i = 0; i < channels * n; ++i) img[i] = clamp01(img[i] * f + rest);
}

MOCO_SIMD_CLONES
void saturation(float* img, int64_t channels, int64_t n, float f) {
  if (channels == 1) return;
  float *r = img, *g = img + n, *b = img + 2 * n;
  const float rest = 1.f - f;
  for (int64_t i = 0; i < n; ++i) {
    const float l = (r[i] * 0.2989f + g[i] * 0.587f + b[i] * 0.114f) * rest;
    r[i] = clamp01(r[i] * f + l);
    g[i] = clamp01(g[i] * f + l);
    b[i] = clamp01(b[i] * f + l);
  }
}

// torchvision's _rgb2hsv, hue shift and _hsv2rgb, one pixel at a time.
MOCO_SIMD_CLONES
void hue(float* img, int64_t channels, int64_t n, float shift) {
  if (channels == 1) return;
  float *R = img, *G = img + n, *B = img + 2 * n;
  for (int64_t i = 0; i < n; ++i) {
    const float r = R[i], g = G[i], b = B[i];
    const float maxc = std::max(r, std::max(g, b));
    const float minc = std::min(r, std::min(g, b));
    const float eqc = maxc == minc ? 1.f : 0.f;
    const float cr = maxc - minc;
    // x + eqc instead of eqc ? 1 : x: the same values (cr is 0 when eqc),
    // without a division under a condition.
    const float s = cr / (maxc + eqc);
    const float crd = cr + eqc;
    const float rc = (maxc - r) / crd, gc = (maxc - g) / crd,
                bc = (maxc - b) / crd;
    // Selects instead of branches, with -fno-trapping-math on this file, so
    // the loop vectorises: GCC may then compute both sides of a select.
    const float hr = bc - gc, hg = 2.f + rc - bc, hb = 4.f + gc - rc;
    float h = maxc == g ? hg : hb;
    h = maxc == r ? hr : h;
    // fmod(h / 6 + 1, 1): the argument lies in (0.8, 1.9), where the
    // subtraction is exact.
    h = h / 6.f + 1.f;
    h = h >= 1.f ? h - 1.f : h;
    h = h + shift;
    h = h - std::floor(h);  // torch.remainder(h, 1)
    const float v = maxc;
    const float h6 = h * 6.f;
    const float fi = std::floor(h6);
    const float f = h6 - fi;
    // h < 1, so fi is 0..5, or 6 when h rounds up to 1 (sector 0 again).
    const float sector = fi >= 6.f ? 0.f : fi;
    const float p = clamp01(v * (1.f - s));
    const float q = clamp01(v * (1.f - s * f));
    const float t = clamp01(v * (1.f - s * (1.f - f)));
    // One two-way select at a time: GCC's if-conversion gives up on a
    // many-way merge.
    float ro = sector == 1.f ? q : p;
    ro = sector == 4.f ? t : ro;
    ro = sector == 0.f ? v : ro;
    ro = sector == 5.f ? v : ro;
    float go = sector == 0.f ? t : p;
    go = sector == 3.f ? q : go;
    go = sector == 1.f ? v : go;
    go = sector == 2.f ? v : go;
    float bo = sector == 2.f ? t : p;
    bo = sector == 5.f ? q : bo;
    bo = sector == 3.f ? v : bo;
    bo = sector == 4.f ? v : bo;
    R[i] = ro;
    G[i] = go;
    B[i] = bo;
  }
}

inline int64_t reflect(int64_t i, int64_t n) {
  if (i < 0) return -i;
  if (i >= n) return 2 * (n - 1) - i;
  return i;
}

// Separable Gaussian with reflect padding; torchvision convolves with the
// outer product of the same 1-D kernel, equal up to float rounding.
MOCO_SIMD_CLONES
void blur(float* img, int64_t channels, int64_t size, double sigma) {
  const int64_t k = blur_kernel_size(sigma, size, size);
  const int64_t half = k / 2;
  thread_local std::vector<float> kernel, tmp, padded;
  kernel.resize(k);
  {
    // torchvision: linspace(-(k-1)/2, (k-1)/2, k), exp(-0.5 (x/sigma)^2),
    // normalised, all in float32.
    float sum = 0;
    const float h = (k - 1) * 0.5f;
    for (int64_t i = 0; i < k; ++i) {
      const float x = -h + static_cast<float>(i);
      const float z = x / static_cast<float>(sigma);
      kernel[i] = std::exp(-0.5f * z * z);
      sum += kernel[i];
    }
    for (auto& v : kernel) v /= sum;
  }
  const int64_t n = size * size;
  tmp.resize(n);
  padded.resize(size + 2 * half);
  for (int64_t c = 0; c < channels; ++c) {
    float* plane = img + c * n;
    // Rows.
    for (int64_t y = 0; y < size; ++y) {
      const float* row = plane + y * size;
      for (int64_t x = -half; x < size + half; ++x) {
        padded[x + half] = row[reflect(x, size)];
      }
      float* o = tmp.data() + y * size;
      for (int64_t x = 0; x < size; ++x) o[x] = 0.f;
      for (int64_t j = 0; j < k; ++j) {
        const float w = kernel[j];
        const float* src = padded.data() + j;
        for (int64_t x = 0; x < size; ++x) o[x] += w * src[x];
      }
    }
    // Columns: whole rows at a time, so the inner loop is contiguous.
    for (int64_t y = 0; y < size; ++y) {
      float* o = plane + y * size;
      for (int64_t x = 0; x < size; ++x) o[x] = 0.f;
      for (int64_t j = 0; j < k; ++j) {
        const float w = kernel[j];
        const float* src = tmp.data() + reflect(y + j - half, size) * size;
        for (int64_t x = 0; x < size; ++x) o[x] += w * src[x];
      }
    }
  }
}

MOCO_SIMD_CLONES
void flip_normalize(const float* src, int64_t size, bool flip, float mean,
                    float std, float* dst) {
  // (x - mean) / std as torchvision computes it (a division, not a
  // multiplication by 1/std).
  for (int64_t y = 0; y < size; ++y) {
    const float* s = src + y * size;
    float* d = dst + y * size;
    if (flip) {
      for (int64_t x = 0; x < size; ++x) d[x] = (s[size - 1 - x] - mean) / std;
    } else {
      for (int64_t x = 0; x < size; ++x) d[x] = (s[x] - mean) / std;
    }
  }
}

}  // namespace

void render_view(const ImageView8& im, const ViewParams& p,
                 const AugmentOptions& o, float* out) {
  const int64_t size = o.size(), c = im.channels, n = size * size;
  TORCH_CHECK(static_cast<int64_t>(o.mean().size()) == c &&
                  static_cast<int64_t>(o.std().size()) == c,
              "expected ", c, " mean/std values, got ", o.mean().size(), "/",
              o.std().size());
  TORCH_INTERNAL_ASSERT(p.crop.top >= 0 && p.crop.left >= 0 &&
                        p.crop.height > 0 && p.crop.width > 0 &&
                        p.crop.top + p.crop.height <= im.height &&
                        p.crop.left + p.crop.width <= im.width);
  TORCH_CHECK(p.hue >= -0.5 && p.hue <= 0.5,
              "expected hue_factor in [-0.5, 0.5], got ", p.hue);
  thread_local std::vector<float> buf;
  buf.resize(c * n);
  float* img = buf.data();
  crop_resize(im, p.crop, size, img);
  if (p.grayscale_before) grayscale(img, c, n);
  if (p.jitter) {
    for (int op : p.jitter_order) {
      if (op == 0 && o.brightness() > 0) brightness(img, c * n, p.brightness);
      if (op == 1 && o.contrast() > 0) contrast(img, c, n, p.contrast);
      if (op == 2 && o.saturation() > 0) saturation(img, c, n, p.saturation);
      if (op == 3 && o.hue() > 0) hue(img, c, n, static_cast<float>(p.hue));
    }
  }
  if (p.grayscale_after) grayscale(img, c, n);
  if (p.blur_sigma > 0) blur(img, c, size, p.blur_sigma);
  for (int64_t ch = 0; ch < c; ++ch) {
    flip_normalize(img + ch * n, size, p.flip, static_cast<float>(o.mean()[ch]),
                   static_cast<float>(o.std()[ch]), out + ch * n);
  }
}

torch::Tensor augment_view(const torch::Tensor& image_u8,
                           const AugmentOptions& o, Rng& rng) {
  auto src = image_u8.contiguous();
  const auto params = draw_view_params(src.size(1), src.size(2), o, rng);
  auto out = torch::empty({src.size(0), o.size(), o.size()}, torch::kFloat32);
  render_view(image_view(src), params, o, out.data_ptr<float>());
  return out;
}

}  // namespace moco::data
