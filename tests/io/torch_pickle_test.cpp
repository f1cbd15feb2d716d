// Files written by Python's torch.save (Debian's python3-torch) read back:
// the official MoCo release layout in the zip and the legacy format, with an
// optimizer whose one-tensor group pickles its list with APPEND (which
// LibTorch 1.13's own unpickler rejects), and a torchvision state dict.
#include "io/torch_pickle.h"

#include <nlohmann/json.hpp>
#include <torch/serialize.h>

#include "../support.h"
#include "io/checkpoint.h"

namespace moco::io {
namespace {

class PythonFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::suite_scratch_dir("torch-files");
    const auto log = (dir_ / "py.log").string();
    const int rc = test::run_command(
        "/usr/bin/python3 '" + test::python_script("make_torch_files.py") +
            "' '" + dir_.string() + "'",
        log);
    ASSERT_EQ(rc, 0) << test::read_text(log);
    expected_ = nlohmann::json::parse(test::read_text(dir_ / "expected.json"));
  }
  static void check_state_dict(const c10::impl::GenericDict& sd,
                               const nlohmann::json& want) {
    ASSERT_EQ(sd.size(), want.size());
    for (const auto& [name, w] : want.items()) {
      auto it = sd.find(c10::IValue(name));
      ASSERT_NE(it, sd.end()) << name;
      const auto t = it->value().toTensor();
      EXPECT_EQ(t.sizes().vec(), w["shape"].get<std::vector<int64_t>>()) << name;
      EXPECT_NEAR(t.to(torch::kDouble).sum().item<double>(),
                  w["sum"].get<double>(), 1e-6 * (1 + std::fabs(w["sum"].get<double>())))
          << name;
    }
  }
  void check_release(const std::string& file) {
    const auto path = (dir_ / file).string();
    const auto ckpt = read_torch_file(path);
    EXPECT_EQ(dict_get(ckpt, "epoch", path).toInt(), 200);
    EXPECT_EQ(dict_get(ckpt, "arch", path).toStringRef(), "resnet18");
    check_state_dict(dict_get(ckpt, "state_dict", path).toGenericDict(),
                     expected_["release"]);
    const auto opt = dict_get(ckpt, "optimizer", path);
    const auto groups = dict_get(opt, "param_groups", path).toList();
    ASSERT_EQ(groups.size(), 2u);
    const auto g1 = static_cast<c10::IValue>(groups.get(1));
    const auto ids = dict_get(g1, "params", path).toList();
    ASSERT_EQ(ids.size(), 1u);
    EXPECT_EQ(static_cast<c10::IValue>(ids.get(0)).toInt(),
              expected_["group1_params"][0].get<int64_t>());
    EXPECT_DOUBLE_EQ(dict_get(g1, "lr", path).toDouble(), 0.5);
    const auto state = dict_get(opt, "state", path).toGenericDict();
    const auto last = state.at(c10::IValue(ids.get(0)));
    EXPECT_NEAR(dict_get(last, "momentum_buffer", path)
                    .toTensor().to(torch::kDouble).sum().item<double>(),
                expected_["momentum_last"].get<double>(), 1e-6);
  }
  static test::fs::path dir_;
  static nlohmann::json expected_;
};
test::fs::path PythonFiles::dir_;
nlohmann::json PythonFiles::expected_;

TEST_F(PythonFiles, OfficialReleaseLayoutZip) { check_release("release_zip.pth.tar"); }

TEST_F(PythonFiles, OfficialReleaseLayoutLegacyFormat) {
  check_release("release_legacy.pth.tar");
}

TEST_F(PythonFiles, ReadsWhatLibTorchsOwnUnpicklerRejects) {
  // Why io/torch_pickle exists: torch::pickle_load fails on this file (the
  // optimizer's one-tensor param group is pickled with APPEND) ...
  const auto path = dir_ / "release_zip.pth.tar";
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
  EXPECT_ANY_THROW(torch::pickle_load(bytes));
  // ... and ours reads that group's one-element list.
  const auto opt = dict_get(read_torch_file(path.string()), "optimizer", path.string());
  const auto groups = dict_get(opt, "param_groups", path.string()).toList();
  ASSERT_EQ(groups.size(), 2u);
  const auto g1 = static_cast<c10::IValue>(groups.get(1));
  EXPECT_EQ(dict_get(g1, "params", path.string()).toList().size(), 1u);
}

TEST_F(PythonFiles, TorchvisionStateDict) {
  const auto path = (dir_ / "torchvision_resnet18.pth").string();
  const auto sd = read_torch_file(path);
  ASSERT_TRUE(sd.isGenericDict());
  check_state_dict(sd.toGenericDict(), expected_["torchvision"]);
}

TEST_F(PythonFiles, OurOwnCheckpointsReadBack) {
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("w", torch::arange(6, torch::kFloat32).view({2, 3}).t());
  d.insert("ids", c10::List<int64_t>({1, 2, 3}));
  d.insert("one", c10::List<int64_t>({4}));
  d.insert("x", 2.5);
  const auto path = (dir_ / "ours.pth").string();
  save_pickle(path, d);
  const auto back = read_torch_file(path);
  EXPECT_TRUE(dict_get(back, "w", path).toTensor().equal(
      torch::arange(6, torch::kFloat32).view({2, 3}).t()));
  EXPECT_EQ(dict_get(back, "ids", path).toList().size(), 3u);
  EXPECT_EQ(dict_get(back, "one", path).toList().size(), 1u);
  EXPECT_DOUBLE_EQ(dict_get(back, "x", path).toDouble(), 2.5);
}

TEST_F(PythonFiles, TruncatedOrForeignFilesNameThePath) {
  for (const char* src : {"release_zip.pth.tar", "release_legacy.pth.tar"}) {
    auto bytes = test::read_text(dir_ / src);
    const auto cut = dir_ / (std::string("cut_") + src);
    test::write_file(cut, bytes.substr(0, bytes.size() / 2));
    const auto msg = test::error_message([&] { read_torch_file(cut.string()); });
    EXPECT_NE(msg.find(cut.string()), std::string::npos) << msg;
  }
  test::write_file(dir_ / "notes.txt", "hello, not a checkpoint\n");
  auto msg = test::error_message(
      [&] { read_torch_file((dir_ / "notes.txt").string()); });
  EXPECT_NE(msg.find("notes.txt"), std::string::npos) << msg;
  test::write_file(dir_ / "empty.pth", "");
  msg = test::error_message([&] { read_torch_file((dir_ / "empty.pth").string()); });
  EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  msg = test::error_message([&] { read_torch_file((dir_ / "nope.pth").string()); });
  EXPECT_NE(msg.find("not found"), std::string::npos) << msg;
}

}  // namespace
}  // namespace moco::io
