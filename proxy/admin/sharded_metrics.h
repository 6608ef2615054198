// Counters and histograms that each worker writes on every request, without
// an atomic read-modify-write or a lock: a cell belongs to one worker, which
// bumps it with a relaxed load and store; a scrape sums the cells of equal
// labels across workers.
//
// Why: prometheus-cpp's Counter is a compare-and-swap loop on a double, and
// its Histogram (1.0) takes a mutex and then makes two of those, so every
// proxied request paid a mutex and five to six locked instructions for the
// requests counter and the two latency histograms (docs/BENCHMARKS.md, "One
// executor type"). The exposition is the same: names, help, labels, buckets.
//
// Invariants: a cell is written by the thread that asked for it, only;
// cells live as long as their family (stable addresses, never removed).
// cell() and collect() lock; bumps do not. A scrape may see one bucket of a
// histogram bumped and not yet its sum: each value is a count some time
// during the scrape, as with prometheus-cpp.
#pragma once

#include <prometheus/client_metric.h>
#include <prometheus/metric_family.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace gantry::admin {

using LabelSet = std::map<std::string, std::string>;  // sorted by name, as prometheus-cpp's Family

// One writer: no locked instruction.
inline void bump(std::atomic<uint64_t>& c, uint64_t n = 1) {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

class ShardedCounters {
 public:
  ShardedCounters(std::string name, std::string help) : name_(std::move(name)), help_(std::move(help)) {}
  // A new cell for these labels, for the calling worker's writes only.
  std::atomic<uint64_t>& cell(const LabelSet& labels);
  prometheus::MetricFamily collect() const;

 private:
  // A cache line each: the cells of different workers sit side by side in
  // cells_, and a line two workers write would pass between their cores on
  // every request.
  struct alignas(64) Cell {
    LabelSet labels;
    std::atomic<uint64_t> value{0};
  };
  std::string name_, help_;
  mutable std::mutex mu_;
  std::deque<Cell> cells_;
};

class ShardedHistograms {
 public:
  struct alignas(64) Cell {  // a cache line of its own, as ShardedCounters::Cell
    LabelSet labels;
    std::unique_ptr<std::atomic<uint64_t>[]> counts;  // per bucket, not cumulative; the last is +Inf
    std::atomic<double> sum{0};
  };
  // `bounds`: the buckets' upper bounds, ascending (a value equal to one falls in it).
  ShardedHistograms(std::string name, std::string help, std::vector<double> bounds)
      : name_(std::move(name)), help_(std::move(help)), bounds_(std::move(bounds)) {}
  Cell& cell(const LabelSet& labels);
  void observe(Cell& c, double v) const;
  prometheus::MetricFamily collect() const;

 private:
  std::string name_, help_;
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::deque<Cell> cells_;
};

}  // namespace gantry::admin
