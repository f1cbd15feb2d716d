// Image files for the tests, written at run time with the same libraries the
// decoder uses (libjpeg-turbo, libpng), plus broken files cut by hand.
#pragma once

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <jpeglib.h>
#include <png.h>

namespace moco::test {

// A smooth, colourful test pattern (compresses like a photo, not like noise),
// height x width x channels.
inline std::vector<uint8_t> pattern(int h, int w, int c, unsigned seed = 1) {
  std::vector<uint8_t> px(static_cast<size_t>(h) * w * c);
  std::mt19937 rng(seed);
  const int fx = 1 + rng() % 5, fy = 1 + rng() % 5;
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      for (int k = 0; k < c; ++k) {
        const double v = 127.5 + 100 * std::sin((x * fx + k * 17) * 0.11) *
                                     std::cos((y * fy + k * 29) * 0.07) +
                         (rng() % 21) - 10.0;
        px[(static_cast<size_t>(y) * w + x) * c + k] =
            static_cast<uint8_t>(std::max(0.0, std::min(255.0, v)));
      }
    }
  }
  return px;
}

struct JpegSpec {
  int components = 3;  // 1 grey, 3 RGB, 4 CMYK
  bool progressive = false;
  int quality = 90;
};

inline void write_jpeg(const std::filesystem::path& path,
                       const std::vector<uint8_t>& px, int h, int w,
                       const JpegSpec& spec = {}) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path.string());
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  jpeg_stdio_dest(&cinfo, f);
  cinfo.image_width = w;
  cinfo.image_height = h;
  cinfo.input_components = spec.components;
  cinfo.in_color_space = spec.components == 1   ? JCS_GRAYSCALE
                         : spec.components == 4 ? JCS_CMYK
                                                : JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, spec.quality, TRUE);
  if (spec.progressive) jpeg_simple_progression(&cinfo);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(px.data()) +
                   static_cast<size_t>(cinfo.next_scanline) * w * spec.components;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::fclose(f);
}

struct PngSpec {
  int color_type = PNG_COLOR_TYPE_RGB;
  int bit_depth = 8;
  bool interlaced = false;
  bool trns = false;  // a tRNS chunk: palette alphas, or one transparent colour
};

// px holds one sample per channel of the colour type (palette: indices into
// a fixed 16-colour palette), 8-bit; with bit_depth 16 each sample v is
// written as v * 257 + 3 (so the low byte is not just a copy).
inline void write_png(const std::filesystem::path& path,
                      const std::vector<uint8_t>& px, int h, int w,
                      const PngSpec& spec = {}) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path.string());
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(f);
    throw std::runtime_error("libpng failed writing " + path.string());
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, w, h, spec.bit_depth, spec.color_type,
               spec.interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (spec.color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color palette[16];
    for (int i = 0; i < 16; ++i) {
      palette[i].red = static_cast<png_byte>(i * 16);
      palette[i].green = static_cast<png_byte>(255 - i * 13);
      palette[i].blue = static_cast<png_byte>((i * 71) % 256);
    }
    png_set_PLTE(png, info, palette, 16);
  }
  if (spec.trns && spec.color_type == PNG_COLOR_TYPE_PALETTE) {
    png_byte alpha[16];
    for (int i = 0; i < 16; ++i) alpha[i] = static_cast<png_byte>(i * 17);
    png_set_tRNS(png, info, alpha, 16, nullptr);
  } else if (spec.trns) {
    png_color_16 colour{};
    colour.gray = 5;
    colour.red = 1;
    colour.green = 2;
    colour.blue = 3;
    png_set_tRNS(png, info, nullptr, 0, &colour);
  }
  png_write_info(png, info);
  if (spec.bit_depth < 8) png_set_packing(png);  // rows of one byte per sample
  const int channels = png_get_channels(png, info);
  const int bytes = spec.bit_depth == 16 ? 2 : 1;
  std::vector<uint8_t> row(static_cast<size_t>(w) * channels * bytes);
  auto write_pass = [&] {
    for (int y = 0; y < h; ++y) {
      for (int i = 0; i < w * channels; ++i) {
        const uint8_t v = px[static_cast<size_t>(y) * w * channels + i];
        if (bytes == 2) {
          const int v16 = std::min(65535, v * 257 + 3);
          row[2 * i] = static_cast<uint8_t>(v16 >> 8);
          row[2 * i + 1] = static_cast<uint8_t>(v16 & 0xFF);
        } else {
          row[i] = v;
        }
      }
      png_write_row(png, row.data());
    }
  };
  const int passes = spec.interlaced ? png_set_interlace_handling(png) : 1;
  for (int p = 0; p < passes; ++p) write_pass();
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  std::fclose(f);
}

inline std::vector<uint8_t> file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

inline void put_bytes(const std::filesystem::path& p,
                      const std::vector<uint8_t>& bytes) {
  std::ofstream out(p, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

// The first `keep` bytes of `from`, written to `to`.
inline void truncate_copy(const std::filesystem::path& from,
                          const std::filesystem::path& to, size_t keep) {
  auto b = file_bytes(from);
  b.resize(std::min(keep, b.size()));
  put_bytes(to, b);
}

// A small JPEG at `path` (pattern seeded by `seed`).
inline void small_jpeg(const std::filesystem::path& path, int h = 40,
                       int w = 48, unsigned seed = 1) {
  write_jpeg(path, pattern(h, w, 3, seed), h, w);
}

inline void small_png(const std::filesystem::path& path, int h = 40,
                      int w = 48, unsigned seed = 1) {
  write_png(path, pattern(h, w, 3, seed), h, w);
}

}  // namespace moco::test
