// Which allocator serves the training step, and keeping freed memory in the
// process so each step does not page-fault its activations in again.
//
// A training step allocates and frees the same large activation buffers
// every iteration. glibc serves blocks over 32 MiB with mmap and unmaps them
// on free, so each step faults them in again: measured here, ~35% of a
// ResNet-50 CPU step at 224 px. The `moco` binary links gperftools'
// tcmalloc (Debian's libgoogle-perftools-dev; what Intel's PyTorch CPU
// tuning guide recommends), which keeps freed spans for reuse with little
// fragmentation: the step runs as fast as with glibc told to keep
// everything, at a lower peak RSS than glibc's default (bench/run_speed.py,
// docs/performance.md). Where tcmalloc is not linked (a build without it),
// glibc is told to keep freed memory instead (faster, but more fragmentation).
// MOCO_MALLOC_DEFAULT=1 leaves glibc at its defaults.
//
//   int main() { moco::tune_malloc_for_training(); ... }
#pragma once

#include <string>

namespace moco {

// Returns the allocator in use: "tcmalloc", "glibc (kept)" or "glibc".
std::string tune_malloc_for_training();

}  // namespace moco
