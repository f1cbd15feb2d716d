// The JPEG/PNG wrapper: the header peek, then a decode as the loader does
// (RGB, or greyscale at a DCT scale when the first byte's low bit is set).
#include <vector>

#include "data/image_decode.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  const bool grey = size > 0 && (data[size - 1] & 1);
  moco::fuzz::expect_clean_error([&] {
    const auto info = moco::data::read_image_info(bytes, "input");
    (void)info;
    moco::data::decode_image(bytes, "input",
                             moco::data::DecodeOptions()
                                 .channels(grey ? 1 : 3)
                                 .min_scale(grey ? 0.25 : 1.0)
                                 .max_pixels(1 << 22));
  });
  return 0;
}
