// Tests of WeightedPicker: the precomputed smooth weighted round robin behind
// CompiledRule::pick_backend().
#include "proxy/router/weighted_picker.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace gantry::router {
namespace {

std::vector<int> picks(const WeightedPicker& p, int n) {
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(p.pick());
  return out;
}

struct SequenceCase {
  std::string name;
  std::vector<uint32_t> weights;
  std::vector<int> period;  // expected picks over one period, by hand from nginx's algorithm
};

class SmoothSequence : public ::testing::TestWithParam<SequenceCase> {};

TEST_P(SmoothSequence, RepeatsExactly) {
  const SequenceCase& c = GetParam();
  WeightedPicker p(c.weights);
  std::vector<int> expected;
  for (int round = 0; round < 3; ++round) {
    expected.insert(expected.end(), c.period.begin(), c.period.end());
  }
  EXPECT_EQ(picks(p, static_cast<int>(expected.size())), expected);
  EXPECT_FALSE(p.uses_random_fallback());
}

INSTANTIATE_TEST_SUITE_P(Cases, SmoothSequence,
                         ::testing::Values(
                             // 90/10 reduces to 9/1: the B lands in the middle, not at an end.
                             SequenceCase{"ninety_ten", {90, 10}, {0, 0, 0, 0, 0, 1, 0, 0, 0, 0}},
                             SequenceCase{"four_one", {4, 1}, {0, 0, 1, 0, 0}},
                             SequenceCase{"five_one_one", {5, 1, 1}, {0, 0, 1, 0, 2, 0, 0}},
                             SequenceCase{"equal", {3, 3, 3}, {0, 1, 2}},
                             SequenceCase{"weight_zero_skipped", {0, 2, 0, 1}, {1, 3, 1}},
                             SequenceCase{"single", {7}, {0}},
                             SequenceCase{"single_nonzero", {0, 0, 5}, {2}}),
                         [](const auto& info) { return info.param.name; });

TEST(WeightedPicker, AllZeroOrEmptyGivesMinusOne) {
  WeightedPicker zero(std::vector<uint32_t>{0, 0});
  WeightedPicker empty(std::vector<uint32_t>{});
  WeightedPicker defaulted;
  EXPECT_EQ(zero.pick(), -1);
  EXPECT_EQ(empty.pick(), -1);
  EXPECT_EQ(defaulted.pick(), -1);
}

TEST(WeightedPicker, SequenceIsReducedByGcd) {
  WeightedPicker p(std::vector<uint32_t>{900, 100});
  EXPECT_EQ(p.sequence().size(), 10u);
}

TEST(WeightedPicker, LargeCoprimeWeightsUseRandomFallbackWithRightShares) {
  // Coprime, 7507 + 2503 = 10010 > kMaxSequence.
  WeightedPicker p(std::vector<uint32_t>{7507, 0, 2503});
  ASSERT_TRUE(p.uses_random_fallback());
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 100000; ++i) counts.at(p.pick())++;
  EXPECT_EQ(counts[1], 0);
  EXPECT_NEAR(counts[0], 75000, 1000);
  EXPECT_NEAR(counts[2], 25000, 1000);
}

TEST(WeightedPicker, ConcurrentPicksKeepExactShares) {
  WeightedPicker p(std::vector<uint32_t>{3, 1});
  constexpr int kThreads = 4, kPerThread = 10000;  // 40000 picks = 10000 whole periods
  std::vector<std::vector<int>> counts(kThreads, std::vector<int>(2, 0));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) counts[t][p.pick()]++;
    });
  }
  for (auto& th : threads) th.join();
  int a = 0, b = 0;
  for (const auto& c : counts) {
    a += c[0];
    b += c[1];
  }
  EXPECT_EQ(a, 30000);
  EXPECT_EQ(b, 10000);
}

}  // namespace
}  // namespace gantry::router
