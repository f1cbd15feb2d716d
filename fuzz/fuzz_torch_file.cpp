// torch.save files, both formats: a zip ("PK", PyTorch >= 1.6) or the
// legacy stream of pickles (0x80), chosen by the first bytes as for users.
#include "fuzz_common.h"
#include "io/torch_pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = moco::fuzz::as_file(data, size, "input.pth");
  moco::fuzz::expect_clean_error([&] { moco::io::read_torch_file(path); });
  return 0;
}
