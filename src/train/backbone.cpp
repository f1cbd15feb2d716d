#include "train/backbone.h"

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <regex>
#include <set>

#include "core/log.h"
#include "core/text.h"
#include "data/dataset.h"
#include "data/eval_transform.h"
#include "io/checkpoint.h"
#include "io/tensor_files.h"

namespace moco::train {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) {
  return s.compare(0, p.size(), p) == 0;
}

}  // namespace

models::ResNetOptions infer_resnet_options(
    const std::map<std::string, torch::Tensor>& state, const std::string& path) {
  auto conv1 = state.find("conv1.weight");
  TORCH_CHECK(conv1 != state.end() && conv1->second.dim() == 4,
              "expected a ResNet backbone (conv1.weight) in ", path);
  const auto& w = conv1->second;
  std::array<int64_t, 4> blocks = {0, 0, 0, 0};
  static const std::regex layer_re(R"(^layer([1-4])\.(\d+)\.)");
  for (const auto& [name, t] : state) {
    std::smatch m;
    if (std::regex_search(name, m, layer_re)) {
      auto& b = blocks[std::stoi(m[1]) - 1];
      b = std::max<int64_t>(b, std::stoll(m[2]) + 1);
    }
  }
  const bool bottleneck = state.count("layer1.0.conv3.weight") > 0;
  std::string arch;
  if (blocks == std::array<int64_t, 4>{2, 2, 2, 2} && !bottleneck) arch = "resnet18";
  if (blocks == std::array<int64_t, 4>{3, 4, 6, 3}) {
    arch = bottleneck ? "resnet50" : "resnet34";
  }
  if (blocks == std::array<int64_t, 4>{3, 4, 23, 3} && bottleneck) arch = "resnet101";
  TORCH_CHECK(!arch.empty(), "unsupported ResNet layout in ", path, ": blocks ",
              blocks[0], "/", blocks[1], "/", blocks[2], "/", blocks[3],
              bottleneck ? " (bottleneck)" : " (basic)",
              "; expected ResNet-18, 34, 50 or 101");
  models::ResNetOptions o(arch);
  o.in_channels(w.size(1)).width(w.size(0)).small_stem(w.size(2) == 3);
  if (state.count("fc.0.weight")) {
    o.mlp(true);
  }
  return o;
}

CheckpointIdentity identify_checkpoint(const c10::impl::GenericDict& top) {
  auto has = [&](const char* key) { return top.contains(c10::IValue(key)); };
  c10::impl::GenericDict sd = top;
  if (has("state_dict") && top.at(c10::IValue("state_dict")).isGenericDict()) {
    sd = top.at(c10::IValue("state_dict")).toGenericDict();
  }
  auto any_name = [&](const std::string& prefix) {
    for (const auto& e : sd) {
      if (e.key().isString() && starts_with(e.key().toStringRef(), prefix)) return true;
    }
    return false;
  };
  CheckpointIdentity id;
  if (has("moco_options") || any_name("module.encoder_q.") || any_name("encoder_q.")) {
    id.kind = CheckpointKind::pretraining;
    std::string version = "MoCo";
    if (has("moco_options") && top.at(c10::IValue("moco_options")).isString()) {
      const auto j = nlohmann::json::parse(top.at(c10::IValue("moco_options")).toStringRef(),
                                           nullptr, false);
      if (j.is_object()) {
        const std::string mech = j.value("mechanism", std::string("moco"));
        version = mech != "moco" ? mech : j.value("mlp", false) ? "MoCo v2" : "MoCo v1";
      }
      id.name = "a " + version + " pretraining checkpoint (moco pretrain)";
    } else {
      id.name = "a MoCo pretraining checkpoint in the official layout (main_moco.py)";
    }
    id.takes = "pretrain --resume continues it; lincls, finetune, knn, embed and export "
               "take it as --pretrained";
  } else if (has("finetune_options") || has("optimizer_head")) {
    id.kind = CheckpointKind::finetuned;
    id.name = "a fine-tuned classifier (moco finetune)";
    id.takes = "finetune --resume continues it (with -e, evaluates it); knn, embed, export "
               "and lincls --pretrained take its backbone";
  } else if (any_name("module.")) {
    id.kind = CheckpointKind::linear_classifier;
    id.name = "a linear classifier (moco lincls, main_lincls.py)";
    id.takes = "lincls --resume continues it (with -e, evaluates it); its backbone is the "
               "pretraining checkpoint's, which --pretrained takes";
  } else {
    id.kind = CheckpointKind::state_dict;
    id.name = "a state dict (torchvision's, or a moco export)";
    id.takes = "lincls, finetune, knn and embed take it as --pretrained";
  }
  return id;
}

std::string resume_path(const std::string& given) {
  if (given.empty() || !fs::is_directory(given)) return given;
  const auto ckpt = (fs::path(given) / "checkpoint.pth.tar").string();
  TORCH_CHECK(fs::exists(ckpt), "--resume ", given, " is a folder without a ",
              "checkpoint.pth.tar (give the checkpoint file, or the run's folder)");
  log_info("--resume ", given, ": its checkpoint ", ckpt);
  return ckpt;
}

namespace {

struct CheckpointFile {
  std::map<std::string, torch::Tensor> tensors;
  int64_t crop = 0;  // Backbone::crop
  CheckpointIdentity identity;
};

// The crop a checkpoint's run recorded: lincls' and finetune's evaluation
// crop at the top, pretraining's resolved --crop-size in its moco_options.
int64_t recorded_crop(const c10::Dict<c10::IValue, c10::IValue>& dict) {
  auto top = dict.find(c10::IValue("crop_size"));
  if (top != dict.end() && top->value().isInt()) return top->value().toInt();
  auto opts = dict.find(c10::IValue("moco_options"));
  if (opts == dict.end() || !opts->value().isString()) return 0;
  const auto j = nlohmann::json::parse(opts->value().toStringRef(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("crop_size") ||
      !j["crop_size"].is_number_integer()) {
    return 0;
  }
  return std::max<int64_t>(0, j["crop_size"].get<int64_t>());
}

// Every named tensor of a checkpoint's state_dict, a state dict, or a
// .safetensors file (moco export writes both).
CheckpointFile read_checkpoint_file(const std::string& path) {
  const std::string lower = to_lower(path);
  if (ends_with(lower, ".safetensors")) {
    CheckpointFile file{io::read_safetensors(path), 0, {}};
    c10::impl::GenericDict names(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [k, v] : file.tensors) names.insert(k, v);
    file.identity = identify_checkpoint(names);
    return file;
  }
  c10::IValue top;
  try {
    top = io::load_pickle(path);
  } catch (const c10::Error& e) {
    // detectron2's .pkl is NumPy arrays under detectron2's names, for
    // detectron2; reading NumPy pickles would take an unpickler moco does
    // not carry, and the same weights come as .pth or .safetensors.
    TORCH_CHECK(!ends_with(lower, ".pkl"), path,
                " looks like a detectron2 export (.pkl), which moco does not read back: give "
                "the checkpoint itself, or `moco export` it as .pth or .safetensors (",
                e.what_without_backtrace(), ")");
    throw;
  }
  TORCH_CHECK(top.isGenericDict(), "expected a dict (a checkpoint or a state ",
              "dict) in ", path, ", got ", top.tagKind());
  auto dict = top.toGenericDict();
  c10::impl::GenericDict sd = dict;
  auto it = dict.find(c10::IValue("state_dict"));
  if (it != dict.end()) {
    TORCH_CHECK(it->value().isGenericDict(), "expected 'state_dict' to be a ",
                "dict in ", path);
    sd = it->value().toGenericDict();
  }
  CheckpointFile file;
  for (const auto& e : sd) {
    if (e.key().isString() && e.value().isTensor()) {
      file.tensors[e.key().toStringRef()] = e.value().toTensor();
    }
  }
  file.crop = recorded_crop(dict);
  file.identity = identify_checkpoint(dict);
  return file;
}

}  // namespace

Backbone load_backbone(const std::string& path) {
  const CheckpointFile file = read_checkpoint_file(path);
  const auto& all = file.tensors;
  TORCH_CHECK(!all.empty(), "no tensors found in ", path,
              " (expected a checkpoint with a state_dict, or a state dict)");
  Backbone b;
  b.path = path;
  b.crop = file.crop;
  b.identity = file.identity;
  std::string prefix;
  auto any_with = [&](const std::string& p) {
    for (const auto& [k, v] : all) {
      if (starts_with(k, p)) return true;
    }
    return false;
  };
  if (any_with("module.encoder_q.")) {
    prefix = "module.encoder_q.";
    b.kind = "MoCo pretraining checkpoint";
  } else if (any_with("encoder_q.")) {
    prefix = "encoder_q.";
    b.kind = "MoCo pretraining checkpoint";
  } else if (any_with("module.")) {
    prefix = "module.";
    b.kind = "classifier checkpoint";
  } else {
    b.kind = "state dict";
  }
  std::map<std::string, torch::Tensor> mapped;
  for (const auto& [k, v] : all) {
    if (!starts_with(k, prefix)) continue;
    const std::string name = k.substr(prefix.size());
    if (starts_with(name, "fc.")) {
      b.head[name] = v;
    } else {
      b.state[name] = v;
    }
  }
  for (const auto& [k, v] : b.head) mapped[k] = v;
  for (const auto& [k, v] : b.state) mapped[k] = v;
  b.options = infer_resnet_options(mapped, path);
  if (b.head.count("fc.weight")) {
    b.options.num_classes(b.head["fc.weight"].size(0));
  } else if (b.head.count("fc.2.weight")) {
    b.options.num_classes(b.head["fc.2.weight"].size(0));
  }
  const auto bad = io::non_finite_tensors({mapped.begin(), mapped.end()});
  if (!bad.empty()) {
    log_warn(path, ": ", bad.size(), " tensors hold NaN or infinity (first: '",
             bad[0], "'); the run that wrote them diverged, and what is ",
             "computed from them means nothing");
  }
  return b;
}

namespace {

// Copies every backbone tensor into net (all but fc.*), checking names and
// shapes both ways.
void load_backbone_into(models::ResNet& net, const Backbone& b) {
  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  auto restore = [&](const std::string& name, torch::Tensor& dst) {
    if (starts_with(name, "fc.")) return;
    auto it = b.state.find(name);
    TORCH_CHECK(it != b.state.end(), b.path, " has no ", name, " for a ",
                net->options().arch(),
                "; the checkpoint is for another architecture");
    TORCH_CHECK(it->second.sizes() == dst.sizes(), "shape mismatch for ", name,
                " in ", b.path, ": ", it->second.sizes(), " vs the model's ",
                dst.sizes());
    dst.copy_(it->second);
    used.insert(name);
  };
  for (auto& p : net->named_parameters()) restore(p.key(), p.value());
  for (auto& p : net->named_buffers()) restore(p.key(), p.value());
  for (const auto& [name, t] : b.state) {
    TORCH_CHECK(used.count(name), "unexpected tensor ", name, " in ", b.path,
                " for a ", net->options().arch());
  }
}

}  // namespace

models::ResNet make_classifier(const Backbone& b, int64_t num_classes) {
  auto opts = b.options;
  models::ResNet net(opts.num_classes(num_classes).mlp(false).bn_splits(1));
  load_backbone_into(net, b);
  torch::NoGradGuard no_grad;
  for (auto& p : net->named_parameters()) {
    if (p.key() == "fc.weight") p.value().normal_(0, 0.01);
    if (p.key() == "fc.bias") p.value().zero_();
  }
  return net;
}

models::ResNet make_encoder(const Backbone& b) {
  TORCH_CHECK(!b.head.empty(), "--head: ", b.path, " has no projection head");
  auto opts = b.options;
  models::ResNet net(opts.bn_splits(1));  // fc or MLP head as found
  load_backbone_into(net, b);
  torch::NoGradGuard no_grad;
  auto params = net->named_parameters();
  for (const auto& [k, v] : b.head) {
    TORCH_CHECK(params.contains(k), "unexpected head tensor ", k, " in ", b.path);
    params[k].copy_(v);
  }
  return net;
}

int64_t evaluation_crop(const Backbone* b, const data::ImageSet& set, int64_t given,
                        const std::string& command) {
  if (!set.on_disk()) return data::eval_crop(set);
  int64_t crop = given;
  std::string why = "--crop-size";
  if (crop <= 0 && b != nullptr && b->crop > 0) {
    crop = b->crop;
    why = "the crop " + b->path + " was trained at";
  }
  if (crop <= 0) {
    crop = data::eval_crop(set);
    why = data::small_stem_for(crop) ? "the images' own size" : "the official evaluation crop";
  }
  log_info(command, ": evaluation crop ", crop, " (", why, "), after a resize to ",
           data::resize_for_crop(crop));
  return crop;
}

void check_channels(const Backbone& b, const data::ImageSet& set,
                    const std::string& data) {
  TORCH_CHECK(b.options.in_channels() == set.channels(), b.path, " takes ",
              b.options.in_channels(), "-channel images, but ", data, " has ",
              set.channels(), " (see --channels)");
}

c10::impl::GenericDict prefixed_state_dict(const torch::nn::Module& module,
                                           const std::string& prefix) {
  c10::impl::GenericDict sd(c10::StringType::get(), c10::AnyType::get());
  for (const auto& p : module.named_parameters()) {
    sd.insert(prefix + p.key(), p.value().detach().cpu());
  }
  for (const auto& b : module.named_buffers()) {
    sd.insert(prefix + b.key(), b.value().cpu());
  }
  return sd;
}

std::vector<std::string> changed_backbone_tensors(const Backbone& b,
                                                  models::ResNet& net) {
  std::vector<std::string> changed;
  auto check = [&](const std::string& name, const torch::Tensor& t) {
    auto it = b.state.find(name);
    if (it == b.state.end()) return;
    if (!t.cpu().equal(it->second)) changed.push_back(name);
  };
  for (const auto& p : net->named_parameters()) check(p.key(), p.value());
  for (const auto& p : net->named_buffers()) check(p.key(), p.value());
  return changed;
}

}  // namespace moco::train
