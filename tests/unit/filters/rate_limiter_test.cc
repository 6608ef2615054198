// Tests of the local rate limiter (proxy/filters/rate_limiter.h) on a fake
// clock: exact decision sequences at the boundaries of both algorithms, the
// LRU bound on keys, and a concurrency smoke test.
#include "proxy/filters/rate_limiter.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace gantry::filters {
namespace {

using std::chrono::milliseconds;

// Whole hours are whole windows of every interval used here.
SteadyTime at(int64_t ms) { return SteadyTime{} + std::chrono::hours(1) + milliseconds(ms); }

snapshot::RateLimit limit(uint64_t requests, int64_t interval_ms, uint64_t burst,
                          snapshot::RateLimitAlgorithm algo) {
  snapshot::RateLimit r;
  r.requests = requests;
  r.interval = milliseconds(interval_ms);
  r.burst = burst;
  r.algorithm = algo;
  return r;
}

struct Expect {
  int64_t t_ms;
  bool allowed;
  uint64_t remaining;
  uint64_t reset;
  uint64_t retry_after;
};

struct SequenceCase {
  std::string name;
  snapshot::RateLimit config;
  uint64_t limit;
  std::vector<Expect> steps;
};

class Sequence : public ::testing::TestWithParam<SequenceCase> {};

TEST_P(Sequence, DecisionsMatch) {
  const auto& c = GetParam();
  auto rl = RateLimiter::create(c.config);
  ASSERT_TRUE(rl.ok()) << rl.error().message;
  for (size_t i = 0; i < c.steps.size(); ++i) {
    const Expect& e = c.steps[i];
    SCOPED_TRACE("step " + std::to_string(i) + " at " + std::to_string(e.t_ms) + " ms");
    RateLimitDecision d = (*rl)->check("203.0.113.7", at(e.t_ms));
    EXPECT_EQ(d.allowed, e.allowed);
    EXPECT_EQ(d.limit, c.limit);
    EXPECT_EQ(d.remaining, e.remaining);
    EXPECT_EQ(d.reset_seconds, e.reset);
    EXPECT_EQ(d.retry_after_seconds, e.retry_after);
  }
}

constexpr auto kBucket = snapshot::RateLimitAlgorithm::kTokenBucket;
constexpr auto kWindow = snapshot::RateLimitAlgorithm::kSlidingWindow;

INSTANTIATE_TEST_SUITE_P(
    RateLimiter, Sequence,
    ::testing::Values(
        // 2 per second + burst 1: capacity 3, one token per 500 ms.
        SequenceCase{"TokenBucketBurstAndRefill",
                     limit(2, 1000, 1, kBucket),
                     3,
                     {{0, true, 2, 1, 0},
                      {0, true, 1, 1, 0},
                      {0, true, 0, 2, 0},
                      {0, false, 0, 2, 1},
                      {499, false, 0, 2, 1},
                      {500, true, 0, 2, 0},
                      {999, false, 0, 2, 1},
                      {1000, true, 0, 2, 0},
                      {2500, true, 2, 1, 0},
                      {60000, true, 2, 1, 0}}},
        SequenceCase{"TokenBucketNoBurst",
                     limit(1, 2000, 0, kBucket),
                     1,
                     {{0, true, 0, 2, 0},
                      {1, false, 0, 2, 2},
                      {1999, false, 0, 1, 1},
                      {2000, true, 0, 2, 0}}},
        SequenceCase{"TokenBucketClockGoingBackIsHarmless",
                     limit(1, 1000, 0, kBucket),
                     1,
                     {{1000, true, 0, 1, 0}, {500, false, 0, 1, 1}, {2000, true, 0, 1, 0}}},
        // 4 per second, windows aligned on whole seconds.
        SequenceCase{"SlidingWindowCounter",
                     limit(4, 1000, 0, kWindow),
                     4,
                     {{0, true, 3, 1, 0},
                      {0, true, 2, 1, 0},
                      {0, true, 1, 1, 0},
                      {0, true, 0, 1, 0},
                      {0, false, 0, 1, 2},     // next window, at 1.25 s
                      {1000, false, 0, 1, 1},  // previous window weighs 4 x 1.0
                      {1250, true, 0, 1, 0},   // 4 x 0.75 + 1 = 4
                      {1250, false, 0, 1, 1},
                      {1500, true, 0, 1, 0},    // 4 x 0.5 + 2
                      {1750, true, 0, 1, 0},    // 4 x 0.25 + 3
                      {1999, false, 0, 1, 1},   // 4 x 0.001 + 4 > 4
                      {2000, true, 0, 1, 0},    // 3 x 1.0 + 1
                      {3500, true, 2, 1, 0},    // 1 x 0.5 + 1
                      {5000, true, 3, 1, 0}}},  // two windows later: forgotten
        SequenceCase{"SlidingWindowMidWindowStart",
                     limit(2, 10000, 0, kWindow),
                     2,
                     {{7000, true, 1, 3, 0},
                      {7000, true, 0, 3, 0},
                      {9000, false, 0, 1, 6},    // next window at 5 s in: 2 x 0.5 + 1
                      {10000, false, 0, 10, 5},  // 2 x 1.0 + 1 > 2
                      {14999, false, 0, 6, 1},
                      {15000, true, 0, 5, 0}}}),
    [](const auto& info) { return info.param.name; });

TEST(RateLimiter, KeysAreIndependent) {
  auto rl = RateLimiter::create(limit(1, 1000, 0, kBucket));
  ASSERT_TRUE(rl.ok());
  EXPECT_TRUE((*rl)->check("a", at(0)).allowed);
  EXPECT_FALSE((*rl)->check("a", at(0)).allowed);
  EXPECT_TRUE((*rl)->check("b", at(0)).allowed);
  RateLimiterStats s = (*rl)->stats();
  EXPECT_EQ(s.keys, 2u);
  EXPECT_EQ(s.allowed, 2u);
  EXPECT_EQ(s.limited, 1u);
}

TEST(RateLimiter, LeastRecentlyUsedKeyIsEvicted) {
  auto rl = RateLimiter::create(limit(1, 1000, 0, kBucket), {.max_keys = 3, .shards = 1});
  ASSERT_TRUE(rl.ok());
  auto& r = **rl;
  for (const char* k : {"a", "b", "c"}) ASSERT_TRUE(r.check(k, at(0)).allowed);
  EXPECT_FALSE(r.check("a", at(1)).allowed);  // a is now the most recent
  EXPECT_TRUE(r.check("d", at(2)).allowed);   // evicts b
  EXPECT_EQ(r.stats().evictions, 1u);
  EXPECT_FALSE(r.check("a", at(3)).allowed);  // a was kept
  EXPECT_FALSE(r.check("c", at(3)).allowed);  // c was kept
  EXPECT_TRUE(r.check("b", at(3)).allowed);   // b starts afresh (evicts d)
  EXPECT_EQ(r.stats().keys, 3u);
  EXPECT_EQ(r.stats().evictions, 2u);
}

TEST(RateLimiter, KeyCountIsBounded) {
  struct Row {
    size_t max_keys, shards, bound;
  };
  for (const Row& row : {Row{64, 16, 64}, Row{100, 32, 96}, Row{1000, 1, 1000}, Row{5, 16, 16}}) {
    auto rl = RateLimiter::create(limit(10, 1000, 0, kWindow),
                                  {.max_keys = row.max_keys, .shards = row.shards});
    ASSERT_TRUE(rl.ok());
    for (int i = 0; i < 5000; ++i) (*rl)->check("client-" + std::to_string(i), at(i));
    RateLimiterStats s = (*rl)->stats();
    EXPECT_LE(s.keys, row.bound) << row.max_keys << "/" << row.shards;
    EXPECT_GT(s.keys, 0u);
    EXPECT_EQ(s.keys + s.evictions, 5000u);
  }
}

TEST(RateLimiter, ConcurrentChecksNeverExceedTheLimit) {
  for (auto algo : {kBucket, kWindow}) {
    auto rl = RateLimiter::create(limit(1000, 3600000, 0, algo));
    ASSERT_TRUE(rl.ok());
    std::atomic<uint64_t> allowed{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < 1000; ++i) {
          if ((*rl)->check("shared", at(0)).allowed) allowed.fetch_add(1);
          (*rl)->check("own-" + std::to_string(t), at(0));
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(allowed.load(), 1000u);  // exactly the limit: 4000 tries at one instant
    RateLimiterStats s = (*rl)->stats();
    EXPECT_EQ(s.allowed + s.limited, 8000u);
    EXPECT_EQ(s.keys, 5u);
  }
}

TEST(RateLimiter, CreateValidates) {
  struct Row {
    std::string key;
    uint64_t requests;
    int64_t interval_ms;
    uint64_t burst;
    bool ok;
    std::string header;
  };
  for (const Row& r :
       {Row{"ClientIP", 10, 1000, 0, true, ""},
        Row{"Header:X-Api-Key", 10, 1000, 0, true, "X-Api-Key"},
        Row{"Header:", 10, 1000, 0, false, ""}, Row{"Cookie:x", 10, 1000, 0, false, ""},
        Row{"ClientIP", 0, 1000, 0, false, ""}, Row{"ClientIP", 10, 0, 0, false, ""},
        Row{"ClientIP", UINT64_MAX, 1000, 1, false, ""},
        Row{"ClientIP", 1ull << 40, 3600000, 0, false, ""}}) {
    auto c = limit(r.requests, r.interval_ms, r.burst, kBucket);
    c.key = r.key;
    auto rl = RateLimiter::create(c);
    EXPECT_EQ(rl.ok(), r.ok) << r.key << " " << r.requests;
    if (rl.ok()) {
      EXPECT_EQ((*rl)->key_header(), r.header);
    }
  }
}

}  // namespace
}  // namespace gantry::filters
