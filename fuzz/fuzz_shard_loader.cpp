// The streaming loader on damaged shards with two workers: the input is
// cut in two shards (at its first byte's share of it), streamed for one
// epoch in batches of 2. It must end, with batches or a clear error: a
// hang shows as libFuzzer's timeout, a crash as a finding.
#include <algorithm>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/shard_loader.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t cut = 1 + (size - 1) * data[0] / 256;
  moco::fuzz::as_file(data + 1, cut - 1, "loader-000000.tar");
  moco::fuzz::as_file(data + cut, size - cut, "loader-000001.tar");
  const auto spec = (moco::fuzz::scratch() / "loader-{000000..000001}.tar").string();
  moco::fuzz::expect_clean_error([&] {
    auto set = std::make_shared<moco::data::ImageSet>(
        moco::data::open_dataset(spec, moco::data::OpenOptions().max_image_pixels(1 << 20)).train);
    moco::data::ShardLoader loader(
        set, moco::data::moco_v2_augment(8),
        moco::data::LoaderOptions().batch_size(2).workers(2).shuffle_buffer(2));
    loader.start_epoch(0);
    while (loader.next()) {
    }
  });
  return 0;
}
