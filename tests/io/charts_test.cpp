// Chart axes with round ticks, legends and error bars, checked on the SVG.
#include "io/charts.h"

#include "../support.h"

namespace moco::io {
namespace {

TEST(Charts, TicksAreRoundAndCoverTheRange) {
  EXPECT_EQ(nice_ticks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  const auto t = nice_ticks(0.0017, 0.0603, 5);
  EXPECT_DOUBLE_EQ(t.front(), 0.0);
  EXPECT_GE(t.back(), 0.0603);
  EXPECT_NEAR(t[1] - t[0], 0.02, 1e-12);
  EXPECT_EQ(tick_label(0.04, 0.02), "0.04");
  EXPECT_EQ(tick_label(70, 5), "70");
  EXPECT_EQ(tick_label(72.5, 2.5), "72.5");
}

TEST(Charts, SeveralSeriesGetALegendAndErrorBars) {
  Chart c;
  c.title = "kNN";
  c.x_label = "--moco-m";
  c.x_categories = {"0", "0.9", "0.99"};
  c.series.push_back({"a", palette(0), {{0, 50, 2}, {1, 70, 0}, {2, 75, 1}}});
  c.series.push_back({"b", palette(1), {{0, 40}, {1, 60}, {2, 65}}});
  const auto svg = svg_document({c});
  size_t lines = 0;
  for (size_t p = 0; (p = svg.find("<polyline", p)) != std::string::npos; ++p) ++lines;
  EXPECT_EQ(lines, 2u);
  EXPECT_NE(svg.find(">0.99</text>"), std::string::npos);  // category labels
  EXPECT_NE(svg.find(">a</text>"), std::string::npos);     // legend
  // Two error bars (y_err > 0) drawn as vertical lines in the first colour.
  size_t bars = 0;
  for (size_t p = 0; (p = svg.find("stroke-width=\"1.5\"", p)) != std::string::npos; ++p) ++bars;
  EXPECT_EQ(bars, 2u);
  EXPECT_EQ(escape_xml("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
}

TEST(Charts, AMillionPointsDrawAsAFewHundredWithTheirSpikes) {
  Chart c;
  c.title = "loss";
  c.x_label = "step";
  Series s{"loss", palette(0), {}};
  for (int64_t i = 0; i < 1'000'000; ++i) {
    s.points.push_back({static_cast<double>(i), i == 777'777 ? 50.0 : 5.0 + (i % 3) * 0.1});
  }
  c.series.push_back(s);
  const auto svg = svg_document({c});
  EXPECT_LT(svg.size(), 100'000u);
  // The one spike is still drawn: its y is the top of the range.
  const auto pts_at = svg.find("points=\"");
  ASSERT_NE(pts_at, std::string::npos);
  const auto pts = svg.substr(pts_at, svg.find('"', pts_at + 8) - pts_at);
  size_t drawn = 0;
  double min_y = 1e9;
  for (size_t p = pts.find(','); p != std::string::npos; p = pts.find(',', p + 1)) {
    ++drawn;
    min_y = std::min(min_y, std::stod(pts.substr(p + 1)));
  }
  EXPECT_GT(drawn, 200u);
  EXPECT_LT(drawn, 2000u);
  const auto small = svg_document({Chart{"l", "x", {{"l", palette(0), {{0, 5}, {1, 50}}}}}});
  const auto ps = small.find("points=\"");
  const auto two = small.substr(ps, small.find('"', ps + 8) - ps);
  double top = 1e9;
  for (size_t p = two.find(','); p != std::string::npos; p = two.find(',', p + 1)) {
    top = std::min(top, std::stod(two.substr(p + 1)));
  }
  EXPECT_NEAR(min_y, top, 1.0);  // the spike reaches the same height
}

}  // namespace
}  // namespace moco::io
