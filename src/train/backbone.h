// Backbones from checkpoints: ours, the official MoCo releases
// (module.encoder_q.*), main_lincls.py's (module.*), and torchvision state
// dicts, in torch.save's zip or legacy format. The architecture is read off
// the tensors' names and shapes, so no --arch is needed.
//
//   auto b = moco::train::load_backbone("moco_v2_800ep_pretrain.pth.tar");
//   b.options.arch();                      // "resnet50"
//   models::ResNet net = make_classifier(b, /*num_classes=*/10);
#pragma once

#include <ATen/core/Dict.h>
#include <torch/nn/module.h>
#include <torch/types.h>

#include <map>
#include <string>
#include <vector>

#include "models/resnet.h"

namespace moco::data {
struct ImageSet;
}

namespace moco::train {

// What a checkpoint file is, read off its keys (no tensors built), so that
// a file given to the wrong command or flag is named for what it is.
enum class CheckpointKind { pretraining, linear_classifier, finetuned, state_dict };
struct CheckpointIdentity {
  CheckpointKind kind = CheckpointKind::state_dict;
  std::string name;   // "a MoCo v2 pretraining checkpoint (moco pretrain)"
  std::string takes;  // which commands and flags take it
};
// `top`: what the file holds (a checkpoint's dict, or a state dict).
CheckpointIdentity identify_checkpoint(const c10::impl::GenericDict& top);

// --resume DIR: a run's folder stands for DIR/checkpoint.pth.tar (logged);
// anything else is returned as given.
std::string resume_path(const std::string& given);

struct Backbone {
  models::ResNetOptions options;                // as found (fc / MLP head)
  std::map<std::string, torch::Tensor> state;   // torchvision names, no fc.*
  std::map<std::string, torch::Tensor> head;    // fc.* as found, maybe empty
  std::string kind;  // "MoCo pretraining", "linear classifier", "state dict"
  std::string path;
  CheckpointIdentity identity;
  // The crop of image files the checkpoint's run trained or evaluated at
  // (pretraining's resolved --crop-size; lincls' and finetune's evaluation
  // crop); 0 when the file does not say (state dicts, the official releases).
  int64_t crop = 0;
};

Backbone load_backbone(const std::string& path);

// arch, stem, width, input channels and head from the tensors' names and
// shapes; errors name `path`.
models::ResNetOptions infer_resnet_options(
    const std::map<std::string, torch::Tensor>& state, const std::string& path);

// A ResNet with the backbone's weights and a new fc of num_classes outputs
// (N(0, 0.01) weights, zero bias, as main_lincls.py). Every backbone tensor
// must match the model's, by name and shape.
models::ResNet make_classifier(const Backbone& b, int64_t num_classes);

// The backbone with its projection head as the checkpoint holds it (fc or
// the MLP head), for features after the head.
models::ResNet make_encoder(const Backbone& b);

// The evaluation crop of image files for a network from `b` (nullptr:
// trained from scratch): --crop-size when `given` > 0, else the crop the
// checkpoint's run used, else data::eval_crop(set). In-memory images are
// used at their own size whatever it says. Logs the choice for image files.
int64_t evaluation_crop(const Backbone* b, const data::ImageSet& set, int64_t given,
                        const std::string& command);

// Stops with a message naming the checkpoint and --channels unless the
// backbone takes the dataset's number of channels.
void check_channels(const Backbone& b, const data::ImageSet& set,
                    const std::string& data);

// The backbone's tensors that differ from `net`'s (main_lincls.py's
// sanity_check): empty when the backbone was left unchanged.
std::vector<std::string> changed_backbone_tensors(const Backbone& b,
                                                  models::ResNet& net);

// A module's parameters and buffers (on the CPU) as a state dict with
// `prefix` before each name ("module." for the official layouts).
c10::impl::GenericDict prefixed_state_dict(const torch::nn::Module& module,
                                           const std::string& prefix);

}  // namespace moco::train
