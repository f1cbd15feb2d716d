// `moco export`: a checkpoint's query backbone as a plain state dict that
// torchvision.models.<arch>().load_state_dict(sd, strict=False) takes with
// only fc.weight / fc.bias missing ("torchvision", torch.save's zip
// format), or the same tensors as safetensors ("safetensors").
//
//   train::export_backbone(ExportOptions().checkpoint("runs/x/checkpoint.pth.tar")
//                              .file("r50.pth"));
#pragma once

#include "train/options.h"

namespace moco::train {

void export_backbone(const ExportOptions& options);

}  // namespace moco::train
