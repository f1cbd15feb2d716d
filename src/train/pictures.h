// Pictures of what a run learned, for its report: the test images with
// their nearest training images by the learned features, and the test
// features projected to 2-D (PCA) with their classes.
//
//   KnnFeatures f;
//   knn_score(encode, bank_set, test_set, transform, options, device, &f);
//   auto grid = neighbour_grid(bank_set, test_set, transform, f);   // uint8 H x W x 3
//   nlohmann::json e = embedding_2d(f.test, f.test_labels, test_set.classes);
//   write_run_pictures("runs/quick", bank_set, test_set, transform, f);
#pragma once

#include <nlohmann/json.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

#include "train/knn.h"

namespace moco::train {

// Frame colours of the neighbour grid: a neighbour of the query's class,
// of another class, and the query itself.
constexpr uint8_t kSameClass[3] = {0x1a, 0x98, 0x50};
constexpr uint8_t kOtherClass[3] = {0xd7, 0x30, 0x27};
constexpr uint8_t kQueryFrame[3] = {0x33, 0x33, 0x33};

// `queries` test images (evenly spaced through those scored), one a row,
// each followed by its `neighbours` nearest bank images by cosine
// similarity; every tile framed, tiles at least 64 px and at most 128 px.
torch::Tensor neighbour_grid(const data::ImageSet& bank_set,
                             const data::ImageSet& test_set,
                             const data::EvalTransform& transform,
                             const KnnFeatures& features, int64_t queries = 8,
                             int64_t neighbours = 8);

// The features' first two principal components (of at most `max_points`
// evenly spaced rows): {"method": "PCA", "explained_variance": [..2],
// "classes": [names], "points": [[x, y, label], ...]}.
nlohmann::json embedding_2d(const torch::Tensor& features,
                            const torch::Tensor& labels,
                            const std::vector<std::string>& class_names,
                            int64_t num_classes, int64_t max_points = 2000);

// OUTPUT/neighbours.png and OUTPUT/embedding.json, which `moco report`
// shows; returns the paths written.
std::vector<std::string> write_run_pictures(const std::string& output,
                                            const data::ImageSet& bank_set,
                                            const data::ImageSet& test_set,
                                            const data::EvalTransform& transform,
                                            const KnnFeatures& features);

}  // namespace moco::train
