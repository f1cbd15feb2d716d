// metrics.jsonl: one JSON object a line, appended and flushed as it goes,
// so a crash loses at most the line being written. The records are typed:
// pretraining, lincls and finetune write them, `moco report` and `moco sweep` read
// them back, through the same definitions.
//
//   MetricsWriter m("runs/x/metrics.jsonl");
//   TrainRecord r;
//   r.step = 10;
//   r.loss = 7.1;
//   m.write(r);
//   Metrics all = read_metrics("runs/x/metrics.jsonl");   // all.train[0].loss
#pragma once

#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <string>
#include <variant>
#include <vector>

namespace moco::io {

class EventWriter;

struct ConfigRecord {  // kind "config": once per start (and resume)
  nlohmann::json options;
  int64_t train_images = 0;
  std::string dataset;
  // Flags a resume took with another value: "--epochs (6 -> 10)".
  std::vector<std::string> resume_changes = {};
};

struct TrainRecord {  // kind "train": every --print-freq steps
  int64_t epoch = 0, step = 0;
  double loss = 0, acc1 = 0, acc5 = 0, lr = 0, images_per_s = 0;
};

struct EpochRecord {  // kind "epoch": at each epoch's end
  int64_t epoch = 0;
  double loss = 0;
  int64_t steps = 0;
  double seconds = 0, images_per_s = 0, data_wait_share = 0;
  int64_t skipped_files = 0;
  bool complete = true;
};

struct KnnRecord {  // kind "knn": each kNN monitor; epoch -1 before training
  int64_t epoch = 0;
  double top1 = 0, top5 = 0;
  int64_t bank = 0, test = 0;
  double seconds = 0;
  std::string features = "encoder";  // or "pixels" (the raw-pixel reference)
};

struct LinclsRecord {  // kind "lincls": each linear-classifier epoch
  int64_t epoch = 0;
  double lr = 0, loss = 0, acc1 = 0, acc5 = 0, seconds = 0;
};

struct FinetuneRecord {  // kind "finetune": each fine-tuning epoch
  int64_t epoch = 0;
  double lr = 0, lr_head = 0, loss = 0, train_acc1 = 0, acc1 = 0, acc5 = 0,
         seconds = 0;
  int64_t train_images = 0;
};

using Record = std::variant<ConfigRecord, TrainRecord, EpochRecord, KnnRecord,
                            LinclsRecord, FinetuneRecord>;

// Everything a metrics.jsonl holds, by kind, in file order.
struct Metrics {
  std::vector<ConfigRecord> config;
  std::vector<TrainRecord> train;
  std::vector<EpochRecord> epochs;
  std::vector<KnnRecord> knn;
  std::vector<LinclsRecord> lincls;
  std::vector<FinetuneRecord> finetune;
  double first_time = 0, last_time = 0;  // Unix seconds; 0: not recorded
  bool empty() const {
    return train.empty() && epochs.empty() && knn.empty() && lincls.empty() &&
           finetune.empty();
  }
};

class MetricsWriter {
 public:
  MetricsWriter();  // writes nothing (ranks other than 0)
  explicit MetricsWriter(const std::string& path);
  ~MetricsWriter();
  MetricsWriter(MetricsWriter&&) noexcept;
  MetricsWriter& operator=(MetricsWriter&&) noexcept;
  // One line: the record's fields, its "kind" and "time" (Unix seconds).
  void write(const Record& record);
  // Also writes each record's numbers as TensorBoard scalars ("train/loss",
  // "knn/top1", "finetune/acc1", ...) to an event file in `dir`; steps are
  // global steps for train records, 1-based epochs for the others.
  void enable_tensorboard(const std::string& dir);

 private:
  void write_scalars(const Record& record, double time);
  std::string path_;
  std::ofstream out_;
  std::unique_ptr<EventWriter> tensorboard_;
};

// Reads a metrics.jsonl; lines that do not parse (a run killed mid-write
// leaves a torn last line) and unknown kinds are skipped. Errors name the
// file when it cannot be opened.
Metrics read_metrics(const std::string& path);

}  // namespace moco::io
