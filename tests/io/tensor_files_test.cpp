// .safetensors read back: what moco writes round-trips, and a header that
// lies about offsets, shapes or sizes is a clear error naming the file.
#include "io/tensor_files.h"

#include "../support.h"

namespace moco::io {
namespace {

namespace fs = test::fs;

TEST(TensorFiles, SafetensorsRoundTripEveryDtype) {
  const auto dir = test::scratch_dir("st");
  const auto path = (dir / "a.safetensors").string();
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"w", torch::randn({3, 4})},
      {"d", torch::randn({2}, torch::kFloat64)},
      {"i", torch::arange(5)},
      {"h", torch::randn({2, 2}).to(torch::kBFloat16)},
      {"b", torch::tensor({true, false})},
      {"empty", torch::empty({0, 3})}};
  write_safetensors(path, tensors, {{"format", "pt"}});
  const auto back = read_safetensors(path);
  ASSERT_EQ(back.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    ASSERT_TRUE(back.count(name)) << name;
    EXPECT_EQ(back.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(back.at(name).equal(t)) << name;
  }
}

TEST(TensorFiles, SafetensorsHeadersThatLieAreRefused) {
  const auto dir = test::scratch_dir("lies");
  auto file = [&](const std::string& header, const std::string& data) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    const auto p = (dir / "x.safetensors").string();
    test::write_file(p, out + header + data);
    return p;
  };
  struct Case {
    std::string header, data, why;
  };
  for (const auto& c : std::vector<Case>{
           {R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", "1234", "outside"},
           {R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", "12345678", "hold 8 bytes for 3"},
           {R"({"w": {"dtype": "F32", "shape": [1099511627775, 1099511627775], "data_offsets": [0, 8]}})", "12345678", "larger than the file"},
           {R"({"w": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}})", "12345678", "not one moco reads"},
           {R"({"w": 3})", "", "tensor 'w'"},
           {R"(not json)", "", "not JSON"}}) {
    const auto p = file(c.header, c.data);
    const auto msg = test::error_message([&] { read_safetensors(p); });
    EXPECT_NE(msg.find(c.why), std::string::npos) << c.header << ": " << msg;
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
  }
  // A length that claims more than the file.
  const auto p = (dir / "len.safetensors").string();
  test::write_file(p, std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10));
  const auto msg = test::error_message([&] { read_safetensors(p); });
  EXPECT_NE(msg.find("header claims"), std::string::npos) << msg;
}

}  // namespace
}  // namespace moco::io
