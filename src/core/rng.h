// Counter-based seeding for reproducible, thread-count-independent randomness.
//
// Every random draw of the data pipeline comes from a generator seeded by
// (seed, epoch, sample index, stream), so a sample's augmentation does not
// depend on which worker thread made it or in what order.
//
//   moco::Rng rng(moco::mix_seed(seed, epoch, index, /*stream=*/0));
//   double s = rng.uniform(0.2, 1.0);
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace moco {

// SplitMix64 finaliser: a bijective 64-bit mixer with good avalanche.
uint64_t splitmix64(uint64_t x);

// Mixes several words into one seed; order matters.
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0, uint64_t d = 0);

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  // Uniform real in [lo, hi).
  double uniform(double lo = 0.0, double hi = 1.0);
  // Uniform integer in [lo, hi] (both inclusive).
  int64_t randint(int64_t lo, int64_t hi);
  bool bernoulli(double p) { return uniform() < p; }

 private:
  std::mt19937_64 engine_;
};

// A permutation of [0, n) drawn from `seed` (Fisher-Yates).
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

}  // namespace moco
