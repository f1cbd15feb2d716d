#include "io/metrics.h"

#include <algorithm>
#include <chrono>
#include <filesystem>

#include <c10/util/Exception.h>

namespace moco::io {

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(ConfigRecord, options,
                                                train_images, dataset,
                                                resume_changes)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(TrainRecord, epoch, step, loss,
                                                acc1, acc5, lr, images_per_s)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(EpochRecord, epoch, loss, steps,
                                                seconds, images_per_s,
                                                data_wait_share, skipped_files,
                                                complete)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(KnnRecord, epoch, top1, top5,
                                                bank, test, seconds, features)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(LinclsRecord, epoch, lr, loss,
                                                acc1, acc5, seconds)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(FinetuneRecord, epoch, lr,
                                                lr_head, loss, train_acc1, acc1,
                                                acc5, seconds, train_images)

namespace {

const char* kind_of(const Record& r) {
  static const char* kinds[] = {"config", "train", "epoch", "knn", "lincls",
                                "finetune"};
  return kinds[r.index()];
}

}  // namespace

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  out_.open(path, std::ios::app);
  TORCH_CHECK(out_.good(), "cannot open ", path, " for writing");
}

void MetricsWriter::write(const Record& record) {
  if (path_.empty()) return;  // default-constructed: writes nothing
  nlohmann::json j = std::visit([](const auto& r) { return nlohmann::json(r); },
                                record);
  j["kind"] = kind_of(record);
  j["time"] = std::chrono::duration<double>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  out_ << j.dump() << '\n';
  out_.flush();
  TORCH_CHECK(out_.good(), "cannot write ", path_, " (disk full?)");
}

Metrics read_metrics(const std::string& path) {
  std::ifstream in(path);
  TORCH_CHECK(in.good(), "cannot read ", path);
  Metrics m;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
      const std::string kind = j.value("kind", "");
      if (j.contains("time") && j["time"].is_number()) {
        const double t = j["time"].get<double>();
        if (m.first_time == 0 || t < m.first_time) m.first_time = t;
        m.last_time = std::max(m.last_time, t);
      }
      if (kind == "config") m.config.push_back(j.get<ConfigRecord>());
      if (kind == "train") m.train.push_back(j.get<TrainRecord>());
      if (kind == "epoch") m.epochs.push_back(j.get<EpochRecord>());
      if (kind == "knn") m.knn.push_back(j.get<KnnRecord>());
      if (kind == "lincls") m.lincls.push_back(j.get<LinclsRecord>());
      if (kind == "finetune") m.finetune.push_back(j.get<FinetuneRecord>());
    } catch (const std::exception&) {
      continue;  // a torn line, or a field of another type
    }
  }
  return m;
}

}  // namespace moco::io
