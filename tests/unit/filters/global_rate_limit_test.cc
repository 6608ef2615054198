// The pure part of global rate limits (proxy/filters/global_rate_limit.h):
// store keys, the limits the script can count, the fail-open fallback limit.
#include "proxy/filters/global_rate_limit.h"

#include <gtest/gtest.h>

#include <algorithm>

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

TEST(GlobalScript, HasAStableSha1) {
  EXPECT_EQ(global_script_sha1().size(), 40u);
  EXPECT_NE(global_script().find("redis.call('TIME')"), std::string_view::npos);
}

}  // namespace
}  // namespace gantry::filters
