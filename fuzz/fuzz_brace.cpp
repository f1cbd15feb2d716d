// Shard brace patterns: any text expands or is refused with a clear error,
// in bounded time and memory (no recursion per group, the count and the
// bytes checked before a name is built).
#include <string>

#include "data/shards.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string pattern(reinterpret_cast<const char*>(data), size);
  moco::fuzz::expect_clean_error([&] {
    const auto names = moco::data::expand_braces(pattern);
    if (names.empty() || names.size() > 1'000'000) std::abort();
  });
  return 0;
}
