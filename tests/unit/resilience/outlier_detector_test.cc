// Tests of passive outlier detection (proxy/resilience/outlier_detector.h)
// on a fake clock: thresholds, growing ejection time, its decay, the
// max-ejection-percent cap and endpoint updates.
#include "proxy/resilience/outlier_detector.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gantry::resilience {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

SteadyTime at(int64_t ms) { return SteadyTime{} + std::chrono::hours(1) + milliseconds(ms); }

std::vector<std::string> endpoints(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back("10.0.0." + std::to_string(i + 1) + ":8080");
  return out;
}

snapshot::OutlierDetection config(uint32_t c5xx, uint32_t cconn, uint32_t max_percent = 100) {
  snapshot::OutlierDetection c;
  c.consecutive_5xx = c5xx;
  c.consecutive_connect_failures = cconn;
  c.base_ejection_time = milliseconds(10000);
  c.max_ejection_percent = max_percent;
  return c;
}

std::unique_ptr<OutlierDetector> make(const snapshot::OutlierDetection& c, size_t n) {
  auto eps = endpoints(n);
  auto d = OutlierDetector::create(c, eps);
  EXPECT_TRUE(d.ok());
  return d.ok() ? std::move(d.value()) : nullptr;
}

constexpr auto k5xx = UpstreamResult::kServerError;
constexpr auto kOk = UpstreamResult::kSuccess;
constexpr auto kConn = UpstreamResult::kConnectFailure;

struct ThresholdCase {
  std::string name;
  uint32_t c5xx, cconn;
  std::vector<UpstreamResult> results;
  int ejected_at;  // index of the result that ejects, -1: none
};

class Thresholds : public ::testing::TestWithParam<ThresholdCase> {};

TEST_P(Thresholds, EjectsExactlyAtTheThreshold) {
  const auto& c = GetParam();
  auto d = make(config(c.c5xx, c.cconn), 4);
  int ejected_at = -1;
  for (size_t i = 0; i < c.results.size(); ++i) {
    if (d->record(1, c.results[i], at(static_cast<int64_t>(i)))) {
      ASSERT_EQ(ejected_at, -1) << "ejected twice";
      ejected_at = static_cast<int>(i);
    }
  }
  EXPECT_EQ(ejected_at, c.ejected_at);
  EXPECT_EQ(d->is_ejected(1, at(100)), c.ejected_at >= 0);
  EXPECT_FALSE(d->is_ejected(0, at(100)));
}

INSTANTIATE_TEST_SUITE_P(
    Outlier, Thresholds,
    ::testing::Values(
        ThresholdCase{"Three5xx", 3, 5, {k5xx, k5xx, k5xx}, 2},
        ThresholdCase{"Two5xxNotEnough", 3, 5, {k5xx, k5xx}, -1},
        ThresholdCase{"SuccessResets5xx", 3, 5, {k5xx, k5xx, kOk, k5xx, k5xx}, -1},
        ThresholdCase{"SuccessResets5xxThenTrips", 3, 5, {k5xx, k5xx, kOk, k5xx, k5xx, k5xx}, 5},
        ThresholdCase{"ConnectFailures", 5, 2, {kConn, kConn}, 1},
        ThresholdCase{"A5xxResetsConnectFailures", 5, 2, {kConn, k5xx, kConn}, -1},
        ThresholdCase{"ConnectFailureDoesNotReset5xx", 2, 5, {k5xx, kConn, k5xx}, 2},
        ThresholdCase{"Zero5xxThresholdDisables", 0, 5, {k5xx, k5xx, k5xx, k5xx, k5xx, k5xx}, -1},
        ThresholdCase{
            "ZeroConnectThresholdDisables", 5, 0, {kConn, kConn, kConn, kConn, kConn, kConn}, -1}),
    [](const auto& info) { return info.param.name; });

TEST(OutlierDetector, EjectionTimeGrowsWithEachEjection) {
  auto d = make(config(1, 1), 4);
  ASSERT_TRUE(d->record(2, k5xx, at(0)));  // 1st: 10 s
  EXPECT_TRUE(d->is_ejected(2, at(9999)));
  EXPECT_FALSE(d->is_ejected(2, at(10000)));
  ASSERT_TRUE(d->record(2, k5xx, at(10001)));  // 2nd, right away: 20 s
  EXPECT_TRUE(d->is_ejected(2, at(30000)));
  EXPECT_FALSE(d->is_ejected(2, at(30001)));
  ASSERT_TRUE(d->record(2, k5xx, at(30002)));  // 3rd: 30 s
  EXPECT_TRUE(d->is_ejected(2, at(60001)));
  EXPECT_FALSE(d->is_ejected(2, at(60002)));
}

TEST(OutlierDetector, EjectionCountDecaysWhileHealthy) {
  auto d = make(config(1, 1), 4);
  ASSERT_TRUE(d->record(0, k5xx, at(0)));
  ASSERT_TRUE(d->record(0, k5xx, at(10000)));  // count 2: 20 s, back at 30000
  EXPECT_FALSE(d->is_ejected(0, at(30000)));
  // 20 s healthy = two base periods: the count decays to 0, so the next is 10 s.
  ASSERT_TRUE(d->record(0, k5xx, at(50000)));
  EXPECT_TRUE(d->is_ejected(0, at(59999)));
  EXPECT_FALSE(d->is_ejected(0, at(60000)));
}

TEST(OutlierDetector, EjectionTimeIsCapped) {
  auto c = config(1, 1);
  c.base_ejection_time = milliseconds(200000);  // 2 x 200 s > 300 s cap
  auto d = make(c, 2);
  ASSERT_TRUE(d->record(0, k5xx, at(0)));
  ASSERT_TRUE(d->record(0, k5xx, at(200000)));
  EXPECT_TRUE(d->is_ejected(0, at(499999)));
  EXPECT_FALSE(d->is_ejected(0, at(500000)));
}

struct PercentCase {
  std::string name;
  size_t endpoints;
  uint32_t percent;
  uint32_t max_ejected;
};

class MaxEjectionPercent : public ::testing::TestWithParam<PercentCase> {};

TEST_P(MaxEjectionPercent, CapsEjections) {
  const auto& c = GetParam();
  auto d = make(config(1, 1, c.percent), c.endpoints);
  uint32_t ejected = 0;
  for (size_t i = 0; i < c.endpoints; ++i) ejected += d->record(i, k5xx, at(0)) ? 1 : 0;
  EXPECT_EQ(ejected, c.max_ejected);
  OutlierStats s = d->stats(at(0));
  EXPECT_EQ(s.ejected, c.max_ejected);
  EXPECT_EQ(s.ejections_refused, c.endpoints - c.max_ejected);
}

INSTANTIATE_TEST_SUITE_P(
    Outlier, MaxEjectionPercent,
    ::testing::Values(PercentCase{"FourAt50", 4, 50, 2}, PercentCase{"FiveAt50", 5, 50, 2},
                      PercentCase{"TenAt10", 10, 10, 1}, PercentCase{"OneAt50", 1, 50, 0},
                      PercentCase{"OneAt100", 1, 100, 1}, PercentCase{"ThreeAt0", 3, 0, 0},
                      PercentCase{"ThreeAt100", 3, 100, 3}),
    [](const auto& info) { return info.param.name; });

TEST(OutlierDetector, ReturningEndpointFreesRoomForAnother) {
  auto d = make(config(1, 1, 50), 2);
  ASSERT_TRUE(d->record(0, k5xx, at(0)));
  EXPECT_FALSE(d->record(1, k5xx, at(1)));     // 2 of 2 would be 100%
  EXPECT_TRUE(d->record(1, k5xx, at(10000)));  // 0 is back: room for 1
  EXPECT_FALSE(d->is_ejected(0, at(10000)));
}

TEST(OutlierDetector, ResultsWhileEjectedAreIgnoredAndCountersResetOnReturn) {
  auto d = make(config(2, 2), 4);
  d->record(3, k5xx, at(0));
  ASSERT_TRUE(d->record(3, k5xx, at(1)));
  EXPECT_FALSE(d->record(3, k5xx, at(2)));      // already out
  EXPECT_FALSE(d->record(3, k5xx, at(10001)));  // back, counter fresh: 1 of 2
  EXPECT_TRUE(d->record(3, k5xx, at(10002)));
}

TEST(OutlierDetector, UpdateEndpointsKeepsStateByIdentity) {
  auto eps = endpoints(3);
  auto made = OutlierDetector::create(config(2, 2), eps);
  ASSERT_TRUE(made.ok());
  auto& d = **made;
  EXPECT_FALSE(d.record(1, k5xx, at(0)));
  ASSERT_TRUE(d.record(1, k5xx, at(0)));   // 10.0.0.2 ejected
  EXPECT_FALSE(d.record(2, k5xx, at(0)));  // 10.0.0.3: one 5xx
  std::vector<std::string> next = {"10.0.0.3:8080", "10.0.0.9:8080", "10.0.0.2:8080"};
  d.update_endpoints(next);
  std::vector<bool> mask;
  d.ejected_mask(mask, at(1));
  EXPECT_EQ(mask, (std::vector<bool>{false, false, true}));
  EXPECT_TRUE(d.record(0, k5xx, at(2)));   // 10.0.0.3's count carried over
  EXPECT_FALSE(d.record(1, k5xx, at(2)));  // new endpoint starts clean
  EXPECT_EQ(d.stats(at(2)).ejected, 2u);
  EXPECT_FALSE(d.record(7, k5xx, at(2)));  // out of range: ignored
}

TEST(OutlierDetector, CreateRejectsBadConfig) {
  auto c = config(1, 1, 101);
  auto eps = endpoints(1);
  EXPECT_FALSE(OutlierDetector::create(c, eps).ok());
  c = config(1, 1);
  c.base_ejection_time = milliseconds(0);
  EXPECT_FALSE(OutlierDetector::create(c, eps).ok());
}

}  // namespace
}  // namespace gantry::resilience
