// Files written by Python's torch.save (Debian's python3-torch) read back:
// the official MoCo release layout in the zip and the legacy format, with an
// optimizer whose one-tensor group pickles its list with APPEND (which
// LibTorch 1.13's own unpickler rejects), and a torchvision state dict.
#include "io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

#include <nlohmann/json.hpp>

#include <torch/version.h>

#include "../support.h"
#include "io/checkpoint.h"

namespace moco::io {
namespace {

using namespace std::string_literals;

class PythonFiles : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = test::suite_scratch_dir("torch-files");
    const auto log = (dir_ / "py.log").string();
    const int rc = test::run_command(
        test::python() + " '" + test::python_script("make_torch_files.py") +
            "' '" + dir_.string() + "'",
        log);
    // A failure here would only skip the suite's tests (ctest counts them
    // as passed): each test fails on it instead.
    if (rc != 0) {
      setup_error_ = "python reference failed:\n" + test::read_text(log);
      return;
    }
    expected_ = nlohmann::json::parse(test::read_text(dir_ / "expected.json"));
  }
  void SetUp() override { ASSERT_TRUE(setup_error_.empty()) << setup_error_; }
  static std::string setup_error_;
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
std::string PythonFiles::setup_error_;
nlohmann::json PythonFiles::expected_;

TEST_F(PythonFiles, OfficialReleaseLayoutZip) { check_release("release_zip.pth.tar"); }

TEST_F(PythonFiles, OfficialReleaseLayoutLegacyFormat) {
  check_release("release_legacy.pth.tar");
}

TEST_F(PythonFiles, ReadsWhatLibTorchsOwnUnpicklerRejects) {
  // Why io/torch_pickle exists: 1.13's torch::pickle_load fails on this file
  // (the optimizer's one-tensor param group is pickled with APPEND); 2.x's
  // reads it (ours stays for the checks it makes on hostile files) ...
  const auto path = dir_ / "release_zip.pth.tar";
  std::ifstream in(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                          std::istreambuf_iterator<char>());
#if TORCH_VERSION_MAJOR < 2
  EXPECT_ANY_THROW(torch::pickle_load(bytes));
#else
  EXPECT_TRUE(torch::pickle_load(bytes).isGenericDict());
#endif
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

// ---- Hostile files: each failed (crash or wrong) before the reader checked
// it.
//
// Pickles written by hand, opcode by opcode, as the protocol defines them;
// each valid one is read back first so that the hostile variant differs in
// the one place under test.
namespace hostile {

namespace fs = test::fs;

std::string str(const std::string& v) {  // SHORT_BINUNICODE
  return "\x8c" + std::string(1, static_cast<char>(v.size())) + v;
}
std::string i8(int v) { return "K" + std::string(1, static_cast<char>(v)); }
std::string i64(int64_t v) {  // LONG1, 8 bytes
  std::string b = "\x8a\x08";
  for (int i = 0; i < 8; ++i)
    b += static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff);
  return b;
}
// torch._utils._rebuild_tensor_v2(storage '0' of `numel` floats, offset,
// size, stride, False, OrderedDict()) as torch.save pickles a tensor.
std::string tensor_pickle(const std::string& numel, const std::string& offset,
                          const std::string& size, const std::string& stride) {
  return std::string("\x80\x02") + "ctorch._utils\n_rebuild_tensor_v2\n(" +
         "(" + str("storage") + "ctorch\nFloatStorage\n" + str("0") +
         str("cpu") + numel + "tQ" + offset + "(" + size + "t(" + stride +
         "t\x89" + "ccollections\nOrderedDict\n)RtR.";
}
// A torch.save zip holding `pkl` as data.pkl and `storage` as data/0.
void write_zip(const fs::path& path, const std::string& pkl,
               const std::string& storage = std::string(24, '\0')) {
  caffe2::serialize::PyTorchStreamWriter w(path.string());
  w.writeRecord("data.pkl", pkl.data(), pkl.size());
  w.writeRecord("data/0", storage.data(), storage.size());
  w.writeEndOfFile();
}
// The legacy format: magic, protocol, sys info, the object, its storage keys,
// then each storage as an int64 count and its bytes.
void write_legacy(const fs::path& path, const std::string& object_pkl,
                  int64_t numel = 6) {
  std::string f = "\x80\x02\x8a\x0a";
  for (int b : {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19}) {
    f += static_cast<char>(b);
  }
  f += ".\x80\x02M\xe9\x03.\x80\x02}.";
  f += object_pkl;
  f += "\x80\x02(" + str("0") + "l.";
  f += std::string(reinterpret_cast<const char*>(&numel), 8);
  for (int i = 0; i < 6; ++i) {
    const float v = static_cast<float>(i);
    f += std::string(reinterpret_cast<const char*>(&v), 4);
  }
  test::write_file(path, f);
}
std::string arange6() {
  std::string b;
  for (int i = 0; i < 6; ++i) {
    const float v = static_cast<float>(i);
    b += std::string(reinterpret_cast<const char*>(&v), 4);
  }
  return b;
}

}  // namespace hostile

namespace fs = test::fs;

class HostileFiles : public ::testing::Test {
 protected:
  // The error read_torch_file gives for `path`; it must name the file.
  std::string error_of(const fs::path& path) {
    const auto msg =
        test::error_message([&] { read_torch_file(path.string()); });
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    return msg;
  }
  fs::path dir_ = test::scratch_dir("hostile");
};

TEST_F(HostileFiles, MemoOpcodesOnAnEmptyStack) {
  for (const std::string op :
       {"q\x00"s, "r\x00\x00\x00\x00"s, std::string("\x94")}) {
    const std::string pkl = "\x80\x02" + op + ".";
    hostile::write_legacy(dir_ / "memo.pth", pkl);
    EXPECT_NE(error_of(dir_ / "memo.pth").find("stack underflow"),
              std::string::npos);
    hostile::write_zip(dir_ / "memo.zip", pkl);
    EXPECT_NE(error_of(dir_ / "memo.zip").find("stack underflow"),
              std::string::npos);
  }
}

TEST_F(HostileFiles, NestingIsCappedNotAStackOverflow) {
  const int n = 1000000;
  const std::string tuples = "\x80\x02)" + std::string(n, '\x85') + ".";
  const std::string lists =
      "\x80\x02" + std::string(n, '(') + std::string(n, 'l') + ".";
  for (const auto& pkl : {tuples, lists}) {
    hostile::write_legacy(dir_ / "deep.pth", pkl);
    EXPECT_NE(error_of(dir_ / "deep.pth").find("nested deeper than 1000"),
              std::string::npos);
    hostile::write_zip(dir_ / "deep.zip", pkl);
    EXPECT_NE(error_of(dir_ / "deep.zip").find("nested deeper than 1000"),
              std::string::npos);
  }
  // 999 levels inside a dict are still read (Python pickles up to ~1000).
  const std::string ok =
      "\x80\x02}" + hostile::str("x") + ")" + std::string(998, '\x85') + "s.";
  hostile::write_zip(dir_ / "ok.zip", ok);
  auto v = dict_get(read_torch_file((dir_ / "ok.zip").string()), "x", "ok");
  int depth = 0;
  while (v.isTuple() && !v.toTupleRef().elements().empty()) {
    v = v.toTupleRef().elements()[0];
    ++depth;
  }
  EXPECT_EQ(depth, 998);
}

TEST_F(HostileFiles, ListsThatContainThemselvesAreRefused) {
  // l = []; l.append(l)  and  a = []; b = [a]; a.append(b)
  hostile::write_zip(dir_ / "self.zip",
                     "\x80\x02]q\x00h\x00"
                     "a."s);
  EXPECT_NE(error_of(dir_ / "self.zip").find("containing itself"),
            std::string::npos);
  hostile::write_zip(dir_ / "cycle.zip",
                     "\x80\x02]q\x00]q\x01h\x00"
                     "ah\x00h\x01"
                     "a."s);
  EXPECT_NE(error_of(dir_ / "cycle.zip").find("recursive"), std::string::npos);
}

TEST_F(HostileFiles, TensorSizeStrideAndOffsetAreChecked) {
  using namespace hostile;
  const std::string six = i8(6), zero = i8(0);
  const std::string size23 = i8(2) + i8(3), stride31 = i8(3) + i8(1);
  // The valid tensor, in both formats.
  write_zip(dir_ / "good.zip", tensor_pickle(six, zero, size23, stride31),
            arange6());
  write_legacy(dir_ / "good.pth", tensor_pickle(six, zero, size23, stride31));
  for (const char* f : {"good.zip", "good.pth"}) {
    const auto t = read_torch_file((dir_ / f).string()).toTensor();
    EXPECT_TRUE(t.equal(torch::arange(6, torch::kFloat32).view({2, 3}))) << f;
  }
  struct Case {
    const char* name;
    std::string pkl;
    const char* says;
  };
  const std::vector<Case> cases = {
      {"short_stride", tensor_pickle(six, zero, size23, i8(1)),
       "stride 1 dims"},
      {"offset", tensor_pickle(six, i8(1), size23, stride31),
       "larger than its storage"},
      {"negative_offset",
       tensor_pickle(six, "J\xff\xff\xff\xff", size23, stride31), "offset -1"},
      {"overflow",
       tensor_pickle(six, zero, i64(int64_t{1} << 62) + i8(2),
                     i64(int64_t{1} << 62) + i8(1)),
       "overflow"},
      {"negative_size",
       tensor_pickle(six, zero, "J\xfe\xff\xff\xff" + i8(3), stride31),
       "negative size"},
      {"float_size",
       tensor_pickle(six, zero, "G@\x00\x00\x00\x00\x00\x00\x00"s + i8(3),
                     stride31),
       "not an integer"},
      {"huge_storage",
       tensor_pickle(i64(int64_t{1} << 60), zero, size23, stride31),
       "1152921504606846976"},
      {"negative_storage",
       tensor_pickle("J\xff\xff\xff\xff", zero, size23, stride31),
       "-1 elements"},
  };
  for (const auto& c : cases) {
    write_zip(dir_ / (std::string(c.name) + ".zip"), c.pkl, arange6());
    auto msg = error_of(dir_ / (std::string(c.name) + ".zip"));
    EXPECT_NE(msg.find(c.says), std::string::npos) << c.name << ": " << msg;
    write_legacy(dir_ / (std::string(c.name) + ".pth"), c.pkl);
    msg = error_of(dir_ / (std::string(c.name) + ".pth"));
    EXPECT_NE(msg.find(c.says), std::string::npos) << c.name << ": " << msg;
  }
}

TEST_F(HostileFiles, NonStringGlobalsAndKeys) {
  // STACK_GLOBAL of two integers; a legacy key list holding an integer.
  hostile::write_zip(dir_ / "sg.zip", "\x80\x02K\x01K\x02\x93.");
  EXPECT_NE(error_of(dir_ / "sg.zip").find("STACK_GLOBAL"), std::string::npos);
  // {[]: 1}: c10's dict threw std::runtime_error hashing the list, which
  // ended the program (found by fuzz_torch_file).
  hostile::write_legacy(dir_ / "key.pth", "\x80\x02}(]K\x01u.");
  EXPECT_NE(error_of(dir_ / "key.pth").find("a dict key of type GenericList"),
            std::string::npos);
}

}  // namespace
}  // namespace moco::io
