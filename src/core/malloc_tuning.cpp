#include "core/malloc_tuning.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace moco {

bool tune_malloc_for_training() {
  const char* env = std::getenv("MOCO_MALLOC_DEFAULT");
  if (env != nullptr && std::strcmp(env, "1") == 0) return false;
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);  // never give the heap top back
  return true;
#else
  return false;
#endif
}

}  // namespace moco
