// Averages gradients over ranks while backward is still running: a hook on
// each parameter collects its gradient, and a bucket (~25 MB, parameters in
// reverse order, as they finish) is all-reduced as soon as it is complete,
// on Gloo's threads; finish() waits and writes the averages to .grad.
//
//   GradientReducer reducer(comm, model->parameters());
//   loss.backward();      // buckets start as their gradients arrive
//   reducer.finish();     // .grad = mean over ranks
#pragma once

#include <torch/types.h>

#include <memory>
#include <vector>

#include "distributed/communicator.h"

namespace moco::distributed {

class GradientReducer {
 public:
  GradientReducer(std::shared_ptr<Communicator> comm,
                  std::vector<torch::Tensor> params,
                  int64_t bucket_bytes = kBucketBytes);
  ~GradientReducer();
  void finish();
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }
  // Buckets started before backward returned, in the last step.
  int64_t started_early() const { return last_early_; }

 private:
  struct Bucket;
  void on_grad(size_t param, const torch::Tensor& grad);
  void launch(Bucket& b);

  std::shared_ptr<Communicator> comm_;
  std::vector<torch::Tensor> params_;
  std::vector<std::unique_ptr<Bucket>> buckets_;
  std::vector<size_t> bucket_of_;    // param -> bucket
  int64_t started_early_ = 0, last_early_ = 0;
  bool finishing_ = false;
};

}  // namespace moco::distributed
