// JPEG and PNG decoding against PIL (Debian's python3-pil, which links the
// same libjpeg-turbo): every variant the loader must read, decoded by both,
// compared pixel by pixel; DCT scaling against PIL's Image.draft(); broken
// files give errors that name them.
#include "data/image_decode.h"

#include "../support.h"
#include "image_fixtures.h"

namespace moco::data {
namespace {

torch::Tensor as_tensor(const DecodedImage& d) {
  return torch::from_blob(const_cast<uint8_t*>(d.pixels.data()),
                          {d.height, d.width, d.channels}, torch::kUInt8)
      .clone();
}

DecodedImage decode_path(const test::fs::path& p, int64_t channels = 3,
                         double min_scale = 1.0) {
  return decode_image(read_file(p.string()), p.string(),
                      DecodeOptions().channels(channels).min_scale(min_scale));
}

int64_t max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kInt32) - b.to(torch::kInt32)).abs().max().item<int64_t>();
}

class DecodeVsPil : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::scratch_dir("files"); }
  // Decodes `entries` (name -> "path[,mode[,w,h]]") with PIL.
  std::map<std::string, torch::Tensor> pil(
      const std::vector<std::pair<std::string, std::string>>& entries) {
    std::string args = "'" + (dir_ / "pil.pt").string() + "'";
    for (const auto& [name, spec] : entries) args += " '" + name + "=" + spec + "'";
    test::run_python("pil_decode.py", args, dir_);
    return test::load_tensors(dir_ / "pil.pt");
  }
  test::fs::path dir_;
};

TEST_F(DecodeVsPil, JpegBaselineProgressiveGreyAndCmyk) {
  const int h = 37, w = 53;  // not multiples of the 8/16 px blocks
  test::write_jpeg(dir_ / "rgb.jpg", test::pattern(h, w, 3), h, w);
  test::write_jpeg(dir_ / "prog.jpg", test::pattern(h, w, 3, 2), h, w,
                   {3, /*progressive=*/true});
  test::write_jpeg(dir_ / "grey.jpg", test::pattern(h, w, 1, 3), h, w, {1});
  test::write_jpeg(dir_ / "cmyk.jpg", test::pattern(h, w, 4, 4), h, w, {4});
  auto ref = pil({{"rgb", (dir_ / "rgb.jpg").string()},
                  {"prog", (dir_ / "prog.jpg").string()},
                  {"grey", (dir_ / "grey.jpg").string()},
                  {"grey_rgb", (dir_ / "grey.jpg").string() + ",RGB"},
                  {"rgb_l", (dir_ / "rgb.jpg").string() + ",L"},
                  {"cmyk", (dir_ / "cmyk.jpg").string()}});
  EXPECT_EQ(max_diff(as_tensor(decode_path(dir_ / "rgb.jpg")), ref["rgb"]), 0);
  EXPECT_EQ(max_diff(as_tensor(decode_path(dir_ / "prog.jpg")), ref["prog"]), 0);
  EXPECT_EQ(max_diff(as_tensor(decode_path(dir_ / "grey.jpg")), ref["grey_rgb"]), 0);
  const auto grey1 = decode_path(dir_ / "grey.jpg", 1);
  EXPECT_EQ(grey1.channels, 1);
  EXPECT_EQ(max_diff(as_tensor(grey1),
                     ref["grey_rgb"].select(2, 0).unsqueeze(2)), 0);
  // A colour JPEG as greyscale: we take libjpeg's luma plane, PIL converts
  // the RGB it decoded; the two differ by rounding only.
  EXPECT_LE(max_diff(as_tensor(decode_path(dir_ / "rgb.jpg", 1)), ref["rgb_l"]), 2);
  const auto cmyk = decode_path(dir_ / "cmyk.jpg");
  EXPECT_EQ(cmyk.channels, 3);
  EXPECT_LE(max_diff(as_tensor(cmyk), ref["cmyk"]), 1);
}

TEST_F(DecodeVsPil, JpegDctScalingMatchesPilDraft) {
  const int h = 120, w = 160;
  test::write_jpeg(dir_ / "big.jpg", test::pattern(h, w, 3, 5), h, w);
  const auto info = read_image_info(read_file((dir_ / "big.jpg").string()), "big");
  EXPECT_EQ(info.format, ImageFormat::kJpeg);
  EXPECT_EQ(info.height, h);
  EXPECT_EQ(info.width, w);
  // min_scale 0.3 -> the smallest n/8 above it, 3/8: 45 x 60.
  const auto scaled = decode_path(dir_ / "big.jpg", 3, 0.3);
  EXPECT_EQ(scaled.height, 45);
  EXPECT_EQ(scaled.width, 60);
  // PIL 9.4's draft() offers 1/2, 1/4, 1/8 only: compare those.
  const auto half = decode_path(dir_ / "big.jpg", 3, 0.5);
  const auto quarter = decode_path(dir_ / "big.jpg", 3, 0.25);
  EXPECT_EQ(half.height, 60);
  EXPECT_EQ(half.width, 80);
  auto ref = pil({{"d12", (dir_ / "big.jpg").string() + ",RGB,80,60"},
                  {"d14", (dir_ / "big.jpg").string() + ",RGB,40,30"}});
  ASSERT_EQ(ref["d12"].sizes(), as_tensor(half).sizes());
  ASSERT_EQ(ref["d14"].sizes(), as_tensor(quarter).sizes());
  EXPECT_EQ(max_diff(as_tensor(half), ref["d12"]), 0);
  EXPECT_EQ(max_diff(as_tensor(quarter), ref["d14"]), 0);
  // PNG has no DCT: min_scale leaves it full size.
  test::small_png(dir_ / "p.png", 30, 20);
  const auto png = decode_path(dir_ / "p.png", 3, 0.25);
  EXPECT_EQ(png.height, 30);
  EXPECT_EQ(png.width, 20);
}

TEST_F(DecodeVsPil, PngPaletteGreyAlphaSixteenBitInterlaced) {
  const int h = 21, w = 34;
  auto idx = test::pattern(h, w, 1, 6);
  for (auto& v : idx) v = v % 16;
  test::write_png(dir_ / "pal.png", idx, h, w, {PNG_COLOR_TYPE_PALETTE, 8});
  test::write_png(dir_ / "grey.png", test::pattern(h, w, 1, 7), h, w,
                  {PNG_COLOR_TYPE_GRAY, 8});
  test::write_png(dir_ / "rgba.png", test::pattern(h, w, 4, 8), h, w,
                  {PNG_COLOR_TYPE_RGB_ALPHA, 8});
  test::write_png(dir_ / "ga.png", test::pattern(h, w, 2, 9), h, w,
                  {PNG_COLOR_TYPE_GRAY_ALPHA, 8});
  test::write_png(dir_ / "inter.png", test::pattern(h, w, 3, 10), h, w,
                  {PNG_COLOR_TYPE_RGB, 8, /*interlaced=*/true});
  auto px16 = test::pattern(h, w, 3, 11);
  for (auto& v : px16) v = std::min<uint8_t>(v, 250);
  test::write_png(dir_ / "rgb16.png", px16, h, w, {PNG_COLOR_TYPE_RGB, 16});
  auto ref = pil({{"pal", (dir_ / "pal.png").string()},
                  {"grey", (dir_ / "grey.png").string()},
                  {"grey_l", (dir_ / "grey.png").string() + ",L"},
                  {"rgba", (dir_ / "rgba.png").string()},
                  {"ga", (dir_ / "ga.png").string()},
                  {"inter", (dir_ / "inter.png").string()},
                  {"rgb16", (dir_ / "rgb16.png").string()},
                  {"rgba_l", (dir_ / "rgba.png").string() + ",L"}});
  for (const char* name : {"pal", "grey", "rgba", "ga", "inter", "rgb16"}) {
    const auto ours = as_tensor(decode_path(dir_ / (std::string(name) + ".png")));
    ASSERT_EQ(ours.sizes(), ref[name].sizes()) << name;
    EXPECT_EQ(max_diff(ours, ref[name]), 0) << name;
  }
  // 16-bit samples keep their high byte: the 8-bit values written.
  const auto rgb16 = as_tensor(decode_path(dir_ / "rgb16.png"));
  const auto want = torch::from_blob(px16.data(), {h, w, 3}, torch::kUInt8);
  EXPECT_EQ(max_diff(rgb16, want), 0);
  EXPECT_EQ(max_diff(as_tensor(decode_path(dir_ / "grey.png", 1)), ref["grey_l"]), 0);
  EXPECT_EQ(max_diff(as_tensor(decode_path(dir_ / "rgba.png", 1)), ref["rgba_l"]), 0);
  const auto info = read_image_info(read_file((dir_ / "pal.png").string()), "p");
  EXPECT_EQ(info.format, ImageFormat::kPng);
  EXPECT_EQ(info.height, h);
  EXPECT_EQ(info.width, w);
}

// A tRNS chunk was once expanded into a fourth channel and the image skipped
// as unreadable ("INTERNAL ASSERT FAILED"); PIL's convert drops it.
TEST_F(DecodeVsPil, PngWithATransparencyChunk) {
  const int h = 13, w = 17;
  auto idx = test::pattern(h, w, 1, 12);
  for (auto& v : idx) v = v % 16;
  auto low = test::pattern(h, w, 1, 13);
  for (auto& v : low) v = v % 16;
  test::write_png(dir_ / "pal.png", idx, h, w,
                  {PNG_COLOR_TYPE_PALETTE, 8, false, true});
  test::write_png(dir_ / "pal4.png", idx, h, w,
                  {PNG_COLOR_TYPE_PALETTE, 4, false, true});
  test::write_png(dir_ / "grey.png", test::pattern(h, w, 1, 14), h, w,
                  {PNG_COLOR_TYPE_GRAY, 8, false, true});
  test::write_png(dir_ / "grey4.png", low, h, w,
                  {PNG_COLOR_TYPE_GRAY, 4, false, true});
  test::write_png(dir_ / "rgb.png", test::pattern(h, w, 3, 15), h, w,
                  {PNG_COLOR_TYPE_RGB, 8, false, true});
  std::vector<std::pair<std::string, std::string>> entries;
  for (const char* name : {"pal", "pal4", "grey", "grey4", "rgb"}) {
    const auto path = (dir_ / (std::string(name) + ".png")).string();
    entries.push_back({name, path});
    entries.push_back({std::string(name) + "_l", path + ",L"});
  }
  auto ref = pil(entries);
  for (const char* name : {"pal", "pal4", "grey", "grey4", "rgb"}) {
    for (int64_t c : {3, 1}) {
      const auto key = std::string(name) + (c == 1 ? "_l" : "");
      const auto ours =
          as_tensor(decode_path(dir_ / (std::string(name) + ".png"), c));
      ASSERT_EQ(ours.sizes(), ref[key].sizes()) << key;
      EXPECT_EQ(max_diff(ours, ref[key]), 0) << key;
    }
  }
}

// PIL's decompression-bomb guard: a 20000 x 20000 PNG header in a file of a
// few bytes once cost 1.3 GB per decode.
TEST(Decode, ImagesOverThePixelLimitAreRefusedBeforeDecoding) {
  const auto dir = test::scratch_dir("bomb");
  test::write_png(dir / "small.png", test::pattern(20, 30, 3, 1), 20, 30);
  test::write_jpeg(dir / "small.jpg", test::pattern(20, 30, 3, 1), 20, 30);
  for (const char* f : {"small.png", "small.jpg"}) {
    const auto path = (dir / f).string();
    const auto bytes = read_file(path);
    EXPECT_EQ(decode_image(bytes, path, DecodeOptions().max_pixels(600)).height,
              20);
    const auto msg = test::error_message(
        [&] { decode_image(bytes, path, DecodeOptions().max_pixels(599)); });
    EXPECT_NE(msg.find("30x20"), std::string::npos) << msg;  // width x height
    EXPECT_NE(msg.find("--max-image-pixels 599"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
  }
  // A real 20000 x 20000 header (IHDR with its CRC), then an empty IDAT.
  auto be32 = [](uint32_t v) {
    return std::string{static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                       static_cast<char>(v >> 8), static_cast<char>(v)};
  };
  std::string ihdr =
      "IHDR" + be32(20000) + be32(20000) + std::string("\x08\x02\0\0\0", 5);
  const uint32_t crc = static_cast<uint32_t>(
      ::crc32(0, reinterpret_cast<const Bytef*>(ihdr.data()), ihdr.size()));
  const uint32_t idat_crc = static_cast<uint32_t>(
      ::crc32(0, reinterpret_cast<const Bytef*>("IDAT"), 4));
  const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) +
                          ihdr + be32(crc) + be32(0) + "IDAT" + be32(idat_crc);
  test::write_file(dir / "bomb.png", png);
  const auto path = (dir / "bomb.png").string();
  const auto msg =
      test::error_message([&] { decode_image(read_file(path), path); });
  EXPECT_NE(msg.find("400000000 pixels is over --max-image-pixels 89478485"),
            std::string::npos)
      << msg;
}

TEST(Decode, BrokenFilesAreErrorsNamingTheFile) {
  const auto dir = test::scratch_dir("broken");
  test::small_jpeg(dir / "good.jpg", 64, 64);
  test::small_png(dir / "good.png", 64, 64);
  const auto jpg_size = test::fs::file_size(dir / "good.jpg");
  const auto png_size = test::fs::file_size(dir / "good.png");
  test::put_bytes(dir / "empty.jpg", {});
  test::truncate_copy(dir / "good.jpg", dir / "cut.jpg", jpg_size / 2);
  test::truncate_copy(dir / "good.jpg", dir / "header_only.jpg", 100);
  test::truncate_copy(dir / "good.png", dir / "cut.png", png_size / 2);
  test::truncate_copy(dir / "good.png", dir / "sig_only.png", 10);
  test::write_file(dir / "text.jpg", "this is not an image\n");
  auto garbled = test::file_bytes(dir / "good.png");
  for (size_t i = 40; i < garbled.size(); i += 7) garbled[i] ^= 0x5A;
  test::put_bytes(dir / "garbled.png", garbled);
  struct Case {
    const char* name;
    const char* expect;
  };
  for (const Case& c : {Case{"empty.jpg", "empty file"},
                        Case{"cut.jpg", "corrupt or truncated JPEG"},
                        Case{"header_only.jpg", "corrupt or truncated JPEG"},
                        Case{"cut.png", "corrupt or truncated PNG"},
                        Case{"sig_only.png", "corrupt or truncated PNG"},
                        Case{"text.jpg", "not a JPEG or PNG"},
                        Case{"garbled.png", "corrupt or truncated PNG"}}) {
    const auto path = (dir / c.name).string();
    const auto msg = test::error_message([&] {
      const auto bytes = read_file(path);
      read_image_info(bytes, path);
      decode_image(bytes, path);
    });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << c.name << ": " << msg;
  }
  const auto missing = (dir / "missing.jpg").string();
  const auto msg = test::error_message([&] { read_file(missing); });
  EXPECT_NE(msg.find(missing), std::string::npos) << msg;
  // The good ones decode.
  EXPECT_EQ(decode_path(dir / "good.jpg").height, 64);
  EXPECT_EQ(decode_path(dir / "good.png").width, 64);
}

}  // namespace
}  // namespace moco::data
