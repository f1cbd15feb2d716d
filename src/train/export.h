// `moco export`: a checkpoint's backbone in the files downstream tools load.
//  - torchvision (.pth/.pt): a state dict, torch.save's zip format, that
//    torchvision.models.<arch>() loads; with only fc.* missing for a
//    pretraining checkpoint, and whole (fc.* kept) for a lincls/finetune
//    classifier or a torchvision state dict.
//  - detectron2 (.pkl): {"model": {name: numpy array}, "__author__",
//    "matching_heuristics": True} with detectron2's ResNet names
//    (stem.conv1, stem.conv1.norm, res2.0.conv1, res2.0.shortcut, ...), as
//    the MoCo repository's convert-pretrain-to-detectron2.py writes.
//  - safetensors: the torchvision tensors.
// Without --format the output's extension decides.
//
//   train::export_backbone(ExportOptions().checkpoint("runs/x/checkpoint.pth.tar")
//                              .file("r50.pkl"));      // detectron2
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "train/options.h"

namespace moco::train {

// --format, or the format OUTPUT's extension names; errors name both.
std::string export_format(const std::string& format, const std::string& output);

// torchvision's name of a ResNet tensor -> detectron2's ("layer1.0.bn1.weight"
// -> "res2.0.conv1.norm.weight", "bn1.bias" -> "stem.conv1.norm.bias").
std::string detectron2_name(const std::string& torchvision_name);

// Returns the format written.
std::string export_backbone(const ExportOptions& options);

}  // namespace moco::train
