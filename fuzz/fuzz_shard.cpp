// Tar shards: the header count, then every sample read (images decoded,
// labels parsed), as the streaming loader reads a shard.
#include "data/image_decode.h"
#include "data/shards.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = moco::fuzz::as_file(data, size, "shard.tar");
  moco::fuzz::expect_clean_error([&] {
    const auto list = moco::data::open_shards(path);
    moco::data::ShardReader reader(path);
    moco::data::ShardSample s;
    int64_t n = 0;
    while (reader.next(s)) {
      ++n;
      moco::fuzz::expect_clean_error([&] { moco::data::decode_image(s.image, s.name()); });
    }
    // The count from the headers and the samples streamed agree.
    if (n != list.samples) std::abort();
  });
  return 0;
}
