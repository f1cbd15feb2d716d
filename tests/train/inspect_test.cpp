// moco inspect: a checkpoint's kind, network, position and the flags of
// its run, from checkpoints built here by hand and from a real pretraining.
#include "train/inspect.h"

#include "../support.h"
#include "io/checkpoint.h"
#include "models/resnet.h"
#include "train/backbone.h"

namespace moco::train {
namespace {

namespace fs = test::fs;

// A ResNet-18 (small stem, width 8, one channel) saved under `prefix`
// with the given entries beside its state_dict.
std::string save_checkpoint(const fs::path& path, const std::string& prefix, bool mlp,
                            int64_t outputs, c10::impl::GenericDict extra) {
  models::ResNet net(models::ResNetOptions("resnet18")
                         .small_stem(true)
                         .width(8)
                         .in_channels(1)
                         .mlp(mlp)
                         .num_classes(outputs));
  extra.insert("state_dict", prefixed_state_dict(*net, prefix));
  io::save_pickle(path.string(), extra);
  return path.string();
}

TEST(Inspect, PretrainingCheckpointGivesItsPlaceAndChangedFlags) {
  const auto dir = test::scratch_dir("pretrain");
  auto extra = io::new_dict();
  extra.insert("epoch", int64_t{6});
  extra.insert("epoch_step", int64_t{5});
  extra.insert("global_step", int64_t{2814});
  // Saved as pretraining saves them: every flag, most at their default.
  extra.insert("moco_options",
               options_to_json(PretrainOptions().arch("resnet18").epochs(6).moco_k(4096).mlp(true))
                   .dump());
  InspectOptions o;
  o.checkpoint(save_checkpoint(dir / "c.pth.tar", "module.encoder_q.", true, 128, extra));
  const auto s = inspect_checkpoint(o);
  EXPECT_EQ(s.kind, "MoCo pretraining checkpoint");
  EXPECT_EQ(s.identity, "a MoCo v2 pretraining checkpoint (moco pretrain)");
  EXPECT_EQ(s.network, "resnet18 (small-image stem), width 8, 1 channel, MLP head of 128 outputs");
  EXPECT_EQ(s.epoch, 6);
  EXPECT_EQ(s.epoch_step, 5);
  EXPECT_EQ(s.global_step, 2814);
  EXPECT_FALSE(s.best_acc1.has_value());
  EXPECT_EQ(s.command, "pretrain");
  // The table's order, each flag spelled as the command line takes it.
  EXPECT_EQ(s.flags, (std::vector<std::string>{"--arch", "resnet18", "--epochs", "6", "--moco-k",
                                               "4096", "--mlp"}));
}

TEST(Inspect, ClassifierAndStateDict) {
  const auto dir = test::scratch_dir("classifier");
  auto extra = io::new_dict();
  extra.insert("epoch", int64_t{3});
  extra.insert("best_acc1", 81.5);
  extra.insert("finetune_options",
               options_to_json(FinetuneOptions().lr(0.05).label_fraction(0.1)).dump());
  InspectOptions o;
  o.checkpoint(save_checkpoint(dir / "f.pth.tar", "module.", false, 10, extra));
  auto s = inspect_checkpoint(o);
  EXPECT_EQ(s.kind, "classifier checkpoint");
  EXPECT_EQ(s.identity, "a fine-tuned classifier (moco finetune)");
  EXPECT_EQ(s.network, "resnet18 (small-image stem), width 8, 1 channel, fc of 10 outputs");
  EXPECT_EQ(s.epoch, 3);
  EXPECT_DOUBLE_EQ(*s.best_acc1, 81.5);
  EXPECT_EQ(s.command, "finetune");
  EXPECT_EQ(s.flags, (std::vector<std::string>{"--lr", "0.05", "--label-fraction", "0.1"}));

  // A bare state dict: a network, nothing else.
  models::ResNet net(models::ResNetOptions("resnet18").small_stem(true).width(8).in_channels(1));
  io::save_pickle((dir / "sd.pth").string(), prefixed_state_dict(*net, ""));
  o.checkpoint((dir / "sd.pth").string());
  s = inspect_checkpoint(o);
  EXPECT_EQ(s.kind, "state dict");
  EXPECT_EQ(s.identity, "a state dict (torchvision's, or a moco export)");
  EXPECT_NE(s.takes.find("take it as --pretrained"), std::string::npos);
  EXPECT_FALSE(s.epoch.has_value());
  EXPECT_TRUE(s.command.empty());
}

TEST(Inspect, DamagedSavedFlagsNameTheCheckpoint) {
  const auto dir = test::scratch_dir("damaged");
  auto extra = io::new_dict();
  extra.insert("moco_options", std::string("{not json"));
  InspectOptions o;
  o.checkpoint(save_checkpoint(dir / "bad.pth.tar", "module.encoder_q.", false, 128, extra));
  const auto msg = test::error_message([&] { inspect_checkpoint(o); });
  EXPECT_NE(msg.find("bad.pth.tar"), std::string::npos) << msg;
  EXPECT_NE(msg.find("moco_options"), std::string::npos) << msg;
  const auto r = test::run_moco("inspect '" + (dir / "missing.pth.tar").string() + "'", dir);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("missing.pth.tar"), std::string::npos) << r.out;
}

TEST(Inspect, ARealRunSaysWhatItWasGiven) {
  const auto dir = test::scratch_dir("run");
  fs::create_directories(dir / "data");
  test::write_idx_dataset(dir / "data", 32, 8, 4);
  auto r = test::run_moco("pretrain '" + (dir / "data").string() +
                              "' -a resnet18 --width 8 --max-steps 2" + test::kTinyRun + "'" +
                              (dir / "run").string() + "'",
                          dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  r = test::run_moco("inspect '" + (dir / "run" / "checkpoint.pth.tar").string() + "'", dir);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find(": a MoCo v1 pretraining checkpoint (moco pretrain)"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("taken by: pretrain --resume continues it"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("network: resnet18 (small-image stem), width 8, 1 channel"),
            std::string::npos)
      << r.out;
  // --max-steps 2 stops inside the first epoch.
  EXPECT_NE(r.out.find("resumes at: epoch 0, 2 steps into it (global step 2)"),
            std::string::npos)
      << r.out;
  for (const char* flag : {" --arch resnet18", " --width 8", " --moco-k 16", " --batch-size 8", " --max-steps 2"}) {
    EXPECT_NE(r.out.find(flag), std::string::npos) << flag << "\n" << r.out;
  }
}

}  // namespace
}  // namespace moco::train
