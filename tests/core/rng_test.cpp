#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/rng.h"

namespace moco {

TEST(Rng, SeedMixingIsDeterministicAndOrderSensitive) {
  EXPECT_EQ(mix_seed(1, 2, 3, 4), mix_seed(1, 2, 3, 4));
  EXPECT_NE(mix_seed(1, 2, 3, 4), mix_seed(2, 1, 3, 4));
  EXPECT_NE(mix_seed(0, 0, 0, 0), mix_seed(0, 0, 0, 1));
  // SplitMix64 reference value for input 0 (from the published algorithm).
  EXPECT_EQ(splitmix64(0), 0xe220a8397b1dcdafULL);
}

TEST(Rng, UniformAndRandintStayInRange) {
  Rng rng(42);
  double lo = 1, hi = 0;
  std::set<int64_t> seen;
  for (int i = 0; i < 20000; ++i) {
    const double u = rng.uniform(0.2, 1.0);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    ASSERT_GE(u, 0.2);
    ASSERT_LT(u, 1.0);
    const int64_t r = rng.randint(-2, 3);
    ASSERT_GE(r, -2);
    ASSERT_LE(r, 3);
    seen.insert(r);
  }
  EXPECT_LT(lo, 0.21);
  EXPECT_GT(hi, 0.99);
  EXPECT_EQ(seen.size(), 6u);  // both ends reachable
}

TEST(Rng, PermutationIsAPermutationAndSeeded) {
  auto p = permutation(1000, 7);
  auto sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(p, permutation(1000, 7));
  EXPECT_NE(p, permutation(1000, 8));
}

}  // namespace moco
