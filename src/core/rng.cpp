#include "core/rng.h"

#include <algorithm>
#include <numeric>

namespace moco {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c, uint64_t d) {
  uint64_t h = splitmix64(a);
  h = splitmix64(h ^ b);
  h = splitmix64(h ^ c);
  return splitmix64(h ^ d);
}

double Rng::uniform(double lo, double hi) {
  // 53 random bits -> [0, 1); std::uniform_real_distribution's output is
  // implementation-defined, this is the same on every standard library.
  const double u = static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  return lo + (hi - lo) * u;
}

int64_t Rng::randint(int64_t lo, int64_t hi) {
  const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
  // Rejection sampling keeps the draw unbiased and library-independent.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % span;
  uint64_t r;
  do {
    r = engine_();
  } while (r >= limit);
  return lo + static_cast<int64_t>(r % span);
}

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    std::swap(p[i], p[rng.randint(0, i)]);
  }
  return p;
}

}  // namespace moco
