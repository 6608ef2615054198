#include "proxy/admin/sharded_metrics.h"

#include <algorithm>
#include <limits>

namespace gantry::admin {

namespace {

std::vector<prometheus::ClientMetric::Label> to_labels(const LabelSet& s) {
  std::vector<prometheus::ClientMetric::Label> out;
  out.reserve(s.size());
  for (const auto& [name, value] : s) out.push_back({name, value});
  return out;
}

}  // namespace

std::atomic<uint64_t>& ShardedCounters::cell(const LabelSet& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Cell& c = cells_.emplace_back();
  c.labels = labels;
  return c.value;
}

prometheus::MetricFamily ShardedCounters::collect() const {
  std::map<LabelSet, uint64_t> sums;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Cell& c : cells_) sums[c.labels] += c.value.load(std::memory_order_relaxed);
  }
  prometheus::MetricFamily f{name_, help_, prometheus::MetricType::Counter, {}};
  for (const auto& [labels, n] : sums) {
    prometheus::ClientMetric m;
    m.label = to_labels(labels);
    m.counter.value = static_cast<double>(n);
    f.metric.push_back(std::move(m));
  }
  return f;
}

ShardedHistograms::Cell& ShardedHistograms::cell(const LabelSet& labels) {
  std::lock_guard<std::mutex> lock(mu_);
  Cell& c = cells_.emplace_back();
  c.labels = labels;
  c.counts = std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1);  // value-initialised: zeros
  return c;
}

void ShardedHistograms::observe(Cell& c, double v) const {
  // The first bound >= v, as prometheus-cpp's Histogram::Observe; past the last: +Inf.
  const auto i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  bump(c.counts[i]);
  c.sum.store(c.sum.load(std::memory_order_relaxed) + v, std::memory_order_relaxed);
}

prometheus::MetricFamily ShardedHistograms::collect() const {
  struct Sum {
    std::vector<uint64_t> counts;
    double sum = 0;
  };
  std::map<LabelSet, Sum> sums;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const Cell& c : cells_) {
      Sum& s = sums[c.labels];
      s.counts.resize(bounds_.size() + 1);
      for (size_t i = 0; i <= bounds_.size(); ++i) s.counts[i] += c.counts[i].load(std::memory_order_relaxed);
      s.sum += c.sum.load(std::memory_order_relaxed);
    }
  }
  prometheus::MetricFamily f{name_, help_, prometheus::MetricType::Histogram, {}};
  for (const auto& [labels, s] : sums) {
    prometheus::ClientMetric m;
    m.label = to_labels(labels);
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      cumulative += s.counts[i];
      prometheus::ClientMetric::Bucket b;
      b.cumulative_count = cumulative;
      b.upper_bound = i < bounds_.size() ? bounds_[i] : std::numeric_limits<double>::infinity();
      m.histogram.bucket.push_back(b);
    }
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = s.sum;
    f.metric.push_back(std::move(m));
  }
  return f;
}

}  // namespace gantry::admin
