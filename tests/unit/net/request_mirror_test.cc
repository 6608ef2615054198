// sample_mirrors (net/request_mirror.h): which of a rule's mirrors copy a
// request. Deterministic: a fixed-seed generator stands in for the worker's.
#include "proxy/net/request_mirror.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace gantry::net {
namespace {

using snapshot::RequestMirror;

TEST(SampleMirrors, WholeAndEmptySharesAreDecidedWithoutChance) {
  std::vector<RequestMirror> m = {{"a", 1, 1}, {"b", 0, 100}, {"c", 7, 7}, {"d", 0, 1}};
  std::mt19937_64 rng(1);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(sample_mirrors(m, rng()), 0b0101u);
  EXPECT_EQ(sample_mirrors({}, 42), 0u);
}

TEST(SampleMirrors, SharesAreMetAndMirrorsDrawOnTheirOwn) {
  std::vector<RequestMirror> m = {{"a", 20, 100}, {"b", 25, 50}, {"c", 1, 1}};
  std::mt19937_64 rng(7);
  const int n = 200000;
  int a = 0, b = 0, both = 0, c = 0;
  for (int i = 0; i < n; ++i) {
    uint64_t mask = sample_mirrors(m, rng());
    a += (mask & 1) ? 1 : 0;
    b += (mask & 2) ? 1 : 0;
    both += (mask & 3) == 3 ? 1 : 0;
    c += (mask & 4) ? 1 : 0;
  }
  EXPECT_NEAR(a / double(n), 0.20, 0.01);
  EXPECT_NEAR(b / double(n), 0.50, 0.01);
  EXPECT_NEAR(both / double(n), 0.10, 0.01);  // independent: 0.2 × 0.5
  EXPECT_EQ(c, n);
}

TEST(SampleMirrors, OnlyTheFirst64MirrorsHaveABit) {
  std::vector<RequestMirror> m(70, RequestMirror{"a", 1, 1});
  EXPECT_EQ(sample_mirrors(m, 3), ~uint64_t{0});
}

}  // namespace
}  // namespace gantry::net
