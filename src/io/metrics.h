// metrics.jsonl: one JSON object a line, appended and flushed as it goes,
// so a crash loses at most the line being written.
//
//   MetricsWriter m("runs/x/metrics.jsonl");
//   m.write({{"epoch", 0}, {"step", 10}, {"loss", 7.1}});
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <string>

namespace moco::io {

class MetricsWriter {
 public:
  MetricsWriter() = default;  // writes nothing (ranks other than 0)
  explicit MetricsWriter(const std::string& path);
  void write(const nlohmann::json& record);
  bool is_open() const { return out_.is_open(); }

 private:
  std::string path_;
  std::ofstream out_;
};

}  // namespace moco::io
