// Keeps freed memory in the process instead of returning it to the kernel.
//
// A training step allocates and frees the same large activation buffers
// every iteration. glibc serves blocks over 32 MiB with mmap and unmaps them
// on free, so each step page-faults its activations in again (~10% of a CPU
// step here). With mmap off and trimming disabled, the buffers are reused
// from the heap. The peak resident size is unchanged: it is what the step
// needs anyway. Set MOCO_MALLOC_DEFAULT=1 to keep glibc's defaults.
//
//   int main() { moco::tune_malloc_for_training(); ... }
#pragma once

namespace moco {

// Returns true when the tuning was applied.
bool tune_malloc_for_training();

}  // namespace moco
