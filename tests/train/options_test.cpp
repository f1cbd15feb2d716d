// The argument table: every flag once, presets as overrides of it, the
// checkpoint's saved options and --resume reading them back.
#include "train/options.h"

#include "train/commands.h"

#include "../support.h"

namespace moco::train {
namespace {

TEST(Options, EveryFlagIsDeclaredOncePerCommand) {
  std::vector<std::string> names;
  std::apply([&](const auto&... row) { (names.push_back(row.name), ...); }, commands());
  EXPECT_EQ(names.size(), 12u);
  for (const std::string& c : names) {
    std::set<std::string> keys;
    for (const Arg& a : arg_table()) {
      if (std::find(a.commands.begin(), a.commands.end(), c) == a.commands.end()) continue;
      EXPECT_TRUE(keys.insert(a.key()).second) << a.flag() << " twice for " << c;
    }
    EXPECT_FALSE(keys.empty()) << c;
  }
  // Shared flags are one entry: --device serves four commands.
  const Arg* device = find_arg("knn", "--device");
  ASSERT_NE(device, nullptr);
  EXPECT_EQ(device, find_arg("pretrain", "device"));
  EXPECT_EQ(device, find_arg("lincls", "device"));
  EXPECT_EQ(find_arg("knn", "--moco-k"), nullptr);
  // A flag binds the member of each of its commands' options, and of no
  // other command's.
  EXPECT_NE(device->field<KnnCommandOptions>(), nullptr);
  EXPECT_EQ(device->field<ReportOptions>(), nullptr);
}

TEST(Options, ValidateNamesTheFlagAndWhatItExpects) {
  auto msg = test::error_message([] { validate_flags(PretrainOptions().moco_m(1.0)); });
  EXPECT_NE(msg.find("expected --moco-m in [0, 1), got 1"), std::string::npos) << msg;
  msg = test::error_message([] { validate_flags(PretrainOptions().moco_t(INFINITY)); });
  EXPECT_NE(msg.find("--moco-t"), std::string::npos) << msg;
  msg = test::error_message([] { validate_flags(PretrainOptions().amp("fp8")); });
  EXPECT_NE(msg.find("expected --amp one of off, bf16, fp16, auto, got 'fp8'"),
            std::string::npos) << msg;
  msg = test::error_message([] { validate_flags(LinclsOptions().lr(-1)); });
  EXPECT_NE(msg.find("--lr"), std::string::npos) << msg;
  EXPECT_NO_THROW(validate_flags(PretrainOptions()));
}

TEST(Options, PresetsOverrideTheirBaseAndOnlyFlagsNotGiven) {
  PretrainOptions quick;
  apply_preset("quick", {"moco_k"}, quick.moco_k(100));
  EXPECT_EQ(quick.arch(), "resnet18");   // from its base, cifar
  EXPECT_EQ(quick.width(), 16);          // its own
  EXPECT_EQ(quick.batch_size(), 128);    // its own over cifar's 512
  EXPECT_EQ(quick.moco_k(), 100);        // given
  EXPECT_FALSE(quick.blur());
  PretrainOptions cifar;
  apply_preset("cifar", {}, cifar);
  EXPECT_EQ(cifar.batch_size(), 512);
  EXPECT_EQ(cifar.width(), 64);
  EXPECT_EQ(resolve_preset("auto", false), "quick");
  EXPECT_EQ(resolve_preset("auto", true), "none");
}

TEST(Options, CheckpointSavesEveryFlagAndResumeRestoresTheRecipe) {
  const auto run = PretrainOptions().arch("resnet18").lr(0.5).knn_init(true)
                       .progress(false).threads(3).dist_url("tcp://h:1");
  const auto saved = options_to_json(run);
  for (const char* key : {"arch", "lr", "knn_init", "progress", "threads",
                          "dist_url", "shuffle_bn", "amp"}) {
    EXPECT_TRUE(saved.contains(key)) << key;
  }
  PretrainOptions resumed;
  resumed.lr(0.1).threads(1).epochs(400);
  const auto changed = restore_options(saved, {"lr", "threads", "epochs"}, resumed);
  EXPECT_EQ(resumed.arch(), "resnet18");  // restored
  EXPECT_TRUE(resumed.knn_init());
  EXPECT_EQ(resumed.lr(), 0.1);           // given: kept, and reported
  EXPECT_EQ(resumed.threads(), 1);
  EXPECT_TRUE(resumed.progress());        // machine/invocation: not restored
  EXPECT_EQ(resumed.dist_url(), "");
  ASSERT_EQ(changed.size(), 2u);
  EXPECT_EQ(changed[0].text, "--epochs (200 -> 400)");  // table order
  EXPECT_TRUE(changed[0].allowed);
  EXPECT_EQ(changed[1].text, "--lr (0.5 -> 0.1)");
  EXPECT_FALSE(changed[1].allowed);                   // needs --override
}

}  // namespace
}  // namespace moco::train
