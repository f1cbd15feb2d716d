#include "io/metrics.h"

#include "core/files.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <type_traits>

#include "io/tensorboard.h"

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

MetricsWriter::MetricsWriter() = default;
MetricsWriter::~MetricsWriter() = default;
MetricsWriter::MetricsWriter(MetricsWriter&&) noexcept = default;
MetricsWriter& MetricsWriter::operator=(MetricsWriter&&) noexcept = default;

MetricsWriter::MetricsWriter(const std::string& path) : path_(path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  refuse_link(path);
  out_.open(path, std::ios::app);
  TORCH_CHECK(out_.good(), "cannot open ", path, " for writing");
}

void MetricsWriter::write(const Record& record) {
  if (path_.empty()) return;  // default-constructed: writes nothing
  nlohmann::json j = std::visit([](const auto& r) { return nlohmann::json(r); },
                                record);
  j["kind"] = kind_of(record);
  const double time = std::chrono::duration<double>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  j["time"] = time;
  if (tensorboard_) write_scalars(record, time);
  out_ << j.dump() << '\n';
  out_.flush();
  TORCH_CHECK(out_.good(), "cannot write ", path_, " (disk full?)");
}

void MetricsWriter::enable_tensorboard(const std::string& dir) {
  if (path_.empty()) return;  // ranks other than 0
  tensorboard_ = std::make_unique<EventWriter>(dir);
}

void MetricsWriter::write_scalars(const Record& record, double time) {
  auto& tb = *tensorboard_;
  std::visit(
      [&](const auto& r) {
        using R = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<R, TrainRecord>) {
          for (const auto& [tag, v] : {std::pair<const char*, double>{"train/loss", r.loss},
                                       {"train/acc1", r.acc1},
                                       {"train/acc5", r.acc5},
                                       {"train/lr", r.lr},
                                       {"train/images_per_s", r.images_per_s}}) {
            tb.scalar(tag, v, r.step, time);
          }
        } else if constexpr (std::is_same_v<R, EpochRecord>) {
          tb.scalar("epoch/loss", r.loss, r.epoch + 1, time);
          tb.scalar("epoch/images_per_s", r.images_per_s, r.epoch + 1, time);
          tb.scalar("epoch/data_wait_share", r.data_wait_share, r.epoch + 1, time);
        } else if constexpr (std::is_same_v<R, KnnRecord>) {
          const std::string prefix = r.features == "encoder" ? "knn/" : "knn_pixels/";
          tb.scalar(prefix + "top1", r.top1, r.epoch + 1, time);
          tb.scalar(prefix + "top5", r.top5, r.epoch + 1, time);
        } else if constexpr (std::is_same_v<R, LinclsRecord>) {
          tb.scalar("lincls/loss", r.loss, r.epoch + 1, time);
          tb.scalar("lincls/acc1", r.acc1, r.epoch + 1, time);
          tb.scalar("lincls/acc5", r.acc5, r.epoch + 1, time);
          tb.scalar("lincls/lr", r.lr, r.epoch + 1, time);
        } else if constexpr (std::is_same_v<R, FinetuneRecord>) {
          tb.scalar("finetune/loss", r.loss, r.epoch + 1, time);
          tb.scalar("finetune/acc1", r.acc1, r.epoch + 1, time);
          tb.scalar("finetune/acc5", r.acc5, r.epoch + 1, time);
          tb.scalar("finetune/train_acc1", r.train_acc1, r.epoch + 1, time);
          tb.scalar("finetune/lr", r.lr, r.epoch + 1, time);
        }
      },
      record);
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
