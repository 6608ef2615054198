// Metric families read at scrape time from the runtime's policy state, for
// Metrics::add_collector: per route, the response cache (hits, misses,
// evictions, coalesced waits, stored bytes and entries); per cluster, the
// circuit breaker (state, opened and rejected totals) and outlier detection
// (endpoints ejected now, ejections).
//
// Invariants: reads only thread-safe accessors (ResponseCache::stats takes a
// shard lock at a time; the registry copies its lists under its mutex), so a
// scrape never blocks a worker for longer than one shard lock. Caches are
// those of the published Config (a rule that went away disappears from
// /metrics with its cache); breakers and detectors those the registry holds
// (clusters that left the snapshot are pruned from it).
#pragma once

#include <prometheus/metric_family.h>

#include <vector>

#include "proxy/control/config_store.h"

namespace gantry::tracing {
class Exporter;
}

namespace gantry::admin {

std::vector<prometheus::MetricFamily> collect_policy_metrics(const control::ConfigStore& store);

// The span exporter's counters (docs/tracing.md): spans exported, spans
// dropped (queue full, or their batch failed), failed export requests.
std::vector<prometheus::MetricFamily> collect_tracing_metrics(const tracing::Exporter& exporter);

}  // namespace gantry::admin
