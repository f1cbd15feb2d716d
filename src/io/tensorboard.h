// TensorBoard event files: the scalars of metrics.jsonl, as
// `tensorboard --logdir RUN` reads them. The file is TFRecord framing
// (length, masked CRC32C of the length, an Event protocol buffer, masked
// CRC32C of the data) around Event {wall_time, step, file_version |
// summary {value {tag, simple_value}}}.
//
//   io::EventWriter tb("runs/x");                 // runs/x/events.out.tfevents.<time>.<host>
//   tb.scalar("train/loss", 7.1, /*step=*/10);
#pragma once

#include <cstdint>
#include <fstream>
#include <string>

namespace moco::io {

// CRC-32C (Castagnoli), as TFRecord uses it, and its masked form.
uint32_t crc32c(const void* data, size_t size);
uint32_t masked_crc32c(const void* data, size_t size);

class EventWriter {
 public:
  explicit EventWriter(const std::string& dir);
  void scalar(const std::string& tag, double value, int64_t step,
              double wall_time = 0);  // 0: now
  const std::string& path() const { return path_; }

 private:
  void record(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

}  // namespace moco::io
