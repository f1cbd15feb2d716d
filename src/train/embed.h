// `moco embed`: a checkpoint's backbone (or head) features of every image of
// a split as a NumPy .npy file (N x D float32), and beside it a .txt
// listing each row's image and label.
//
//   EmbedOptions o;
//   o.data("photos/").pretrained("runs/x/checkpoint.pth.tar").output("f.npy");
//   int64_t rows = run_embed(o);   // also writes f.txt
#pragma once

#include "train/options.h"

namespace moco::train {

// Writes OUTPUT (N x D float32 .npy) and OUTPUT with .txt for .npy (one line
// per row: image path, or dataset#index, a tab, the label or -1, and
// "\tunreadable" for an unreadable image file, whose row is zeros).
// Returns N.
int64_t run_embed(const EmbedOptions& options);

}  // namespace moco::train
