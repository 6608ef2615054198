// admin/sharded_metrics.h: per-worker cells summed at scrape time must expose
// exactly what prometheus-cpp's Counter and Histogram families expose for the
// same observations (the text a scraper reads), whichever worker made them.
#include "proxy/admin/sharded_metrics.h"

#include <gtest/gtest.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace gantry::admin {
namespace {

// The exposition's lines, sorted: prometheus-cpp lists a family's series in
// its hash map's order, which means nothing.
std::vector<std::string> text(const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  std::vector<std::string> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

const std::vector<double> kBounds{0.001, 0.01, 0.1, 1};

TEST(ShardedMetrics, CountersSumTheirWorkersCellsAsAFamilyWould) {
  ShardedCounters sharded("t_requests_total", "help text");
  // Two workers, each with its own cells; one label set shared by both.
  std::atomic<uint64_t>& a1 = sharded.cell({{"route", "a"}, {"code_class", "2xx"}});
  std::atomic<uint64_t>& b1 = sharded.cell({{"route", "b"}, {"code_class", "5xx"}});
  std::thread other([&] {
    std::atomic<uint64_t>& a2 = sharded.cell({{"route", "a"}, {"code_class", "2xx"}});
    for (int i = 0; i < 1000; ++i) bump(a2);
  });
  for (int i = 0; i < 500; ++i) bump(a1);
  bump(b1, 3);
  other.join();

  prometheus::Registry reg;
  auto& fam = prometheus::BuildCounter().Name("t_requests_total").Help("help text").Register(reg);
  fam.Add({{"route", "a"}, {"code_class", "2xx"}}).Increment(1500);
  fam.Add({{"route", "b"}, {"code_class", "5xx"}}).Increment(3);
  EXPECT_EQ(text({sharded.collect()}), text(reg.Collect()));
}

// An unlabelled counter (bytes sent, streams): a zero cell no worker writes
// shows 0 before any traffic, as prometheus-cpp's Add({}) does; then the
// workers' cells add up.
TEST(ShardedMetrics, AnUnlabelledCounterShowsZeroThenItsWorkersSum) {
  ShardedCounters sharded("t_bytes_total", "help text");
  sharded.cell({});
  prometheus::Registry reg;
  prometheus::Counter& ref = prometheus::BuildCounter().Name("t_bytes_total").Help("help text").Register(reg).Add({});
  EXPECT_EQ(text({sharded.collect()}), text(reg.Collect()));
  std::atomic<uint64_t>& w1 = sharded.cell({});
  std::thread other([&] { bump(sharded.cell({}), 4096); });
  bump(w1, 100);
  other.join();
  ref.Increment(4196);
  EXPECT_EQ(text({sharded.collect()}), text(reg.Collect()));
}

TEST(ShardedMetrics, HistogramsBucketAndSumAsPrometheusCppDoes) {
  ShardedHistograms sharded("t_seconds", "help text", kBounds);
  prometheus::Registry reg;
  auto& fam = prometheus::BuildHistogram().Name("t_seconds").Help("help text").Register(reg);
  prometheus::Histogram& ref = fam.Add({{"cluster", "c"}}, kBounds);
  ShardedHistograms::Cell& w1 = sharded.cell({{"cluster", "c"}});
  ShardedHistograms::Cell& w2 = sharded.cell({{"cluster", "c"}});  // another worker's
  // Below the first bound, on bounds (a value equal to a bound falls in it),
  // between them, past the last (+Inf).
  const std::vector<double> values{0.0001, 0.001, 0.005, 0.01, 0.5, 1, 2.5, 100};
  for (size_t i = 0; i < values.size(); ++i) {
    sharded.observe(i % 2 == 0 ? w1 : w2, values[i]);
    ref.Observe(values[i]);
  }
  EXPECT_EQ(text({sharded.collect()}), text(reg.Collect()));
}

TEST(ShardedMetrics, AFamilyWithoutCellsExposesNoMetric) {
  ShardedHistograms h("t_empty_seconds", "help", kBounds);
  EXPECT_TRUE(h.collect().metric.empty());
  ShardedCounters c("t_empty_total", "help");
  EXPECT_TRUE(c.collect().metric.empty());
}

}  // namespace
}  // namespace gantry::admin
