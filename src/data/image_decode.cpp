#include "data/image_decode.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>

// jpeglib.h needs FILE and size_t declared first.
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "io/checkpoint.h"

namespace moco::data {

ImageFormat sniff_format(const std::vector<uint8_t>& b) {
  if (b.size() >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) {
    return ImageFormat::kJpeg;
  }
  static const uint8_t kPng[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (b.size() >= 8 && std::memcmp(b.data(), kPng, 8) == 0) {
    return ImageFormat::kPng;
  }
  return ImageFormat::kUnknown;
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  TORCH_CHECK(in, "cannot open ", path, ": ", std::strerror(errno));
  const std::streamoff size = in.tellg();
  TORCH_CHECK(size >= 0, "cannot read ", path);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0) {
    in.read(reinterpret_cast<char*>(bytes.data()), size);
    TORCH_CHECK(in.gcount() == size, "short read (", in.gcount(), " of ", size,
                " bytes): ", path);
  }
  return bytes;
}

namespace {

// PIL's convert("L") weights (ITU-R 601-2) in 16-bit fixed point.
inline uint8_t luma(uint8_t r, uint8_t g, uint8_t b) {
  return static_cast<uint8_t>((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

void rgb_to_grey_inplace(DecodedImage& img) {
  const int64_t n = img.height * img.width;
  uint8_t* p = img.pixels.data();
  for (int64_t i = 0; i < n; ++i) p[i] = luma(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
  img.pixels.resize(static_cast<size_t>(n));
  img.channels = 1;
}

// ---- JPEG ----------------------------------------------------------------
// libjpeg reports fatal errors through error_exit, which must not return:
// the documented way out is longjmp back to the caller's setjmp.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

void jpeg_emit_message(j_common_ptr cinfo, int level) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  // A premature end of data is only a warning to libjpeg (it pads with
  // grey); for training it is a broken file, as PIL treats it.
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    err->truncated = true;
    (*cinfo->err->format_message)(cinfo, err->message);
  }
  if (level < 0) cinfo->err->num_warnings++;
}

struct JpegJob {
  const std::vector<uint8_t>* bytes;
  DecodeOptions options;
  bool header_only = false;
  DecodedImage out;
  bool cmyk = false, adobe = false;
  bool too_big = false;  // over options.max_pixels: not decoded
};

bool over_limit(int64_t width, int64_t height, int64_t max_pixels) {
  return max_pixels > 0 && width * height > max_pixels;
}

std::string too_big_message(int64_t width, int64_t height, int64_t max_pixels,
                            const std::string& name) {
  return "image of " + std::to_string(width) + "x" + std::to_string(height) +
         " = " + std::to_string(width * height) +
         " pixels is over --max-image-pixels " + std::to_string(max_pixels) +
         " (a decompression bomb?): " + name;
}

// Returns "" on success, else libjpeg's message. Only POD locals live here:
// longjmp may land back in this frame.
std::string run_jpeg(JpegJob* job) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_emit_message;
  err.truncated = false;
  err.message[0] = '\0';
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return err.message;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, job->bytes->data(),
               static_cast<unsigned long>(job->bytes->size()));
  jpeg_read_header(&cinfo, TRUE);
  job->out.height = cinfo.image_height;
  job->out.width = cinfo.image_width;
  job->too_big =
      !job->header_only &&
      over_limit(job->out.width, job->out.height, job->options.max_pixels());
  if (job->header_only || job->too_big) {
    jpeg_destroy_decompress(&cinfo);
    return "";
  }
  job->cmyk = cinfo.jpeg_color_space == JCS_CMYK ||
              cinfo.jpeg_color_space == JCS_YCCK;
  job->adobe = cinfo.saw_Adobe_marker;
  if (job->cmyk) {
    cinfo.out_color_space = JCS_CMYK;  // libjpeg converts YCCK to CMYK
  } else if (job->options.channels() == 1) {
    cinfo.out_color_space = JCS_GRAYSCALE;  // skips the chroma planes
  } else {
    cinfo.out_color_space = JCS_RGB;
  }
  const double s = std::min(1.0, std::max(job->options.min_scale(), 0.125));
  cinfo.scale_num = static_cast<unsigned>(std::ceil(s * 8.0 - 1e-9));
  cinfo.scale_denom = 8;
  jpeg_start_decompress(&cinfo);
  const size_t row = static_cast<size_t>(cinfo.output_width) *
                     cinfo.output_components;
  job->out.height = cinfo.output_height;
  job->out.width = cinfo.output_width;
  job->out.channels = cinfo.output_components;
  job->out.pixels.resize(row * cinfo.output_height);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW rows[1] = {job->out.pixels.data() + row * cinfo.output_scanline};
    jpeg_read_scanlines(&cinfo, rows, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return err.truncated ? std::string(err.message) : std::string();
}

// run_jpeg, with libjpeg's message turned into an error naming the file.
void run_jpeg_checked(JpegJob& job, const std::string& name) {
  const std::string message = run_jpeg(&job);
  TORCH_CHECK(message.empty(), "corrupt or truncated JPEG (", message, "): ",
              name);
}

DecodedImage decode_jpeg(const std::vector<uint8_t>& bytes,
                         const std::string& name, const DecodeOptions& o) {
  JpegJob job;
  job.bytes = &bytes;
  job.options = o;
  run_jpeg_checked(job, name);
  TORCH_CHECK(!job.too_big, too_big_message(job.out.width, job.out.height,
                                            o.max_pixels(), name));
  DecodedImage& img = job.out;
  if (job.cmyk) {
    // Adobe's CMYK JPEGs store inverted samples; PIL's conversion is
    // R = (255 - C)(255 - K) / 255, which on inverted samples is C' K' / 255.
    const int64_t n = img.height * img.width;
    std::vector<uint8_t> rgb(static_cast<size_t>(n * 3));
    const uint8_t* p = img.pixels.data();
    for (int64_t i = 0; i < n; ++i) {
      const int k = job.adobe ? p[4 * i + 3] : 255 - p[4 * i + 3];
      for (int c = 0; c < 3; ++c) {
        const int v = job.adobe ? p[4 * i + c] : 255 - p[4 * i + c];
        rgb[3 * i + c] = static_cast<uint8_t>((v * k + 127) / 255);
      }
    }
    img.pixels = std::move(rgb);
    img.channels = 3;
    if (o.channels() == 1) rgb_to_grey_inplace(img);
  }
  return std::move(img);
}

// ---- PNG -----------------------------------------------------------------
struct PngReader {
  const std::vector<uint8_t>* bytes;
  size_t offset = 0;
  char message[256] = {0};
};

void png_read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<PngReader*>(png_get_io_ptr(png));
  if (r->offset + n > r->bytes->size()) {
    png_error(png, "file ends before the image data does");
  }
  std::memcpy(out, r->bytes->data() + r->offset, n);
  r->offset += n;
}

void png_on_error(png_structp png, png_const_charp msg) {
  auto* r = static_cast<PngReader*>(png_get_error_ptr(png));
  std::snprintf(r->message, sizeof(r->message), "%s", msg);
  png_longjmp(png, 1);
}

void png_on_warning(png_structp, png_const_charp) {}

struct PngJob {
  PngReader reader;
  int64_t channels = 3;
  int64_t max_pixels = 0;
  bool too_big = false;
  DecodedImage out;
  std::vector<png_bytep> rows;
};

bool run_png(PngJob* job) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job->reader,
                                           png_on_error, png_on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  png_set_read_fn(png, &job->reader, png_read_bytes);
  png_read_info(png, info);
  job->out.height = png_get_image_height(png, info);
  job->out.width = png_get_image_width(png, info);
  if (over_limit(job->out.width, job->out.height, job->max_pixels)) {
    job->too_big = true;
    png_destroy_read_struct(&png, &info, nullptr);
    return true;
  }
  const int color = png_get_color_type(png, info);
  const int depth = png_get_bit_depth(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  // A tRNS chunk (transparency of a palette, grey or RGB image) becomes an
  // alpha channel when libpng expands the image; dropped as PIL's
  // convert("RGB") drops it.
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_strip_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) {
    png_set_expand_gray_1_2_4_to_8(png);
  }
  if (depth == 16) png_set_strip_16(png);
  if (color & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(png);
  const bool grey = color == PNG_COLOR_TYPE_GRAY ||
                    color == PNG_COLOR_TYPE_GRAY_ALPHA;
  if (grey && job->channels == 3) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  job->out.height = png_get_image_height(png, info);
  job->out.width = png_get_image_width(png, info);
  job->out.channels = png_get_channels(png, info);
  const size_t row = png_get_rowbytes(png, info);
  job->out.pixels.resize(row * job->out.height);
  job->rows.resize(job->out.height);
  for (int64_t y = 0; y < job->out.height; ++y) {
    job->rows[y] = job->out.pixels.data() + row * y;
  }
  png_read_image(png, job->rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

DecodedImage decode_png(const std::vector<uint8_t>& bytes,
                        const std::string& name, const DecodeOptions& o) {
  PngJob job;
  job.reader.bytes = &bytes;
  job.channels = o.channels();
  job.max_pixels = o.max_pixels();
  TORCH_CHECK(run_png(&job), "corrupt or truncated PNG (", job.reader.message,
              "): ", name);
  TORCH_CHECK(!job.too_big, too_big_message(job.out.width, job.out.height,
                                            o.max_pixels(), name));
  DecodedImage& img = job.out;
  if (img.channels == 3 && o.channels() == 1) rgb_to_grey_inplace(img);
  TORCH_CHECK(img.channels == o.channels(), "PNG with an unexpected layout (",
              img.channels, " channels after conversion, expected ",
              o.channels(), "): ", name);
  return std::move(img);
}

uint32_t be32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) |
         (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

}  // namespace

ImageInfo read_image_info(const std::vector<uint8_t>& bytes,
                          const std::string& name) {
  ImageInfo info;
  info.format = sniff_format(bytes);
  TORCH_CHECK(!bytes.empty(), "empty file (0 bytes): ", name);
  TORCH_CHECK(info.format != ImageFormat::kUnknown,
              "not a JPEG or PNG image (unrecognised first bytes): ", name);
  if (info.format == ImageFormat::kPng) {
    // IHDR is the first chunk: length, "IHDR", width, height.
    TORCH_CHECK(bytes.size() >= 24 && std::memcmp(&bytes[12], "IHDR", 4) == 0,
                "corrupt or truncated PNG (no IHDR chunk): ", name);
    info.width = be32(&bytes[16]);
    info.height = be32(&bytes[20]);
  } else {
    JpegJob job;
    job.bytes = &bytes;
    job.header_only = true;
    run_jpeg_checked(job, name);
    info.height = job.out.height;
    info.width = job.out.width;
  }
  TORCH_CHECK(info.height > 0 && info.width > 0,
              "image with no pixels (", info.width, "x", info.height, "): ",
              name);
  return info;
}

DecodedImage decode_image(const std::vector<uint8_t>& bytes,
                          const std::string& name,
                          const DecodeOptions& options) {
  TORCH_CHECK(options.channels() == 1 || options.channels() == 3,
              "expected --channels 1 or 3, got ", options.channels());
  TORCH_CHECK(!bytes.empty(), "empty file (0 bytes): ", name);
  switch (sniff_format(bytes)) {
    case ImageFormat::kJpeg:
      return decode_jpeg(bytes, name, options);
    case ImageFormat::kPng:
      return decode_png(bytes, name, options);
    default:
      TORCH_CHECK(false, "not a JPEG or PNG image (unrecognised first bytes): ",
                  name);
  }
}

std::vector<uint8_t> encode_png(const uint8_t* pixels, int64_t h, int64_t w,
                                int64_t c) {
  TORCH_CHECK(c == 1 || c == 3, "expected 1 or 3 channels to write a PNG, got ", c);
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(w);
  image.height = static_cast<png_uint_32>(h);
  image.format = c == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  png_alloc_size_t size = 0;
  TORCH_CHECK(png_image_write_to_memory(&image, nullptr, &size, 0, pixels, 0, nullptr),
              "cannot encode a PNG: ", image.message);
  std::vector<uint8_t> out(size);
  TORCH_CHECK(png_image_write_to_memory(&image, out.data(), &size, 0, pixels, 0, nullptr),
              "cannot encode a PNG: ", image.message);
  out.resize(size);
  return out;
}

void write_png(const std::string& path, const torch::Tensor& hwc) {
  const auto pixels = hwc.contiguous();
  const auto png = encode_png(pixels.data_ptr<uint8_t>(), pixels.size(0), pixels.size(1),
                              pixels.size(2));
  io::atomic_write(path, std::string(png.begin(), png.end()));
}

}  // namespace moco::data
