// The pure part of global rate limits (proxy/filters/global_rate_limit.h):
// store keys, the limits the script can count, the fail-open fallback limit.
#include "proxy/filters/global_rate_limit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace gantry::filters {
namespace {

snapshot::RateLimit limit(uint64_t requests, int64_t interval_ms, uint64_t burst = 0) {
  snapshot::RateLimit r;
  r.requests = requests;
  r.interval = snapshot::Millis(interval_ms);
  r.burst = burst;
  r.scope = snapshot::RateLimitScope::kGlobal;
  return r;
}

TEST(GlobalKey, OneHashTagOverTheWholeIdentity) {
  const std::string k = global_key("gantry:rl:", "default/shop#0", limit(100, 1000), "10.0.0.7");
  EXPECT_TRUE(k.starts_with("gantry:rl:{default/shop#0|")) << k;
  EXPECT_TRUE(k.ends_with("|10.0.0.7}")) << k;
  EXPECT_EQ(std::count(k.begin(), k.end(), '{'), 1);
  // The same on every replica (no per-process hash), different per client and rule.
  EXPECT_EQ(k, global_key("gantry:rl:", "default/shop#0", limit(100, 1000), "10.0.0.7"));
  EXPECT_NE(k, global_key("gantry:rl:", "default/shop#0", limit(100, 1000), "10.0.0.8"));
  EXPECT_NE(k, global_key("gantry:rl:", "default/shop#1", limit(100, 1000), "10.0.0.7"));
}

TEST(GlobalKey, AChangedLimitStartsAfresh) {
  const std::string a = global_key("p:", "r#0", limit(100, 1000), "c");
  EXPECT_NE(a, global_key("p:", "r#0", limit(101, 1000), "c"));
  EXPECT_NE(a, global_key("p:", "r#0", limit(100, 2000), "c"));
  EXPECT_NE(a, global_key("p:", "r#0", limit(100, 1000, 5), "c"));
  auto w = limit(100, 1000);
  w.algorithm = snapshot::RateLimitAlgorithm::kSlidingWindow;
  EXPECT_NE(a, global_key("p:", "r#0", w, "c"));
  // failureMode and statusCode do not change what is counted.
  auto closed = limit(100, 1000);
  closed.failure_mode = snapshot::RateLimitFailureMode::kClosed;
  closed.status_code = 503;
  EXPECT_EQ(a, global_key("p:", "r#0", closed, "c"));
}

TEST(GlobalKey, LongClientKeysAreDigested) {
  const std::string long_key(500, 'x');
  const std::string k = global_key("p:", "r#0", limit(1, 1000), long_key);
  EXPECT_LT(k.size(), 140u);
  EXPECT_NE(k.find("|sha256:"), std::string::npos);
  EXPECT_NE(k, global_key("p:", "r#0", limit(1, 1000), std::string(500, 'y')));
}

TEST(GlobalCheck, CarriesTheAlgorithmsParameters) {
  GlobalCheck t = global_check(limit(100, 1000, 20));
  EXPECT_FALSE(t.sliding_window);
  EXPECT_EQ(t.requests, 100u);
  EXPECT_EQ(t.interval_us, 1000000u);
  EXPECT_EQ(t.capacity, 120u);
  auto w = limit(100, 1000, 20);
  w.algorithm = snapshot::RateLimitAlgorithm::kSlidingWindow;
  GlobalCheck s = global_check(w);
  EXPECT_TRUE(s.sliding_window);
  EXPECT_EQ(s.capacity, 100u);
}

TEST(GlobalLimitFits, BelowTwoToThe53) {
  EXPECT_TRUE(global_limit_fits(limit(100, 1000)).ok());
  EXPECT_TRUE(global_limit_fits(limit(1000000, 3600000)).ok());  // 3.6e15 < 2^53
  EXPECT_FALSE(global_limit_fits(limit(uint64_t{1} << 40, 3600000)).ok());
  EXPECT_FALSE(global_limit_fits(limit(1, 3600000, uint64_t{1} << 40)).ok());
}

TEST(FallbackLimit, DividesByTheExpectedReplicas) {
  struct Row {
    uint64_t requests, burst;
    uint32_t replicas;
    uint64_t want_requests, want_burst;
  };
  const Row rows[] = {{100, 20, 4, 25, 5}, {100, 0, 1, 100, 0}, {3, 1, 4, 1, 0}, {10, 10, 0, 10, 10}};
  for (const Row& r : rows) {
    snapshot::RateLimit f = fallback_limit(limit(r.requests, 1000, r.burst), r.replicas);
    EXPECT_EQ(f.requests, r.want_requests) << r.requests << "/" << r.replicas;
    EXPECT_EQ(f.burst, r.want_burst) << r.burst << "/" << r.replicas;
    EXPECT_EQ(f.scope, snapshot::RateLimitScope::kLocal);
  }
}

TEST(ClusterSlot, MatchesRedisClusterKeySlot) {
  // CLUSTER KEYSLOT's answers (the Redis Cluster specification's CRC16 and
  // hash tags): 0x31C3 is the specification's CRC16 of "123456789".
  struct Row {
    std::string_view key;
    uint16_t slot;
  };
  const Row rows[] = {
      {"123456789", 0x31C3 & 16383},
      {"foo", 12182},
      {"bar", 5061},
      {"{user1000}.following", 3443},
      {"{user1000}.followers", 3443},
      {"user1000", 3443},
      {"x{foo}y", 12182},
      {"{bar}{foo}", 5061},  // the first tag only
  };
  for (const Row& r : rows) EXPECT_EQ(cluster_slot(r.key), r.slot) << r.key;
  EXPECT_NE(cluster_slot("foo{}{bar}"), cluster_slot("bar"));  // an empty tag: the whole key is hashed
  EXPECT_EQ(cluster_slot("foo{{bar}}zap"), cluster_slot("{bar"));  // the tag is "{bar"
  // A limit's keys: the whole identity is the tag.
  EXPECT_EQ(cluster_slot("gantry:rl:{ns/r#0|abcd|1.2.3.4}"), cluster_slot("other:{ns/r#0|abcd|1.2.3.4}"));
}

// Coalesced decisions: the store answers (key, n) with how many it admitted
// and the key's state before them; global_decision derives each one's
// numbers. They must be what deciding the n requests one by one at one
// instant gives: the local limiter (rate_limiter.h) is the reference, its
// algorithms being the script's line for line.
struct Burst {
  uint64_t at_us;  // after the rows' origin
  uint64_t n;
};
struct CoalesceRow {
  const char* name;
  bool window;
  uint64_t requests, burst;
  int64_t interval_ms;
  Burst first, second;  // the second one's decisions are compared
};

// The key's state (GlobalKeyState without `admitted`) before `b`, as the
// script computes it after its refill / roll: known in closed form here
// because the first burst started from a fresh key.
GlobalKeyState state_before(const CoalesceRow& r, const GlobalCheck& c, uint64_t origin_us,
                            uint64_t first_admitted, const Burst& b) {
  GlobalKeyState s;
  if (!r.window) {
    const uint64_t full = c.capacity * c.interval_us;
    const uint64_t after_first = full - first_admitted * c.interval_us;
    s.tokens = std::min(full, after_first + (b.at_us - r.first.at_us) * c.requests);
    return s;
  }
  const uint64_t w1 = (origin_us + r.first.at_us) / c.interval_us;
  const uint64_t w2 = (origin_us + b.at_us) / c.interval_us;
  if (w2 == w1) s.curr = first_admitted;
  if (w2 == w1 + 1) s.prev = first_admitted;
  s.elapsed = (origin_us + b.at_us) % c.interval_us;
  return s;
}

TEST(GlobalDecision, CoalescedDecisionsAreTheOneByOneDecisions) {
  const CoalesceRow rows[] = {
      // Token bucket: a fresh key's burst; all admitted; some refused.
      {"bucket fresh, all fit", false, 10, 0, 1000, {0, 0}, {5000, 4}},
      {"bucket fresh, some refused", false, 3, 2, 1000, {0, 0}, {5000, 9}},
      {"bucket drained, none fit", false, 3, 0, 1000, {0, 3}, {1000, 4}},
      {"bucket partly refilled", false, 4, 1, 1000, {0, 5}, {600000, 6}},
      {"bucket refilled to full", false, 4, 1, 1000, {0, 5}, {5000000, 7}},
      {"bucket slow refill (1 per hour)", false, 1, 3, 3600000, {0, 4}, {1800000000, 3}},
      {"bucket one request", false, 100, 20, 1000, {0, 50}, {123457, 1}},
      // Sliding window: the same window, the next one (weighted previous
      // count), two windows later (a fresh count).
      {"window same, some refused", true, 5, 0, 1000, {100000, 2}, {400000, 6}},
      {"window same, all fit", true, 100, 0, 1000, {100000, 10}, {900000, 20}},
      {"window next, weighted previous", true, 10, 0, 1000, {100000, 8}, {1300000, 9}},
      {"window next, none fit", true, 4, 0, 1000, {500000, 4}, {1000001, 3}},
      {"window next, late in it", true, 4, 0, 1000, {500000, 4}, {1999999, 5}},
      {"window two later", true, 4, 0, 1000, {500000, 4}, {2500000, 6}},
      {"window one request", true, 7, 0, 60000, {0, 3}, {30000000, 1}},
  };
  for (const CoalesceRow& r : rows) {
    SCOPED_TRACE(r.name);
    snapshot::RateLimit cfg = limit(r.requests, r.interval_ms, r.burst);
    cfg.algorithm = r.window ? snapshot::RateLimitAlgorithm::kSlidingWindow : snapshot::RateLimitAlgorithm::kTokenBucket;
    cfg.scope = snapshot::RateLimitScope::kLocal;
    auto local = RateLimiter::create(cfg);
    ASSERT_TRUE(local.ok());
    const GlobalCheck c = global_check(cfg);
    const uint64_t origin = 1000 * c.interval_us;  // a window boundary
    auto at = [&](uint64_t us) { return SteadyTime(std::chrono::microseconds(origin + us)); };
    uint64_t first_admitted = 0;
    for (uint64_t i = 0; i < r.first.n; ++i) first_admitted += (*local)->check("k", at(r.first.at_us)).allowed;
    // The first check of a fresh key fixes the limiter's start: make one.
    if (r.first.n == 0) (*local)->check("other", at(0));
    std::vector<RateLimitDecision> want;
    uint64_t admitted = 0;
    for (uint64_t i = 0; i < r.second.n; ++i) {
      want.push_back((*local)->check("k", at(r.second.at_us)));
      admitted += want.back().allowed;
    }
    GlobalKeyState s = state_before(r, c, origin, first_admitted, r.second);
    s.admitted = admitted;
    ASSERT_TRUE(global_state_valid(c, s, r.second.n));
    for (uint64_t i = 0; i < r.second.n; ++i) {
      SCOPED_TRACE(i);
      const RateLimitDecision got = global_decision(c, s, i);
      EXPECT_EQ(got.allowed, want[i].allowed);
      EXPECT_EQ(got.limit, want[i].limit);
      EXPECT_EQ(got.remaining, want[i].remaining);
      EXPECT_EQ(got.reset_seconds, want[i].reset_seconds);
      EXPECT_EQ(got.retry_after_seconds, want[i].retry_after_seconds);
    }
  }
}

TEST(GlobalDecision, AdmittedOnesCountDownInOrder) {
  // 10 requests on a bucket with 4 tokens left: the first four are admitted
  // with RateLimit-Remaining 3, 2, 1, 0, the rest refused with Retry-After.
  GlobalCheck c{"k", false, 10, 1000000, 10};
  GlobalKeyState s{.admitted = 4, .tokens = 4 * 1000000 + 500};
  ASSERT_TRUE(global_state_valid(c, s, 10));
  for (uint64_t i = 0; i < 10; ++i) {
    const RateLimitDecision d = global_decision(c, s, i);
    EXPECT_EQ(d.allowed, i < 4) << i;
    EXPECT_EQ(d.remaining, i < 4 ? 3 - i : 0) << i;
    EXPECT_EQ(d.retry_after_seconds, i < 4 ? 0u : 1u) << i;
  }
}

TEST(GlobalDecision, StatesTheScriptCannotAnswerAreRefused) {
  const GlobalCheck bucket{"k", false, 10, 1000000, 12};
  struct Row {
    GlobalKeyState s;
    uint64_t n;
    bool valid;
  };
  const Row bucket_rows[] = {
      {{.admitted = 2, .tokens = 5000000}, 2, true},
      {{.admitted = 2, .tokens = 5000000}, 3, false},        // a third fits: admitted too few
      {{.admitted = 5, .tokens = 5000000}, 6, true},         // the sixth does not fit
      {{.admitted = 6, .tokens = 5000000}, 6, false},        // more than the tokens
      {{.admitted = 3, .tokens = 5000000}, 2, false},        // more than asked
      {{.admitted = 0, .tokens = 13000000}, 1, false},       // more than the capacity
  };
  for (const Row& r : bucket_rows) EXPECT_EQ(global_state_valid(bucket, r.s, r.n), r.valid) << r.s.admitted;
  const GlobalCheck window{"k", true, 4, 1000000, 4};
  const Row window_rows[] = {
      {{.admitted = 2, .curr = 2, .elapsed = 10}, 2, true},
      {{.admitted = 2, .curr = 2, .elapsed = 10}, 3, true},   // 2 + 2 = 4: full
      {{.admitted = 1, .curr = 2, .elapsed = 10}, 3, false},  // room for one more
      {{.admitted = 3, .prev = 4, .curr = 0, .elapsed = 750000}, 4, true},   // 4 x 1/4 weighted: room for 3
      {{.admitted = 1, .prev = 4, .curr = 0, .elapsed = 750000}, 2, false},  // a second fits
      {{.admitted = 0, .prev = 5, .elapsed = 0}, 1, false},   // prev above the limit
      {{.admitted = 3, .curr = 2, .elapsed = 10}, 3, false},  // above the limit
  };
  for (const Row& r : window_rows) EXPECT_EQ(global_state_valid(window, r.s, r.n), r.valid) << r.s.admitted;
}

TEST(GlobalScript, HasAStableSha1) {
  EXPECT_EQ(global_script_sha1().size(), 40u);
  EXPECT_NE(global_script().find("redis.call('TIME')"), std::string_view::npos);
}

}  // namespace
}  // namespace gantry::filters
