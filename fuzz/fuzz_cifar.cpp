// CIFAR-10 binaries: the input is data_batch_1.bin, beside a valid
// one-record test_batch.bin.
#include "data/dataset.h"
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto dir = moco::fuzz::scratch() / "cifar";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  moco::fuzz::as_file(data, size, "cifar/data_batch_1.bin");
  const std::string record(1 + 3 * 32 * 32, '\x03');
  moco::fuzz::as_file(reinterpret_cast<const uint8_t*>(record.data()),
                      record.size(), "cifar/test_batch.bin");
  moco::fuzz::expect_clean_error(
      [&] { moco::data::open_dataset(dir.string()); });
  return 0;
}
