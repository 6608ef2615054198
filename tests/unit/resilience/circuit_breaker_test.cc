// Tests of the circuit breaker and resource limits
// (proxy/resilience/circuit_breaker.h) on a fake clock: every transition is a
// scripted sequence of admissions and results with the expected answers.
#include "proxy/resilience/circuit_breaker.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace gantry::resilience {
namespace {

using std::chrono::milliseconds;

SteadyTime at(int64_t ms) { return SteadyTime{} + std::chrono::hours(1) + milliseconds(ms); }

enum class Op { kAdmit, kSuccess, kFailure, kCancel };

struct Step {
  int64_t t_ms;
  Op op;
  bool allowed = true;  // kAdmit: expected answer
  bool probe = false;   // kAdmit: expected probe flag
  std::optional<BreakerState> state_after = std::nullopt;
  int admission = -1;  // results: which admission (in admit order); -1: the latest outstanding
};

struct BreakerCase {
  std::string name;
  snapshot::CircuitBreaker config;
  std::vector<Step> steps;
};

snapshot::CircuitBreaker consecutive(uint32_t n, uint32_t half_open = 1) {
  snapshot::CircuitBreaker c;
  c.consecutive_failures = n;
  c.failure_ratio = 0;
  c.open_duration = milliseconds(5000);
  c.half_open_requests = half_open;
  return c;
}

snapshot::CircuitBreaker ratio(double r, uint32_t min_requests, milliseconds window) {
  snapshot::CircuitBreaker c;
  c.consecutive_failures = 0;
  c.failure_ratio = r;
  c.min_requests = min_requests;
  c.window = window;
  c.open_duration = milliseconds(5000);
  return c;
}

constexpr auto kClosed = BreakerState::kClosed;
constexpr auto kOpen = BreakerState::kOpen;
constexpr auto kHalfOpen = BreakerState::kHalfOpen;

// A admits (expecting allowed), P admits a probe, R expects a refusal; S, F
// and C record a success, failure or cancellation for the latest outstanding
// admission (Sn: for admission number n).
Step A(int64_t t, std::optional<BreakerState> s = std::nullopt) {
  return {t, Op::kAdmit, true, false, s};
}
Step P(int64_t t, std::optional<BreakerState> s = std::nullopt) {
  return {t, Op::kAdmit, true, true, s};
}
Step R(int64_t t, std::optional<BreakerState> s = std::nullopt) {
  return {t, Op::kAdmit, false, false, s};
}
Step S(int64_t t, std::optional<BreakerState> s = std::nullopt) {
  return {t, Op::kSuccess, true, false, s};
}
Step F(int64_t t, std::optional<BreakerState> s = std::nullopt) {
  return {t, Op::kFailure, true, false, s};
}
Step C(int64_t t, std::optional<BreakerState> s = std::nullopt) {
  return {t, Op::kCancel, true, false, s};
}
Step Sn(int64_t t, int n, std::optional<BreakerState> s) {
  return {t, Op::kSuccess, true, false, s, n};
}

class BreakerScript : public ::testing::TestWithParam<BreakerCase> {};

TEST_P(BreakerScript, FollowsTheScript) {
  const BreakerCase& c = GetParam();
  auto cb = CircuitBreaker::create(c.config);
  ASSERT_TRUE(cb.ok()) << cb.error().message;
  std::vector<std::optional<Admission>> admitted;  // in admit order; reset once recorded
  for (size_t i = 0; i < c.steps.size(); ++i) {
    const Step& s = c.steps[i];
    SCOPED_TRACE("step " + std::to_string(i) + " at " + std::to_string(s.t_ms) + " ms");
    switch (s.op) {
      case Op::kAdmit: {
        Admission a = (*cb)->try_admit(at(s.t_ms));
        EXPECT_EQ(a.allowed, s.allowed);
        EXPECT_EQ(a.probe, s.probe);
        if (a.allowed) admitted.push_back(a);
        break;
      }
      case Op::kSuccess:
      case Op::kFailure:
      case Op::kCancel: {
        int n = s.admission;
        if (n < 0) {
          for (n = static_cast<int>(admitted.size()) - 1; n >= 0 && !admitted[n]; --n) {
          }
        }
        ASSERT_TRUE(n >= 0 && n < static_cast<int>(admitted.size()) && admitted[n])
            << "script records a result for no outstanding admission";
        const CallResult r = s.op == Op::kSuccess   ? CallResult::kSuccess
                             : s.op == Op::kFailure ? CallResult::kFailure
                                                    : CallResult::kCancelled;
        (*cb)->record(*admitted[n], r, at(s.t_ms));
        admitted[n].reset();
        break;
      }
    }
    if (s.state_after) {
      EXPECT_EQ(to_string((*cb)->state(at(s.t_ms))), std::string(to_string(*s.state_after)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Transitions, BreakerScript,
    ::testing::Values(
        BreakerCase{"ConsecutiveFailuresTrip",
                    consecutive(3),
                    {A(0), F(0, kClosed), A(1), F(1, kClosed), A(2), F(2, kOpen), R(3, kOpen)}},
        BreakerCase{"SuccessResetsTheStreak",
                    consecutive(3),
                    {A(0), F(0), A(1), F(1), A(2), S(2, kClosed), A(3), F(3), A(4), F(4, kClosed),
                     A(5), F(5, kOpen)}},
        BreakerCase{"OpenRejectsUntilOpenDurationThenHalfOpen",
                    consecutive(1),
                    {A(0), F(0, kOpen), R(1), R(4999, kOpen), P(5000, kHalfOpen)}},
        BreakerCase{"ProbeSuccessCloses",
                    consecutive(1),
                    {A(0), F(0, kOpen), P(5000), S(5001, kClosed), A(5002), A(5003)}},
        BreakerCase{"ProbeFailureReopensForAFullOpenDuration",
                    consecutive(1),
                    {A(0), F(0), P(6000), F(6001, kOpen), R(11000), P(11001, kHalfOpen)}},
        BreakerCase{"HalfOpenAdmitsAtMostHalfOpenRequests",
                    consecutive(1, 2),
                    {A(0), F(0), P(5000), P(5000), R(5000), R(5001, kHalfOpen)}},
        BreakerCase{"HalfOpenClosesOnlyAfterAllProbesSucceed",
                    consecutive(1, 2),
                    {A(0), F(0), P(5000), P(5000), S(5001, kHalfOpen), S(5002, kClosed)}},
        BreakerCase{"OneFailedProbeOfTwoReopens",
                    consecutive(1, 2),
                    {A(0), F(0), P(5000), P(5000), S(5001, kHalfOpen), F(5002, kOpen)}},
        BreakerCase{"CancelledProbeFreesItsSlot",
                    consecutive(1),
                    {A(0), F(0), P(5000), R(5000), C(5001, kHalfOpen), P(5002), S(5003, kClosed)}},
        BreakerCase{"ResultFromBeforeTheTripIsIgnored",
                    consecutive(2),
                    // The first admission is slow: the breaker trips and goes half-open
                    // before its success arrives, which must not close the breaker.
                    {A(0), A(1), F(1), A(2), F(2, kOpen), P(5002), Sn(5003, 0, kHalfOpen),
                     S(5004, kClosed)}},
        BreakerCase{"RatioBelowMinRequestsDoesNotTrip",
                    ratio(0.5, 4, milliseconds(10000)),
                    {A(0), F(0), A(1), F(1), A(2), F(2, kClosed)}},
        BreakerCase{"RatioTripsAtThreshold",
                    ratio(0.5, 4, milliseconds(10000)),
                    {A(0), S(0), A(1), F(1), A(2), S(2), A(3), F(3, kOpen)}},
        BreakerCase{"RatioJustBelowThresholdStaysClosed",
                    ratio(0.5, 4, milliseconds(10000)),
                    {A(0), S(0), A(1), S(1), A(2), F(2), A(3), S(3), A(4), F(4, kClosed)}},
        BreakerCase{"RatioWindowSlidesOldFailuresOut",
                    ratio(0.5, 4, milliseconds(10000)),
                    // Three failures at t=0 leave the window by t=10000; then 1 of 4.
                    {A(0), F(0), A(0), F(0), A(0), F(0, kClosed), A(10000), S(10000), A(10001),
                     S(10001), A(10002), S(10002), A(10003), F(10003, kClosed)}},
        BreakerCase{"RatioWindowCountsRecentFailures",
                    ratio(0.5, 4, milliseconds(10000)),
                    {A(0), F(0), A(0), F(0), A(0), S(0, kClosed), A(8999), F(8999, kOpen)}},
        BreakerCase{
            "ClosingClearsTheRatioWindow",
            ratio(0.5, 2, milliseconds(10000)),
            {A(0), S(0), A(1), F(1, kOpen), P(5001), S(5002, kClosed), A(5003), F(5003, kClosed)}}),
    [](const auto& info) { return info.param.name; });

TEST(CircuitBreaker, StatsCountOpeningsAndRejections) {
  auto cb = CircuitBreaker::create(consecutive(2));
  ASSERT_TRUE(cb.ok());
  auto& b = **cb;
  b.record(b.try_admit(at(0)), CallResult::kFailure, at(0));
  BreakerStats s = b.stats(at(0));
  EXPECT_EQ(s.consecutive_failures, 1u);
  EXPECT_EQ(s.window_requests, 1u);
  EXPECT_EQ(s.window_failures, 1u);
  b.record(b.try_admit(at(1)), CallResult::kFailure, at(1));
  EXPECT_FALSE(b.try_admit(at(2)).allowed);
  EXPECT_FALSE(b.try_admit(at(3)).allowed);
  s = b.stats(at(3));
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.opened_total, 1u);
  EXPECT_EQ(s.rejected_total, 2u);
}

TEST(CircuitBreaker, CreateRejectsBadConfig) {
  struct Row {
    std::string want;
    snapshot::CircuitBreaker c;
  };
  std::vector<Row> rows;
  auto base = consecutive(5);
  auto c = base;
  c.failure_ratio = 1.5;
  rows.push_back({"failureRatio", c});
  c = base;
  c.open_duration = milliseconds(0);
  rows.push_back({"openDuration", c});
  c = base;
  c.half_open_requests = 0;
  rows.push_back({"halfOpenRequests", c});
  c = base;
  c.failure_ratio = 0.5;
  c.window = milliseconds(0);
  rows.push_back({"window", c});
  for (const auto& r : rows) {
    auto cb = CircuitBreaker::create(r.c);
    ASSERT_FALSE(cb.ok()) << r.want;
    EXPECT_NE(cb.error().message.find(r.want), std::string::npos) << cb.error().message;
  }
  EXPECT_TRUE(CircuitBreaker::create(base).ok());
}

TEST(CircuitBreaker, NeverOpensWithoutTriggers) {
  auto cb = CircuitBreaker::create(consecutive(0));
  ASSERT_TRUE(cb.ok());
  for (int i = 0; i < 100; ++i) {
    Admission a = (*cb)->try_admit(at(i));
    ASSERT_TRUE(a.allowed);
    (*cb)->record(a, CallResult::kFailure, at(i));
  }
  EXPECT_EQ((*cb)->state(at(100)), BreakerState::kClosed);
}

TEST(CircuitBreaker, ConcurrentFailuresOpenItOnce) {
  auto cb = CircuitBreaker::create(consecutive(50));
  ASSERT_TRUE(cb.ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        Admission a = (*cb)->try_admit(at(0));
        if (a.allowed) (*cb)->record(a, CallResult::kFailure, at(0));
      }
    });
  }
  for (auto& t : threads) t.join();
  BreakerStats s = (*cb)->stats(at(0));
  EXPECT_EQ(s.state, BreakerState::kOpen);
  EXPECT_EQ(s.opened_total, 1u);
  EXPECT_GT(s.rejected_total, 0u);
}

TEST(ResourceLimit, CeilingAndRelease) {
  ResourceLimit l(2);
  EXPECT_TRUE(l.try_acquire());
  EXPECT_TRUE(l.try_acquire());
  EXPECT_FALSE(l.try_acquire());
  EXPECT_EQ(l.in_use(), 2u);
  EXPECT_EQ(l.rejected(), 1u);
  l.release();
  EXPECT_TRUE(l.try_acquire());
  l.release();
  l.release();
  l.release();  // an extra release never underflows
  EXPECT_EQ(l.in_use(), 0u);
}

TEST(ResourceLimit, ZeroIsUnlimited) {
  ResourceLimit l(0);
  for (int i = 0; i < 10000; ++i) ASSERT_TRUE(l.try_acquire());
  EXPECT_EQ(l.in_use(), 10000u);
  EXPECT_EQ(l.rejected(), 0u);
}

TEST(ResourceLimit, ConcurrentHoldersNeverExceedTheCeiling) {
  ResourceLimit l(3);
  std::atomic<uint32_t> holders{0}, peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        if (!l.try_acquire()) continue;
        const uint32_t h = holders.fetch_add(1) + 1;
        uint32_t p = peak.load();
        while (h > p && !peak.compare_exchange_weak(p, h)) {
        }
        holders.fetch_sub(1);
        l.release();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(peak.load(), 3u);
  EXPECT_EQ(l.in_use(), 0u);
}

TEST(ClusterLimits, FromConfig) {
  snapshot::CircuitBreaker c;
  c.max_connections = 1;
  c.max_pending_requests = 0;
  ClusterLimits limits(c);
  EXPECT_TRUE(limits.connections.try_acquire());
  EXPECT_FALSE(limits.connections.try_acquire());
  EXPECT_TRUE(limits.pending_requests.try_acquire());
  EXPECT_TRUE(limits.pending_requests.try_acquire());
}

}  // namespace
}  // namespace gantry::resilience
