#include "proxy/admin/policy_metrics.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <string>

#include "proxy/filters/access_decisions.h"
#include "proxy/ratelimit/redis_store.h"
#include "proxy/tracing/exporter.h"
#include "proxy/upstream/cluster_state.h"

namespace gantry::admin {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

void add(MetricFamily& f, std::vector<ClientMetric::Label> labels, double v) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f.type == MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  f.metric.push_back(std::move(m));
}

}  // namespace

std::vector<MetricFamily> collect_policy_metrics(const control::ConfigStore& store) {
  std::vector<MetricFamily> out;

  // ---- response caches of the published Config, per route (ns/name#rule)
  auto hits = family("gantry_cache_hits_total", "Responses served from the cache, by route",
                     MetricType::Counter);
  auto misses = family("gantry_cache_misses_total",
                       "Cache lookups that found no fresh entry, by route", MetricType::Counter);
  auto evictions = family("gantry_cache_evictions_total",
                          "Entries evicted to make room (LRU), by route", MetricType::Counter);
  auto coalesced = family("gantry_cache_coalesced_total",
                          "Misses that waited for a concurrent fetch of the same key, by route",
                          MetricType::Counter);
  auto bytes =
      family("gantry_cache_stored_bytes", "Bytes held by the cache, by route", MetricType::Gauge);
  auto entries =
      family("gantry_cache_entries", "Entries held by the cache, by route", MetricType::Gauge);
  if (auto cfg = store.current(); cfg && cfg->policies) {
    std::map<std::string, filters::CacheStats> by_route;  // sorted output
    cfg->policies->each_cache([&](const std::string& label, const filters::ResponseCache& c) {
      by_route[label] = c.stats();
    });
    for (const auto& [route, s] : by_route) {
      std::vector<ClientMetric::Label> l{{"route", route}};
      add(hits, l, static_cast<double>(s.hits));
      add(misses, l, static_cast<double>(s.misses));
      add(evictions, l, static_cast<double>(s.evictions));
      add(coalesced, l, static_cast<double>(s.coalesced));
      add(bytes, l, static_cast<double>(s.bytes));
      add(entries, l, static_cast<double>(s.entries));
    }
  }
  for (auto* f : {&hits, &misses, &evictions, &coalesced, &bytes, &entries})
    out.push_back(std::move(*f));

  // ---- access-control decisions, per filter (apiKey, basicAuth, ipAllow/ipDeny, extAuth)
  auto decisions = family("gantry_access_decisions_total",
                          "Decisions of the access-control filters: allowed, denied or error (extAuth's "
                          "service failed), by filter (api_key, basic_auth, source_range, ext_auth)",
                          MetricType::Counter);
  const auto& table = filters::AccessDecisions::global();
  for (size_t f = 0; f < filters::kAccessFilterNames.size(); ++f)
    for (size_t d = 0; d < filters::kAccessDecisionNames.size(); ++d)
      add(decisions,
          {{"filter", std::string(filters::kAccessFilterNames[f])},
           {"decision", std::string(filters::kAccessDecisionNames[d])}},
          static_cast<double>(table.value(static_cast<filters::AccessFilter>(f),
                                          static_cast<filters::AccessDecision>(d))));
  out.push_back(std::move(decisions));

  // ---- circuit breakers, per cluster (several configs of one cluster are summed;
  // the state is the most severe: open, then half-open, then closed)
  struct BreakerSum {
    resilience::BreakerState state = resilience::BreakerState::kClosed;
    uint64_t opened = 0, rejected = 0;
  };
  std::map<std::string, BreakerSum> breakers;
  auto now = std::chrono::steady_clock::now();
  upstream::ClusterRegistry::global().each_breaker(
      [&](const std::string& name, upstream::Breaker& b) {
        auto st = b.breaker->stats(now);
        auto& sum = breakers[name];
        sum.opened += st.opened_total;
        sum.rejected += st.rejected_total;
        auto rank = [](resilience::BreakerState s) {
          return s == resilience::BreakerState::kOpen       ? 2
                 : s == resilience::BreakerState::kHalfOpen ? 1
                                                            : 0;
        };
        if (rank(st.state) > rank(sum.state)) sum.state = st.state;
      });
  auto state =
      family("gantry_circuit_breaker_state",
             "1 for the circuit breaker's current state (closed, open, half-open), by cluster",
             MetricType::Gauge);
  auto opened =
      family("gantry_circuit_breaker_opened_total",
             "Transitions of the circuit breaker to open, by cluster", MetricType::Counter);
  auto rejected =
      family("gantry_circuit_breaker_rejected_total",
             "Requests refused by an open circuit breaker, by cluster", MetricType::Counter);
  for (const auto& [cluster, s] : breakers) {
    for (auto st : {resilience::BreakerState::kClosed, resilience::BreakerState::kOpen,
                    resilience::BreakerState::kHalfOpen})
      add(state, {{"cluster", cluster}, {"state", resilience::to_string(st)}},
          st == s.state ? 1 : 0);
    add(opened, {{"cluster", cluster}}, static_cast<double>(s.opened));
    add(rejected, {{"cluster", cluster}}, static_cast<double>(s.rejected));
  }
  for (auto* f : {&state, &opened, &rejected}) out.push_back(std::move(*f));

  // ---- outlier detection, per cluster
  struct OutlierSum {
    uint64_t ejected = 0, ejections = 0;
  };
  std::map<std::string, OutlierSum> outliers;
  upstream::ClusterRegistry::global().each_outlier(
      [&](const std::string& name, upstream::Outlier& o) {
        auto st = o.detector->stats(now);
        outliers[name].ejected += st.ejected;
        outliers[name].ejections += st.ejections_total;
      });
  auto ejected =
      family("gantry_outlier_ejected_endpoints",
             "Endpoints out of rotation by outlier detection now, by cluster", MetricType::Gauge);
  auto ejections =
      family("gantry_outlier_ejections_total", "Endpoints ejected by outlier detection, by cluster",
             MetricType::Counter);
  for (const auto& [cluster, s] : outliers) {
    add(ejected, {{"cluster", cluster}}, static_cast<double>(s.ejected));
    add(ejections, {{"cluster", cluster}}, static_cast<double>(s.ejections));
  }
  out.push_back(std::move(ejected));
  out.push_back(std::move(ejections));
  // ---- the store of global rate limits (process-wide counters; present once
  // a snapshot named a store)
  if (auto cfg = store.current(); cfg && cfg->policies && cfg->policies->rate_limit_store()) {
    const ratelimit::StoreMetrics& m = ratelimit::store_metrics();
    auto counter = [&out](const char* name, const char* help, uint64_t v) {
      auto f = family(name, help, MetricType::Counter);
      add(f, {}, static_cast<double>(v));
      out.push_back(std::move(f));
    };
    auto r = family("gantry_ratelimit_store_requests_total",
                    "Global rate limit decisions, by result (decided: the store's answer; lease: the store's "
                    "answer given ahead, from a lease, without a round trip; unavailable: down, reconnecting, "
                    "an error or the budget passed)",
                    MetricType::Counter);
    add(r, {{"result", "decided"}}, static_cast<double>(m.decisions.load()));
    add(r, {{"result", "lease"}}, static_cast<double>(m.lease_decisions.load()));
    add(r, {{"result", "unavailable"}}, static_cast<double>(m.unavailable.load()));
    out.push_back(std::move(r));
    counter("gantry_ratelimit_store_timeouts_total", "Decisions not answered within the budget",
            m.timeouts.load());
    counter("gantry_ratelimit_store_round_trips_total",
            "Store commands answered (the script, its EVAL retry, connection handshakes)", m.round_trips.load());
    counter("gantry_ratelimit_store_writes_total", "Socket writes to the store (pipelined commands share one)",
            m.writes.load());
    counter("gantry_ratelimit_store_noscript_total", "EVALSHA answered NOSCRIPT (retried as EVAL)",
            m.noscript.load());
    counter("gantry_ratelimit_lease_places_total",
            "Decisions the store made ahead for a busy key, leased to a worker (--ratelimit-lease-percent)",
            m.leased.load());
    counter("gantry_ratelimit_lease_unused_total",
            "Leased decisions no request used before the lease ended (counted by the store: admitted fewer)",
            m.lease_unused.load());
    counter("gantry_ratelimit_store_connects_total", "Connections to the store established", m.connects.load());
    counter("gantry_ratelimit_store_failures_total", "Connections to the store lost or refused",
            m.failures.load());
    counter("gantry_ratelimit_fallback_total",
            "Requests counted by the local fallback limit because the store was unavailable (failureMode open)",
            m.fallbacks.load());
    counter("gantry_ratelimit_store_refused_total",
            "Requests answered 503 because the store was unavailable (failureMode closed)", m.refused.load());
    auto g = family("gantry_ratelimit_store_connected", "Workers' connections to the store open now",
                    MetricType::Gauge);
    add(g, {}, static_cast<double>(m.connected.load()));
    out.push_back(std::move(g));
  }

  return out;
}

std::vector<MetricFamily> collect_tracing_metrics(const tracing::Exporter& exporter) {
  std::vector<MetricFamily> out;
  auto one = [&](const char* name, const char* help, uint64_t v) {
    MetricFamily f = family(name, help, MetricType::Counter);
    add(f, {}, static_cast<double>(v));
    out.push_back(std::move(f));
  };
  one("gantry_tracing_spans_exported_total", "Spans the collector accepted", exporter.exported());
  one("gantry_tracing_spans_dropped_total",
      "Spans dropped: the export queue was full, or the export of their batch failed", exporter.dropped());
  one("gantry_tracing_export_errors_total", "Export requests that failed (connect, I/O, or a non-2xx answer)",
      exporter.export_errors());
  return out;
}

}  // namespace gantry::admin
