#include "train/inspect.h"

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/text.h"
#include "io/checkpoint.h"
#include "train/backbone.h"

namespace moco::train {

namespace {

// The saved flags of O's command (moco_options, finetune_options) that
// differ from O's defaults, as command-line words in the table's order.
template <class O>
std::vector<std::string> changed_flags(const nlohmann::json& saved) {
  const O defaults;
  std::vector<std::string> words;
  for (const Arg& a : arg_table()) {
    const auto* f = a.field<O>();
    if (f == nullptr || !saved.contains(a.key())) continue;
    const args::Value v = args::from_json(saved[a.key()], f->get(defaults), a.flag());
    if (v == f->get(defaults)) continue;
    const auto w = flag_words(a, v);
    words.insert(words.end(), w.begin(), w.end());
  }
  return words;
}

nlohmann::json saved_json(const c10::impl::GenericDict& top, const std::string& key,
                          const std::string& path) {
  const auto& v = top.at(c10::IValue(key));
  TORCH_CHECK(v.isString(), "expected '", key, "' to be a JSON string in ", path);
  try {
    return nlohmann::json::parse(v.toStringRef());
  } catch (const std::exception& e) {
    TORCH_CHECK(false, "checkpoint ", path, ": its ", key, " are not JSON (", e.what(), ")");
  }
}

}  // namespace

CheckpointSummary inspect_checkpoint(const InspectOptions& o) {
  const std::string& path = o.checkpoint();
  const Backbone b = load_backbone(path);
  CheckpointSummary s;
  s.kind = b.kind;
  s.identity = b.identity.name;
  s.takes = b.identity.takes;
  const auto& net = b.options;
  s.network = fmt::format("{}{}, width {}, {} channel{}", net.arch(),
                          net.small_stem() ? " (small-image stem)" : "", net.width(),
                          net.in_channels(), net.in_channels() == 1 ? "" : "s");
  if (net.mlp()) {
    s.network += fmt::format(", MLP head of {} outputs", net.num_classes());
  } else if (b.head.count("fc.weight")) {
    s.network += fmt::format(", fc of {} outputs", net.num_classes());
  }
  // A .safetensors export holds tensors only: no epoch, no flags.
  if (ends_with(to_lower(path), ".safetensors")) return s;
  const auto top_value = io::load_pickle(path);
  if (!top_value.isGenericDict()) return s;
  const auto top = top_value.toGenericDict();
  const auto has = [&](const char* key) { return top.contains(c10::IValue(key)); };
  const int64_t big = int64_t{1} << 62;
  if (has("epoch")) s.epoch = io::dict_int(top_value, "epoch", path, 0, big);
  if (has("epoch_step")) s.epoch_step = io::dict_int(top_value, "epoch_step", path, 0, big);
  if (has("global_step")) s.global_step = io::dict_int(top_value, "global_step", path, 0, big);
  if (has("best_acc1")) s.best_acc1 = io::dict_double(top_value, "best_acc1", path);
  if (has("moco_options")) {
    s.command = "pretrain";
    s.flags = changed_flags<PretrainOptions>(saved_json(top, "moco_options", path));
  } else if (has("finetune_options")) {
    s.command = "finetune";
    s.flags = changed_flags<FinetuneOptions>(saved_json(top, "finetune_options", path));
  }
  return s;
}

int inspect_command(const InspectOptions& o, const Invocation&) {
  const auto s = inspect_checkpoint(o);
  std::printf("%s: %s\n", o.checkpoint().c_str(), s.identity.c_str());
  std::printf("network: %s\n", s.network.c_str());
  std::printf("taken by: %s\n", s.takes.c_str());
  if (s.epoch) {
    std::string at = fmt::format("epoch {}", *s.epoch);
    if (s.epoch_step && *s.epoch_step > 0) at += fmt::format(", {} steps into it", *s.epoch_step);
    if (s.global_step) at += fmt::format(" (global step {})", *s.global_step);
    std::printf("resumes at: %s\n", at.c_str());
  }
  if (s.best_acc1) std::printf("best Acc@1: %.3f\n", *s.best_acc1);
  if (!s.command.empty()) {
    std::string line = "moco " + s.command;
    if (!s.flags.empty()) line += " " + shell_line(s.flags);
    std::printf("flags not at their default: %s\n", line.c_str());
  }
  return 0;
}

}  // namespace moco::train
