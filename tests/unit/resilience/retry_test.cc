// Tests of the retry policy and the retry budget (proxy/resilience/retry.h):
// the decision table, backoff bounds with seeded jitter, and the budget's
// ratio, floor and sliding window on a fake clock.
#include "proxy/resilience/retry.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace gantry::resilience {
namespace {

using std::chrono::milliseconds;

SteadyTime at(int64_t ms) { return SteadyTime{} + std::chrono::hours(1) + milliseconds(ms); }

snapshot::Retry retry_config() {
  snapshot::Retry r;
  r.attempts = 2;
  r.on_connect_failure = true;
  r.on_reset = false;
  r.on_statuses = {502, 503};
  r.backoff_base = milliseconds(25);
  r.backoff_max = milliseconds(250);
  return r;
}

struct ShouldRetryCase {
  std::string name;
  uint32_t retries_done;
  TryOutcome outcome;
  bool replayable;
  bool want;
};

class ShouldRetry : public ::testing::TestWithParam<ShouldRetryCase> {};

TEST_P(ShouldRetry, Decides) {
  const auto& c = GetParam();
  auto p = RetryPolicy::create(retry_config());
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->should_retry(c.retries_done, c.outcome, c.replayable), c.want);
}

INSTANTIATE_TEST_SUITE_P(
    Retry, ShouldRetry,
    ::testing::Values(ShouldRetryCase{"ConnectFailure", 0, {true, false, 0}, true, true},
                      ShouldRetryCase{"ConnectFailureSecondRetry", 1, {true, false, 0}, true, true},
                      ShouldRetryCase{"AttemptsUsedUp", 2, {true, false, 0}, true, false},
                      ShouldRetryCase{"NotReplayable", 0, {true, false, 0}, false, false},
                      ShouldRetryCase{"ResetNotListed", 0, {false, true, 0}, true, false},
                      ShouldRetryCase{"Status502", 0, {false, false, 502}, true, true},
                      ShouldRetryCase{"Status503", 1, {false, false, 503}, true, true},
                      ShouldRetryCase{"Status504NotListed", 0, {false, false, 504}, true, false},
                      ShouldRetryCase{"Status200", 0, {false, false, 200}, true, false},
                      ShouldRetryCase{
                          "Status502NotReplayable", 0, {false, false, 502}, false, false},
                      ShouldRetryCase{"NothingHappened", 0, {false, false, 0}, true, false}),
    [](const auto& info) { return info.param.name; });

TEST(RetryPolicy, ResetAndZeroAttempts) {
  auto c = retry_config();
  c.on_reset = true;
  auto p = RetryPolicy::create(c);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->should_retry(0, {false, true, 0}, true));
  c.attempts = 0;
  auto none = RetryPolicy::create(c);
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->should_retry(0, {true, false, 0}, true));
  EXPECT_FALSE(none->should_retry(0, {false, true, 0}, true));
}

struct BackoffCase {
  uint32_t retry;
  uint64_t random;
  int64_t want_ms;
};

class Backoff : public ::testing::TestWithParam<BackoffCase> {};

TEST_P(Backoff, ExponentialWithJitterInTheUpperHalf) {
  const auto& c = GetParam();
  auto p = RetryPolicy::create(retry_config());  // base 25, max 250
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->backoff(c.retry, c.random).count(), c.want_ms);
}

INSTANTIATE_TEST_SUITE_P(Retry, Backoff,
                         ::testing::Values(BackoffCase{1, 0, 12},   // [12, 25]
                                           BackoffCase{1, 13, 25},  // 12 + 13 % 14
                                           BackoffCase{1, 14, 12},  // wraps
                                           BackoffCase{2, 0, 25},   // [25, 50]
                                           BackoffCase{2, 25, 50},
                                           BackoffCase{3, 0, 50},   // [50, 100]
                                           BackoffCase{4, 0, 100},  // [100, 200]
                                           BackoffCase{5, 0, 125},  // cap 250: [125, 250]
                                           BackoffCase{5, 125, 250},
                                           BackoffCase{64, 0, 125},  // no overflow
                                           BackoffCase{1000, 125, 250}));

TEST(RetryPolicy, SeededJitterStaysInBoundsAndIsReproducible) {
  auto p = RetryPolicy::create(retry_config());
  ASSERT_TRUE(p.ok());
  SplitMix64 a(42), b(42), c(43);
  std::set<int64_t> seen;
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    const uint32_t retry = 1 + static_cast<uint32_t>(i % 6);
    const uint64_t ra = a.next(), rb = b.next(), rc = c.next();
    ASSERT_EQ(ra, rb);
    differs = differs || ra != rc;
    const int64_t ms = p->backoff(retry, ra).count();
    int64_t cap = 25;
    for (uint32_t k = 1; k < retry; ++k) cap = std::min<int64_t>(cap * 2, 250);
    ASSERT_GE(ms, cap / 2);
    ASSERT_LE(ms, cap);
    if (retry == 1) seen.insert(ms);
  }
  EXPECT_TRUE(differs);
  EXPECT_GT(seen.size(), 5u);  // the jitter actually spreads
}

TEST(RetryPolicy, CreateRejectsBadConfig) {
  auto c = retry_config();
  c.on_statuses = {99};
  EXPECT_FALSE(RetryPolicy::create(c).ok());
  c = retry_config();
  c.backoff_base = milliseconds(500);
  EXPECT_FALSE(RetryPolicy::create(c).ok());
  c = retry_config();
  c.per_try_timeout = milliseconds(0);
  EXPECT_FALSE(RetryPolicy::create(c).ok());
}

struct BudgetCase {
  std::string name;
  double ratio;
  uint32_t min_retries;
  uint32_t requests;
  uint32_t want_retries;
};

class Budget : public ::testing::TestWithParam<BudgetCase> {};

TEST_P(Budget, AllowsRatioOfRequestsWithAFloor) {
  const auto& c = GetParam();
  RetryBudget budget({c.ratio, milliseconds(10000), c.min_retries});
  for (uint32_t i = 0; i < c.requests; ++i) budget.record_request(at(0));
  uint32_t granted = 0;
  for (int i = 0; i < 1000; ++i) granted += budget.try_acquire_retry(at(1)) ? 1 : 0;
  EXPECT_EQ(granted, c.want_retries);
  RetryBudgetStats s = budget.stats(at(1));
  EXPECT_EQ(s.window_requests, c.requests);
  EXPECT_EQ(s.window_retries, c.want_retries);
  EXPECT_EQ(s.denied_total, 1000u - c.want_retries);
}

INSTANTIATE_TEST_SUITE_P(Retry, Budget,
                         ::testing::Values(BudgetCase{"TwentyPercentOf10", 0.2, 0, 10, 2},
                                           BudgetCase{"TwentyPercentOf100", 0.2, 0, 100, 20},
                                           BudgetCase{"TwentyPercentOf4", 0.2, 0, 4, 0},
                                           BudgetCase{"FloorWhenQuiet", 0.2, 3, 4, 3},
                                           BudgetCase{"FloorWithNoTraffic", 0.2, 3, 0, 3},
                                           BudgetCase{"RatioAboveFloor", 0.2, 3, 50, 10},
                                           BudgetCase{"HalfOf7", 0.5, 0, 7, 3}),
                         [](const auto& info) { return info.param.name; });

TEST(RetryBudget, WindowSlides) {
  RetryBudget budget({0.2, milliseconds(10000), 0});
  for (int i = 0; i < 10; ++i) budget.record_request(at(0));
  EXPECT_TRUE(budget.try_acquire_retry(at(0)));
  EXPECT_TRUE(budget.try_acquire_retry(at(0)));
  EXPECT_FALSE(budget.try_acquire_retry(at(0)));
  // 9.999 s later the requests and retries still count.
  EXPECT_FALSE(budget.try_acquire_retry(at(9999)));
  // New traffic in a later bucket adds to the budget while the old is in the window.
  for (int i = 0; i < 5; ++i) budget.record_request(at(5000));
  EXPECT_TRUE(budget.try_acquire_retry(at(5000)));  // 15 requests: 3 retries
  EXPECT_FALSE(budget.try_acquire_retry(at(5000)));
  // At 10 s the first bucket leaves: 5 requests, 1 retry in the window.
  RetryBudgetStats s = budget.stats(at(10000));
  EXPECT_EQ(s.window_requests, 5u);
  EXPECT_EQ(s.window_retries, 1u);
  EXPECT_FALSE(budget.try_acquire_retry(at(10000)));  // 20% of 5 = 1, used
  EXPECT_FALSE(budget.try_acquire_retry(at(15000)));  // nothing in the window: 0
}

}  // namespace
}  // namespace gantry::resilience
