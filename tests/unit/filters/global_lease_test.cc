// Leases of global decisions (proxy/filters/global_lease.h): sizing from the
// demand and the cap, the decisions a lease answers (the store's numbers for
// each place), and when a lease ends.
#include "proxy/filters/global_lease.h"

#include <gtest/gtest.h>

#include <chrono>
#include <vector>

namespace gantry::filters {
namespace {

using Clock = LeaseBook::Clock;
using std::chrono::microseconds;
using std::chrono::milliseconds;

GlobalCheck bucket(uint64_t requests, uint64_t interval_ms, const char* key = "k") {
  GlobalCheck c;
  c.key = key;
  c.requests = requests;
  c.interval_us = interval_ms * 1000;
  c.capacity = requests;
  return c;
}

GlobalCheck window(uint64_t requests, uint64_t interval_ms, const char* key = "k") {
  GlobalCheck c = bucket(requests, interval_ms, key);
  c.sliding_window = true;
  return c;
}

// The token bucket's state the script answers for a full bucket with
// `admitted` of the call admitted.
GlobalKeyState full_bucket(const GlobalCheck& c, uint64_t admitted) {
  GlobalKeyState s;
  s.admitted = admitted;
  s.tokens = c.capacity * c.interval_us;
  return s;
}

// Counts `n` decisions of c's key at `t` (none answered from a lease).
void demand(LeaseBook& b, const GlobalCheck& c, uint64_t n, Clock::time_point t) {
  RateLimitDecision d;
  for (uint64_t i = 0; i < n; ++i) ASSERT_FALSE(b.take(c, t, d));
}

// A key with a demand of 10 decisions at `sent` asks, with one real
// decision and a cap of 100, and its call is answered at `now` from a full
// bucket: the lease's size (all of it admitted).
uint64_t lease_from_full_bucket(LeaseBook& b, const GlobalCheck& c, Clock::time_point sent, Clock::time_point now) {
  demand(b, c, 10, sent);
  const uint64_t extra = b.ask(c, 1, 100, sent);
  b.grant(c, full_bucket(c, 1 + extra), 1, extra, sent, now);
  return extra;
}

TEST(LeaseCap, ASharePerHolderOfTheLimit) {
  struct Case {
    uint64_t capacity;
    uint32_t percent;
    uint64_t holders;
    uint64_t want;
  };
  const std::vector<Case> cases = {
      {1'000'000, 1, 4, 2'500},  // 1% of the limit over 4 holders
      {1'000'000, 0, 4, 0},      // leases off
      {1'000'000, 100, 1, 1'000'000},
      {1'000'000, 250, 1, 1'000'000},  // at most the whole limit
      {100, 1, 2, 0},                  // 0.5: below kMinLease, no leases for small limits
      {1'600, 1, 4, 4},                // exactly kMinLease
      {1'599, 1, 4, 0},
      {1'000, 1, 0, 0},  // no holders: nothing (never a division by zero)
  };
  for (const Case& k : cases) {
    GlobalCheck c = bucket(k.capacity, 1000);
    EXPECT_EQ(LeaseBook::cap(c, k.percent, k.holders), k.want)
        << k.capacity << " " << k.percent << "% " << k.holders << " holders";
  }
}

TEST(LeaseBook, NoLeaseWithoutDemandNorBelowTheMinimum) {
  LeaseBook b;
  const GlobalCheck c = bucket(1'000'000, 1000);
  const Clock::time_point t0 = Clock::now();
  EXPECT_EQ(b.ask(c, 1, 1000, t0), 0u) << "a key never seen";
  demand(b, c, 1, t0);
  EXPECT_EQ(b.ask(c, 1, 1000, t0), 0u) << "one decision is no demand";
  demand(b, c, 6, t0);
  EXPECT_EQ(b.ask(c, 3, 1000, t0), 0u) << "half of 7 < kMinLease";
  demand(b, c, 1, t0);
  EXPECT_EQ(b.ask(c, 4, 0, t0), 0u) << "a cap below the minimum: no leases for the limit";
  EXPECT_EQ(b.ask(c, 4, 1000, t0), 4u) << "half the 8 decisions of the period";
}

TEST(LeaseBook, SizedByThePeriodsDemandAndCapped) {
  LeaseBook b;
  const GlobalCheck c = bucket(1'000'000, 1000);
  const Clock::time_point t0 = Clock::now();
  demand(b, c, 300, t0);
  EXPECT_EQ(b.ask(c, 1, 100, t0), 100u) << "capped";
  b.settle(c);
  EXPECT_EQ(b.ask(c, 1, 1000, t0), 150u) << "half the period's demand";
  EXPECT_EQ(b.ask(c, 1, 1000, t0), 0u) << "one ask out per key";
  b.settle(c);
  // The next period: the previous one's demand still counts...
  const Clock::time_point t1 = t0 + LeaseBook::kTtl;
  demand(b, c, 10, t1);
  EXPECT_EQ(b.ask(c, 1, 1000, t1), 150u);
  b.settle(c);
  // ...and after two quiet periods only what came since.
  const Clock::time_point t3 = t1 + 3 * LeaseBook::kTtl;
  demand(b, c, 10, t3);
  EXPECT_EQ(b.ask(c, 1, 1000, t3), 5u);
}

TEST(LeaseBook, ALeaseAnswersTheStoresNumbersForEachPlace) {
  LeaseBook b;
  const GlobalCheck c = bucket(100, 1000);  // capacity 100
  const Clock::time_point t0 = Clock::now();
  demand(b, c, 16, t0);
  const uint64_t extra = b.ask(c, 2, 50, t0);
  ASSERT_EQ(extra, 8u);
  // The call carried 2 real decisions and 8 more: all admitted.
  const GlobalKeyState s = full_bucket(c, 10);
  b.grant(c, s, 2, extra, t0, t0);
  EXPECT_EQ(b.drain_leased(), 8u);
  for (uint64_t i = 2; i < 10; ++i) {
    RateLimitDecision d;
    ASSERT_TRUE(b.take(c, t0 + milliseconds(1), d)) << i;
    const RateLimitDecision want = global_decision(c, s, i);
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, want.remaining) << i;
    EXPECT_EQ(d.remaining, 100 - i - 1) << "counts down from the call's instant";
    EXPECT_EQ(d.limit, 100u);
    EXPECT_EQ(d.reset_seconds, want.reset_seconds);
  }
  RateLimitDecision d;
  EXPECT_FALSE(b.take(c, t0 + milliseconds(1), d)) << "exhausted";
  EXPECT_EQ(b.drain_unused(), 0u);
}

TEST(LeaseBook, ALeaseHoldsOnlyWhatTheRealDecisionsLeft) {
  LeaseBook b;
  const GlobalCheck c = bucket(100, 1000);
  const Clock::time_point t0 = Clock::now();
  demand(b, c, 40, t0);
  const uint64_t extra = b.ask(c, 5, 50, t0);
  ASSERT_EQ(extra, 20u);
  // 3 tokens left in the bucket: the 3 first real decisions took them.
  GlobalKeyState s;
  s.admitted = 3;
  s.tokens = 3 * c.interval_us;
  b.grant(c, s, 5, extra, t0, t0);
  EXPECT_EQ(b.drain_leased(), 0u);
  RateLimitDecision d;
  EXPECT_FALSE(b.take(c, t0, d));
  // Some left beyond the real ones: only those are leased.
  demand(b, c, 20, t0);
  const uint64_t extra2 = b.ask(c, 5, 50, t0);
  s.admitted = 7;
  s.tokens = 7 * c.interval_us + 123;
  b.grant(c, s, 5, extra2, t0, t0);
  EXPECT_EQ(b.drain_leased(), 2u);
  EXPECT_TRUE(b.take(c, t0, d));
  EXPECT_TRUE(b.take(c, t0, d));
  EXPECT_FALSE(b.take(c, t0, d));
}

TEST(LeaseBook, ALeaseEndsAfterItsTtlAndItsPlacesAreCountedUnused) {
  LeaseBook b;
  const GlobalCheck c = bucket(1000, 1000);
  const Clock::time_point t0 = Clock::now();
  const uint64_t extra = lease_from_full_bucket(b, c, t0, t0 + milliseconds(1));
  RateLimitDecision d;
  ASSERT_TRUE(b.take(c, t0 + milliseconds(2), d));
  // kTtl after the call was sent, not after the reply.
  EXPECT_FALSE(b.take(c, t0 + LeaseBook::kTtl, d));
  EXPECT_EQ(b.drain_unused(), extra - 1);
}

TEST(LeaseBook, AWindowsLeaseEndsWithTheStoresWindow) {
  LeaseBook b;
  const GlobalCheck c = window(1000, 1000);
  const Clock::time_point t0 = Clock::now();
  demand(b, c, 10, t0);
  const uint64_t extra = b.ask(c, 1, 100, t0);
  GlobalKeyState s;
  s.admitted = 1 + extra;
  s.elapsed = 990'000;  // 10 ms of the store's window left
  b.grant(c, s, 1, extra, t0, t0);
  RateLimitDecision d;
  ASSERT_TRUE(b.take(c, t0 + milliseconds(9), d));
  EXPECT_EQ(d.remaining, global_decision(c, s, 1).remaining);
  EXPECT_FALSE(b.take(c, t0 + milliseconds(10), d)) << "a count of one window is not used in the next";
  EXPECT_EQ(b.drain_unused(), extra - 1);
}

TEST(LeaseBook, ALateReplyLeasesNothing) {
  LeaseBook b;
  const GlobalCheck c = bucket(1000, 1000);
  const Clock::time_point t0 = Clock::now();
  const uint64_t extra = lease_from_full_bucket(b, c, t0, t0 + LeaseBook::kTtl);
  RateLimitDecision d;
  EXPECT_FALSE(b.take(c, t0 + LeaseBook::kTtl, d));
  EXPECT_EQ(b.drain_leased(), extra);
  EXPECT_EQ(b.drain_unused(), extra);
}

TEST(LeaseBook, AChangedLimitDoesNotUseTheOldLease) {
  LeaseBook b;
  const GlobalCheck c = bucket(1000, 1000);
  const Clock::time_point t0 = Clock::now();
  const uint64_t extra = lease_from_full_bucket(b, c, t0, t0);
  GlobalCheck other = c;
  other.requests = 2000;
  other.capacity = 2000;
  RateLimitDecision d;
  EXPECT_FALSE(b.take(other, t0, d));
  EXPECT_EQ(b.drain_unused(), extra);
}

TEST(LeaseBook, NoAskWhileALeaseIsLive) {
  // Decisions submitted before a lease's call was answered missed it; the
  // call that carries them must not ask for another lease, which would
  // replace the live one and waste its places.
  LeaseBook b;
  const GlobalCheck c = bucket(1000, 1000);
  const Clock::time_point t0 = Clock::now();
  const uint64_t extra = lease_from_full_bucket(b, c, t0, t0);
  EXPECT_EQ(b.ask(c, 3, 100, t0), 0u);
  RateLimitDecision d;
  for (uint64_t i = 0; i < extra; ++i) ASSERT_TRUE(b.take(c, t0, d));
  EXPECT_GT(b.ask(c, 3, 100, t0), 0u) << "exhausted: the next one";
  EXPECT_EQ(b.drain_unused(), 0u);
}

TEST(LeaseBook, EndAllCountsWhatLeasesHeld) {
  LeaseBook b;
  const GlobalCheck c = bucket(1000, 1000);
  const Clock::time_point t0 = Clock::now();
  const uint64_t extra = lease_from_full_bucket(b, c, t0, t0);
  RateLimitDecision d;
  ASSERT_TRUE(b.take(c, t0, d));
  b.end_all();
  EXPECT_EQ(b.drain_unused(), extra - 1);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_FALSE(b.take(c, t0, d));
}

TEST(LeaseBook, SettleLetsTheKeyAskAgain) {
  LeaseBook b;
  const GlobalCheck c = bucket(1000, 1000);
  const Clock::time_point t0 = Clock::now();
  demand(b, c, 10, t0);
  ASSERT_GT(b.ask(c, 1, 100, t0), 0u);
  EXPECT_EQ(b.ask(c, 1, 100, t0), 0u);
  b.settle(c);
  EXPECT_GT(b.ask(c, 1, 100, t0), 0u);
}

TEST(LeaseBook, KeysAreBoundedAndIdleOnesPurged) {
  LeaseBook b;
  const Clock::time_point t0 = Clock::now();
  std::vector<std::string> keys;
  for (size_t i = 0; i < LeaseBook::kMaxKeys; ++i) {
    // "k" + to_string(i) trips GCC 12's -Wrestrict false positive at -O3.
    std::string k = "k";
    k += std::to_string(i);
    keys.push_back(std::move(k));
  }
  for (const std::string& k : keys) {
    GlobalCheck c = bucket(1000, 1000);
    c.key = k;
    demand(b, c, 1, t0);
  }
  EXPECT_EQ(b.size(), LeaseBook::kMaxKeys);
  GlobalCheck late = bucket(1000, 1000, "late");
  demand(b, late, 1, t0);
  EXPECT_EQ(b.size(), LeaseBook::kMaxKeys) << "full of recent keys: the new one goes without";
  demand(b, late, 1, t0 + 2 * LeaseBook::kTtl - milliseconds(1));
  EXPECT_EQ(b.size(), LeaseBook::kMaxKeys) << "still recent";
  demand(b, late, 1, t0 + 2 * LeaseBook::kTtl);
  EXPECT_EQ(b.size(), LeaseBook::kMaxKeys) << "one sweep per period, not one per new key";
  demand(b, late, 1, t0 + 3 * LeaseBook::kTtl);
  EXPECT_EQ(b.size(), 1u) << "the idle ones were purged";
}

}  // namespace
}  // namespace gantry::filters
