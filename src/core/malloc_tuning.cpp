#include "core/malloc_tuning.h"

#include <dlfcn.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace moco {

std::string tune_malloc_for_training() {
  // tcmalloc exports its own entry points beside malloc's names.
  if (dlsym(RTLD_DEFAULT, "tc_malloc") != nullptr) return "tcmalloc";
  const char* env = std::getenv("MOCO_MALLOC_DEFAULT");
  if (env != nullptr && std::strcmp(env, "1") == 0) return "glibc";
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, -1);  // never give the heap top back
  return "glibc (kept)";
#else
  return "system";
#endif
}

}  // namespace moco
