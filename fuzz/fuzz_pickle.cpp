// The unpickler alone: the input is data.pkl inside a well-formed torch.save
// zip with one storage ("0", 64 bytes), so mutations reach the opcodes
// rather than the zip reader.
#include <caffe2/serialize/inline_container.h>

#include "fuzz_common.h"
#include "io/torch_pickle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = (moco::fuzz::scratch() / "input.pth").string();
  {
    caffe2::serialize::PyTorchStreamWriter w(path);
    w.writeRecord("data.pkl", data, size);
    const std::string storage(64, '\1');
    w.writeRecord("data/0", storage.data(), storage.size());
    w.writeEndOfFile();
  }
  moco::fuzz::expect_clean_error([&] { moco::io::read_torch_file(path); });
  return 0;
}
