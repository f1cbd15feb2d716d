// `moco report`: the HTML page, its SVG charts and pictures, rendered by
// headless Chromium (Debian's chromium, installed by scripts/test.sh); the
// screenshot is decoded and the colours of the chart lines, the headline box
// and each picture counted.
#include "io/report.h"

#include <fmt/format.h>

#include "../support.h"
#include "data/image_decode.h"

#include <cmath>

namespace moco::io {
namespace {

void write_metrics(const test::fs::path& dir) {
  std::string m =
      "{\"kind\":\"config\",\"options\":{\"arch\":\"resnet18\",\"epochs\":6},"
      "\"time\":1000}\n";
  for (int step = 10; step <= 200; step += 10) {
    m += fmt::format(
        "{{\"kind\":\"train\",\"epoch\":{},\"step\":{},\"loss\":{},\"acc1\":{},"
        "\"acc5\":{},\"lr\":{},\"images_per_s\":{}}}\n",
        step / 100, step, 8.0 - step / 50.0, step / 4.0, step / 2.5,
        0.06 * (1 - step / 250.0), 300 + step % 30);
  }
  for (int e = -1; e < 2; ++e) {
    m += fmt::format("{{\"kind\":\"knn\",\"epoch\":{},\"top1\":{},\"top5\":99}}\n",
                     e, 68 + 4 * (e + 1));
    if (e >= 0) {
      m += fmt::format(
          "{{\"kind\":\"epoch\",\"epoch\":{},\"loss\":5,\"data_wait_share\":0.01,"
          "\"time\":{}}}\n",
          e, 1075 + 75 * e);
    }
  }
  m += "{\"kind\":\"train\",\"step\":";  // a torn last line, as after a kill
  test::write_file(dir / "metrics.jsonl", m);
}

TEST(Report, HtmlAndSvgHoldEveryChart) {
  auto dir = test::scratch_dir("run");
  write_metrics(dir);
  const auto r = write_report(dir.string());
  EXPECT_EQ(r.charts.size(), 6u);
  const auto html = test::read_text(r.html);
  for (const char* title : {"InfoNCE loss", "pretext top-1", "learning rate",
                            "kNN top-1", "throughput", "waiting for data"}) {
    EXPECT_NE(html.find(title), std::string::npos) << title;
  }
  EXPECT_EQ(html.find("<script"), std::string::npos);  // self-contained
  // The headline: what, how long, and the final number.
  EXPECT_NE(html.find("<p id=\"headline\">"), std::string::npos) << html;
  EXPECT_NE(html.find("resnet18 · 2 of 6 epochs · 2.5 min wall time"), std::string::npos)
      << html;
  EXPECT_NE(html.find("<b>final kNN top-1 76.00%</b>"), std::string::npos) << html;
  size_t lines = 0;
  for (size_t p = 0; (p = html.find("<polyline", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 6u);
  EXPECT_NE(test::read_text(r.svg).find("<svg"), std::string::npos);
  auto empty = test::scratch_dir("empty");
  const auto msg = test::error_message([&] { write_report(empty.string()); });
  EXPECT_NE(msg.find("metrics.jsonl"), std::string::npos) << msg;
}

// The pictures a pretraining run leaves beside metrics.jsonl: solid colours
// that a screenshot can find (magenta augmentation grid, cyan neighbours)
// and an embedding whose points are of classes 6 and 8 (palette pink and
// olive, colours no chart uses).
void write_pictures(const test::fs::path& dir) {
  auto solid = [&](const std::string& name, int64_t h, int64_t w, uint8_t r, uint8_t g,
                   uint8_t b) {
    std::vector<uint8_t> px;
    for (int64_t i = 0; i < h * w; ++i) px.insert(px.end(), {r, g, b});
    const auto png = data::encode_png(px.data(), h, w, 3);
    test::write_file(dir / name, std::string(png.begin(), png.end()));
  };
  solid("preview-aug.png", 40, 160, 255, 0, 255);
  solid("neighbours.png", 200, 400, 0, 255, 255);
  std::string pts;
  for (int i = 0; i < 300; ++i) {
    pts += fmt::format("{}[{},{},{}]", i ? "," : "", std::cos(i * 0.1) * (i % 7),
                       std::sin(i * 0.1) * (i % 5), i % 2 ? 6 : 8);
  }
  std::string classes;
  for (int c = 0; c < 10; ++c) classes += fmt::format("{}\"class {}\"", c ? "," : "", c);
  test::write_file(dir / "embedding.json",
                   "{\"method\":\"PCA\",\"explained_variance\":[0.31,0.12],"
                   "\"classes\":[" + classes + "],\"points\":[" + pts + "]}");
}

TEST(Report, PicturesOfTheRunAreInThePage) {
  auto dir = test::scratch_dir("pictures");
  write_metrics(dir);
  write_pictures(dir);
  const auto html = test::read_text(write_report(dir.string()).html);
  for (const char* id : {"id=\"augmentation\"", "id=\"neighbours\"", "id=\"embedding\""}) {
    EXPECT_NE(html.find(id), std::string::npos) << id;
  }
  // Embedded, not linked: base64 of the PNG signature \x89PNG\r\n\x1a\n.
  EXPECT_NE(html.find("src=\"data:image/png;base64,iVBORw0KGgo"), std::string::npos);
  EXPECT_EQ(html.find("src=\"preview-aug.png"), std::string::npos);
  EXPECT_NE(html.find("PC 1 (31.0% of the variance)"), std::string::npos);
  size_t points = 0;
  for (size_t p = 0; (p = html.find("fill-opacity", p)) != std::string::npos; ++p) ++points;
  EXPECT_EQ(points, 300u);
  // A damaged embedding.json is named in the page; the report is still made.
  test::write_file(dir / "embedding.json", "{\"points\": [");
  const auto again = test::read_text(write_report(dir.string()).html);
  EXPECT_NE(again.find("embedding.json is damaged"), std::string::npos);
  EXPECT_NE(again.find("id=\"neighbours\""), std::string::npos);
  // A run without pictures (lincls, finetune) has no Pictures section.
  auto bare = test::scratch_dir("bare");
  write_metrics(bare);
  EXPECT_EQ(test::read_text(write_report(bare.string()).html).find("<h2>Pictures"),
            std::string::npos);
}

TEST(Report, ChromiumRendersTheCharts) {
  const std::string chromium = "/usr/bin/chromium";
  ASSERT_TRUE(test::fs::exists(chromium))
      << "needs Debian's chromium (scripts/test.sh installs it)";
  auto dir = test::scratch_dir("render");
  write_metrics(dir);
  write_pictures(dir);
  const auto r = write_report(dir.string());
  const auto png = (dir / "shot.png").string();
  const int rc = test::run_command(
      chromium + " --headless --no-sandbox --disable-gpu --disable-quic "
      "--no-first-run --disable-background-networking "
      "--disable-component-update --disable-sync --hide-scrollbars "
      "--user-data-dir='" + (dir / "profile").string() + "' "
      "--window-size=1000,3200 --screenshot='" + png + "' 'file://" + r.html + "'",
      (dir / "chromium.log").string());
  ASSERT_EQ(rc, 0) << test::read_text(dir / "chromium.log");
  const auto img = data::decode_image(data::read_file(png), png);
  ASSERT_EQ(img.channels, 3);
  // Pixels of each chart line's colour: the page shows the charts only if
  // the browser drew the SVG.
  auto count = [&](int r0, int g0, int b0) {
    int64_t n = 0;
    for (size_t i = 0; i + 2 < img.pixels.size(); i += 3) {
      if (std::abs(img.pixels[i] - r0) < 12 && std::abs(img.pixels[i + 1] - g0) < 12 &&
          std::abs(img.pixels[i + 2] - b0) < 12) {
        ++n;
      }
    }
    return n;
  };
  EXPECT_GT(count(0x1f, 0x77, 0xb4), 300);  // loss
  EXPECT_GT(count(0x2c, 0xa0, 0x2c), 300);  // pretext accuracy
  EXPECT_GT(count(0xd6, 0x27, 0x28), 100);  // kNN
  EXPECT_GT(count(0x94, 0x67, 0xbd), 300);  // learning rate
  // The headline's box, then each picture.
  EXPECT_GT(count(0xe8, 0xf0, 0xfa), 20000);  // headline background
  EXPECT_GT(count(0x1f, 0x77, 0xb4), 300 + 6 * 40);  // + its left bar
  EXPECT_GT(count(255, 0, 255), 40 * 160);  // augmentation grid (magenta)
  EXPECT_GT(count(0, 255, 255), 200 * 400 / 2);  // neighbours (cyan)
  // Embedding points (75% opaque over white): class 6, then class 8.
  EXPECT_GT(count(234, 153, 209), 100);
  EXPECT_GT(count(205, 206, 80), 100);
}

}  // namespace
}  // namespace moco::io
