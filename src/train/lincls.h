// `moco lincls`: the official linear classification protocol
// (main_lincls.py): the pretrained backbone frozen in eval mode, a new fc
// trained by SGD on RandomResizedCrop + flip, evaluated on Resize +
// CenterCrop; checkpoint.pth.tar and model_best.pth.tar in the official
// layout, and main_lincls.py's sanity check at the end.
//
//   LinclsOptions o;
//   o.data("/usr/share/datasets/fashion-mnist").pretrained("runs/x/checkpoint.pth.tar");
//   LinclsResult r = run_lincls(o);   // r.best_acc1
#pragma once

#include <string>

#include "train/classify.h"
#include "train/options.h"

namespace moco::train {

using LinclsResult = ClassifierResult;

LinclsResult run_lincls(const LinclsOptions& options);

}  // namespace moco::train
