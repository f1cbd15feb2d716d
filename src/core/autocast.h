// Autocast's state for the CPU or CUDA, over both supported LibTorch
// versions: 2.4 made the per-device calls one API taking the device type and
// deprecated 1.13's is_cpu_enabled / set_autocast_gpu_dtype family.
//
//   const bool was = moco::autocast::enabled(torch::kCPU);
//   moco::autocast::set_enabled(torch::kCPU, false);
#pragma once

#include <ATen/autocast_mode.h>
#include <torch/version.h>

namespace moco::autocast {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
inline bool enabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
inline void set_enabled(c10::DeviceType d, bool on) {
  at::autocast::set_autocast_enabled(d, on);
}
inline at::ScalarType dtype(c10::DeviceType d) {
  return at::autocast::get_autocast_dtype(d);
}
inline void set_dtype(c10::DeviceType d, at::ScalarType t) {
  at::autocast::set_autocast_dtype(d, t);
}
#else
// 1.13: one set of calls for the CPU, another for CUDA.
inline bool enabled(c10::DeviceType d) {
  return d == c10::DeviceType::CUDA ? at::autocast::is_enabled()
                                    : at::autocast::is_cpu_enabled();
}
inline void set_enabled(c10::DeviceType d, bool on) {
  if (d == c10::DeviceType::CUDA) {
    at::autocast::set_enabled(on);
  } else {
    at::autocast::set_cpu_enabled(on);
  }
}
inline at::ScalarType dtype(c10::DeviceType d) {
  return d == c10::DeviceType::CUDA ? at::autocast::get_autocast_gpu_dtype()
                                    : at::autocast::get_autocast_cpu_dtype();
}
inline void set_dtype(c10::DeviceType d, at::ScalarType t) {
  if (d == c10::DeviceType::CUDA) {
    at::autocast::set_autocast_gpu_dtype(t);
  } else {
    at::autocast::set_autocast_cpu_dtype(t);
  }
}
#endif

}  // namespace moco::autocast
