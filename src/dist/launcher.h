// The local launcher behind --nproc-per-node: this process starts the ranks
// and watches them, as torchrun's agent would.
//
//   auto node = moco::dist::resolve(options, moco::dist::environment());
//   return moco::dist::spawn_local(argc, argv, /*nproc=*/2, node, 1800);
#pragma once

#include <cstdint>

#include "dist/environment.h"

namespace moco::dist {

// `--nproc-per-node N`: starts N copies of this program (argv with the
// flag removed) with torchrun's variables set, waits, and if one fails
// stops the others. Returns the exit status to use.
int spawn_local(int argc, char** argv, int64_t nproc, const DistEnv& node,
                double timeout_s);

}  // namespace moco::dist
