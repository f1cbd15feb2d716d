#include "io/metrics.h"

#include <filesystem>

#include <c10/util/Exception.h>

namespace moco::io {

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  out_.open(path, std::ios::app);
  TORCH_CHECK(out_.good(), "cannot open ", path, " for writing");
}

void MetricsWriter::write(const nlohmann::json& record) {
  if (path_.empty()) return;  // default-constructed: writes nothing
  out_ << record.dump() << '\n';
  out_.flush();
  TORCH_CHECK(out_.good(), "cannot write ", path_, " (disk full?)");
}

}  // namespace moco::io
