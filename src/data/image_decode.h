// JPEG (libjpeg-turbo) and PNG (libpng) decoding into 8-bit interleaved
// pixels, plus a header peek that gives the size without decoding.
//
// JPEGs can be decoded at a reduced DCT scale (1/8 .. 8/8): when the crop
// will be shrunk anyway, most of the decode work is skipped.
//
//   auto bytes = moco::data::read_file(path);
//   auto info = moco::data::read_image_info(bytes, path);    // 500 x 375
//   auto img = moco::data::decode_image(
//       bytes, path, DecodeOptions().channels(3).min_scale(0.5));  // 250x188
#pragma once

#include <torch/arg.h>
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace moco::data {

// PIL's Image.MAX_IMAGE_PIXELS: 1024 * 1024 * 1024 / 4 / 3.
constexpr int64_t kMaxImagePixels = 89478485;

enum class ImageFormat { kUnknown, kJpeg, kPng };

struct ImageInfo {
  ImageFormat format = ImageFormat::kUnknown;
  int64_t height = 0, width = 0;
};

struct DecodedImage {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // height x width x channels
};

struct DecodeOptions {
  TORCH_ARG(int64_t, channels) = 3;  // 1: greyscale, 3: RGB
  // Smallest scale factor the caller accepts; JPEGs decode at the smallest
  // n/8 >= min_scale. 1: full size.
  TORCH_ARG(double, min_scale) = 1.0;
  // Larger images are refused before their pixels are allocated: PIL's
  // decompression-bomb limit (Image.MAX_IMAGE_PIXELS), since a 100 kB PNG
  // can claim 20000 x 20000 pixels. 0: no limit.
  TORCH_ARG(int64_t, max_pixels) = kMaxImagePixels;
};

// The format by its magic bytes (not by the file name).
ImageFormat sniff_format(const std::vector<uint8_t>& bytes);

// Whole file; an error names the path.
std::vector<uint8_t> read_file(const std::string& path);

// 8-bit grey (c 1) or RGB (c 3) pixels, h x w x c, as PNG bytes (libpng's
// simplified API).
std::vector<uint8_t> encode_png(const uint8_t* pixels, int64_t h, int64_t w,
                                int64_t c);
// A uint8 H x W x C picture as a PNG file, written atomically (the
// augmentation grid, the neighbour grid).
void write_png(const std::string& path, const torch::Tensor& hwc);

// Format and size from the header. `name` only labels errors.
ImageInfo read_image_info(const std::vector<uint8_t>& bytes,
                          const std::string& name);

// Decodes a JPEG (baseline or progressive; grey, YCbCr, CMYK/YCCK) or a PNG
// (palette, grey, alpha, 8 or 16 bit, interlaced) to `channels` channels.
// Alpha is dropped and 16-bit samples keep their high byte, as PIL's
// convert("RGB"). A truncated or corrupt file throws a c10::Error naming
// `name`.
DecodedImage decode_image(const std::vector<uint8_t>& bytes,
                          const std::string& name,
                          const DecodeOptions& options = {});

}  // namespace moco::data
