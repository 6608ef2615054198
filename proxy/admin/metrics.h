// Proxy metrics, exposed as Prometheus text on the admin listener.
//
// Families are created once; workers cache the label children they touch so
// the request path does no map lookups under a lock (prometheus-cpp's
// Family::Add takes a mutex). Counters themselves are atomics. The three
// metrics every request writes (requests, request and upstream durations)
// are sharded per worker instead (admin/sharded_metrics.h: no locked
// instruction per request), summed at scrape time.
// State that lives elsewhere and keeps its own counters (response caches,
// circuit breakers, outlier detectors) is read at scrape time by collectors
// (add_collector), so the request path never touches a metric for it.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include "proxy/admin/sharded_metrics.h"
#include "proxy/base/last_hit_map.h"

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace gantry::admin {

class Metrics {
  // Declared first: the families below are registered in it during construction.
  std::shared_ptr<prometheus::Registry> registry_ = std::make_shared<prometheus::Registry>();

 public:
  Metrics();
  std::string serialize() const;

  // A source of families computed at scrape time. Register before serving:
  // serialize() calls every collector on the admin thread.
  using Collector = std::function<std::vector<prometheus::MetricFamily>()>;
  void add_collector(Collector c) { collectors_.push_back(std::move(c)); }

  ShardedCounters requests;           // route, code_class
  ShardedHistograms request_seconds;  // route
  ShardedHistograms upstream_seconds; // cluster
  prometheus::Family<prometheus::Counter>& upstream_errors;    // cluster, kind
  prometheus::Gauge& active_connections;
  prometheus::Counter& connections_total;
  // HTTP/2 client connections (counted in the two above as well) and their streams.
  prometheus::Gauge& http2_connections_active;
  prometheus::Counter& http2_connections_total;
  ShardedCounters http2_streams_total;  // WorkerMetrics::http2_stream()
  // WebSocket tunnels (after a 101): open now, opened, closed by reason
  // (client, upstream, idle_timeout), bytes by direction (to_upstream, to_client).
  prometheus::Gauge& websockets_active;
  prometheus::Counter& websocket_upgrades;
  prometheus::Family<prometheus::Counter>& websocket_closed;
  prometheus::Family<prometheus::Counter>& websocket_bytes;
  prometheus::Counter& websocket_bytes_to_upstream;
  prometheus::Counter& websocket_bytes_to_client;
  ShardedCounters bytes_received;  // WorkerMetrics::received()
  ShardedCounters bytes_sent;      // WorkerMetrics::sent()
  prometheus::Gauge& snapshot_version;
  prometheus::Counter& snapshot_applies;
  prometheus::Counter& snapshot_nacks;
  prometheus::Counter& listener_bind_errors;  // snapshot listeners that could not be bound
  prometheus::Histogram& snapshot_apply_seconds;
  prometheus::Family<prometheus::Counter>& mirror_requests;  // cluster, result
  prometheus::Family<prometheus::Counter>& upstream_tls_handshakes;  // cluster, resumed (true/false)
  prometheus::Family<prometheus::Counter>& transform_results;  // route, direction, result
  prometheus::Family<prometheus::Counter>& grpc_requests;      // route, grpc_status
  // TLS passthrough (net/passthrough.h): connections by cluster and result,
  // open now, how relayed ones ended (reason), bytes by direction.
  prometheus::Family<prometheus::Counter>& passthrough_connections;
  prometheus::Gauge& passthrough_active;
  prometheus::Family<prometheus::Counter>& passthrough_closed;
  prometheus::Family<prometheus::Counter>& passthrough_bytes;
  prometheus::Counter& passthrough_bytes_to_upstream;
  prometheus::Counter& passthrough_bytes_to_client;

 private:
  std::vector<Collector> collectors_;
};

// Per-worker caches of labelled children; one instance per worker thread.
class WorkerMetrics {
 public:
  explicit WorkerMetrics(Metrics& m) : m_(m) {}
  void request_done(const std::string& route, int status, double seconds);
  void upstream_done(const std::string& cluster, double seconds);
  void upstream_error(const std::string& cluster, const char* kind);
  // A mirrored copy of a request: result is sent (a response came back),
  // failed, dropped (too many copies in flight) or skipped (body not buffered).
  void mirror_result(const std::string& cluster, const char* result);
  // A completed TLS handshake to a backend of `cluster`; `resumed`: a cached session was accepted.
  void upstream_tls_handshake(const std::string& cluster, bool resumed);
  // filters.transform: direction request|response, result transformed|refused|error.
  void transform_result(const std::string& route, const char* direction, const char* result);
  // A gRPC (or gRPC-Web) call's status as the client got it: the backend's
  // grpc-status, or the gateway's own answer's (exchange/grpc.h).
  void grpc_request_done(const std::string& route, int grpc_status);
  // A TLS passthrough connection: relayed, no_endpoint or connect_failed.
  void passthrough_result(const std::string& cluster, const char* result);
  // Counted on every stream or read: the worker's own cells (sharded_metrics.h).
  void http2_stream() { bump(*cell(h2_streams_, m_.http2_streams_total)); }
  void received(uint64_t bytes) { bump(*cell(received_, m_.bytes_received), bytes); }
  void sent(uint64_t bytes) { bump(*cell(sent_, m_.bytes_sent), bytes); }
  Metrics& global() { return m_; }

 private:
  static std::atomic<uint64_t>* cell(std::atomic<uint64_t>*& c, ShardedCounters& family) {
    if (c == nullptr) c = &family.cell({});
    return c;
  }
  std::atomic<uint64_t>* h2_streams_ = nullptr;
  std::atomic<uint64_t>* received_ = nullptr;
  std::atomic<uint64_t>* sent_ = nullptr;
  struct RouteChildren {
    std::atomic<uint64_t>* by_class[6] = {};
    ShardedHistograms::Cell* latency = nullptr;
  };
  Metrics& m_;
  LastHitMap<RouteChildren> routes_;
  LastHitMap<ShardedHistograms::Cell*> upstreams_;
  std::unordered_map<std::string, prometheus::Counter*> upstream_errors_;
  std::unordered_map<std::string, prometheus::Counter*> mirror_results_;
  std::unordered_map<std::string, prometheus::Counter*> tls_handshakes_;
  std::unordered_map<std::string, prometheus::Counter*> transform_results_;
  std::unordered_map<std::string, prometheus::Counter*> grpc_requests_;
  std::unordered_map<std::string, prometheus::Counter*> passthrough_results_;
};

}  // namespace gantry::admin
