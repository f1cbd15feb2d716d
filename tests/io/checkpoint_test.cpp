#include "io/checkpoint.h"

#include <sys/resource.h>

#include <csignal>

#include "../support.h"

namespace moco::io {

TEST(Checkpoint, PickleRoundTripKeepsNestedValues) {
  auto dir = test::scratch_dir("rt");
  c10::impl::GenericDict inner(c10::StringType::get(), c10::AnyType::get());
  inner.insert("w", torch::arange(6).view({2, 3}).to(torch::kFloat32));
  c10::impl::GenericDict top(c10::StringType::get(), c10::AnyType::get());
  top.insert("epoch", int64_t{7});
  top.insert("arch", std::string("resnet18"));
  top.insert("state_dict", inner);
  save_pickle((dir / "c.pth").string(), top);
  auto back = load_pickle((dir / "c.pth").string());
  EXPECT_EQ(dict_get(back, "epoch", "c").toInt(), 7);
  EXPECT_EQ(dict_get(back, "arch", "c").toStringRef(), "resnet18");
  auto w = dict_get(dict_get(back, "state_dict", "c"), "w", "c").toTensor();
  EXPECT_TRUE(w.equal(torch::arange(6).view({2, 3}).to(torch::kFloat32)));
  EXPECT_FALSE(test::fs::exists(dir / "c.pth.tmp"));
}

TEST(Checkpoint, FailedWriteKeepsThePreviousFile) {
  auto dir = test::scratch_dir("keep");
  const auto path = (dir / "checkpoint.pth.tar").string();
  atomic_write(path, std::string("good"));
  // Make the temporary path unusable: a directory stands where it would go.
  test::fs::create_directories(path + ".tmp");
  EXPECT_THROW(atomic_write(path, std::string("new")), c10::Error);
  EXPECT_EQ(test::read_text(path), "good");
}

TEST(Checkpoint, FullDiskIsAnErrorNamingTheFile) {
  // A write that fails part way, as on a full disk: RLIMIT_FSIZE makes
  // write() fail (EFBIG) past 4 kB, the way ENOSPC does. (A link to
  // /dev/full planted at the .tmp name would not do: the link is replaced,
  // never written through.)
  auto dir = test::scratch_dir("full");
  const auto path = (dir / "ckpt").string();
  atomic_write(path, std::string("good"));
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* const previous = std::signal(SIGXFSZ, SIG_IGN);
  auto fail_past_4k = [&](auto&& f) {
    rlimit small = old;
    small.rlim_cur = 4096;
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
    f();
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &old), 0);
  };
  std::string msg;
  fail_past_4k([&] {
    msg = test::error_message([&] { atomic_write(path, std::string(1 << 16, 'x')); });
  });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("previous file is kept"), std::string::npos) << msg;
  EXPECT_EQ(test::read_text(path), "good");
  EXPECT_FALSE(test::fs::exists(path + ".tmp"));
  // A first write that fails does not speak of a previous file (it once did).
  const auto fresh = (dir / "fresh").string();
  fail_past_4k([&] {
    msg = test::error_message([&] { atomic_write(fresh, std::string(1 << 16, 'x')); });
  });
  EXPECT_NE(msg.find("nothing was written"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("previous file"), std::string::npos) << msg;
  EXPECT_FALSE(test::fs::exists(fresh));
  std::signal(SIGXFSZ, previous);
}

TEST(Checkpoint, NonCheckpointAndTruncatedFilesAreClearErrors) {
  auto dir = test::scratch_dir("bad");
  const auto junk = (dir / "junk.pth").string();
  atomic_write(junk, std::string("this is not a checkpoint"));
  try {
    load_pickle(junk);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find(junk),
              std::string::npos);
  }
  c10::impl::GenericDict d(c10::StringType::get(), c10::AnyType::get());
  d.insert("x", torch::randn({100}));
  const auto good = (dir / "good.pth").string();
  save_pickle(good, d);
  auto bytes = test::read_text(good);
  const auto cut = (dir / "cut.pth").string();
  atomic_write(cut, bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(load_pickle(cut), c10::Error);
  EXPECT_THROW(load_pickle((dir / "missing.pth").string()), c10::Error);
}

}  // namespace moco::io
