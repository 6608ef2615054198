#include "proxy/admin/metrics.h"

#include <prometheus/text_serializer.h>

#include <sstream>

namespace gantry::admin {

namespace {

const prometheus::Histogram::BucketBoundaries& latency_buckets() {
  static const prometheus::Histogram::BucketBoundaries b{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                         0.05,   0.1,   0.25,   0.5,   1,    2.5,
                                                         5,      10};
  return b;
}

}  // namespace

Metrics::Metrics()
    : requests("gantry_requests_total", "Requests answered, by route (ns/name#rule) and status class"),
      request_seconds("gantry_request_duration_seconds", "Downstream request duration, by route", latency_buckets()),
      upstream_seconds("gantry_upstream_duration_seconds",
                       "Time from sending a request upstream to its response head, by cluster", latency_buckets()),
      upstream_errors(prometheus::BuildCounter()
                          .Name("gantry_upstream_errors_total")
                          .Help("Upstream failures by cluster and kind (connect, reset, timeout, protocol, tls)")
                          .Register(*registry_)),
      active_connections(prometheus::BuildGauge()
                             .Name("gantry_downstream_connections_active")
                             .Help("Open client connections")
                             .Register(*registry_)
                             .Add({})),
      connections_total(prometheus::BuildCounter()
                            .Name("gantry_downstream_connections_total")
                            .Help("Client connections accepted")
                            .Register(*registry_)
                            .Add({})),
      http2_connections_active(prometheus::BuildGauge()
                                   .Name("gantry_downstream_http2_connections_active")
                                   .Help("Open client connections speaking HTTP/2 (h2c or ALPN h2)")
                                   .Register(*registry_)
                                   .Add({})),
      http2_connections_total(prometheus::BuildCounter()
                                  .Name("gantry_downstream_http2_connections_total")
                                  .Help("Client connections that spoke HTTP/2 (h2c or ALPN h2)")
                                  .Register(*registry_)
                                  .Add({})),
      http2_streams_total("gantry_downstream_http2_streams_total", "HTTP/2 request streams received"),
      websockets_active(prometheus::BuildGauge()
                            .Name("gantry_websocket_connections_active")
                            .Help("Open WebSocket tunnels")
                            .Register(*registry_)
                            .Add({})),
      websocket_upgrades(prometheus::BuildCounter()
                             .Name("gantry_websocket_upgrades_total")
                             .Help("WebSocket upgrades the upstream accepted (101)")
                             .Register(*registry_)
                             .Add({})),
      websocket_closed(prometheus::BuildCounter()
                           .Name("gantry_websocket_closed_total")
                           .Help("WebSocket tunnels closed, by reason (client, upstream, idle_timeout)")
                           .Register(*registry_)),
      websocket_bytes(prometheus::BuildCounter()
                          .Name("gantry_websocket_bytes_total")
                          .Help("Bytes relayed through WebSocket tunnels, by direction")
                          .Register(*registry_)),
      websocket_bytes_to_upstream(websocket_bytes.Add({{"direction", "to_upstream"}})),
      websocket_bytes_to_client(websocket_bytes.Add({{"direction", "to_client"}})),
      bytes_received("gantry_downstream_received_bytes_total", "Bytes read from clients"),
      bytes_sent("gantry_downstream_sent_bytes_total", "Bytes written to clients"),
      snapshot_version(prometheus::BuildGauge()
                           .Name("gantry_snapshot_version")
                           .Help("Version of the applied snapshot")
                           .Register(*registry_)
                           .Add({})),
      snapshot_applies(prometheus::BuildCounter()
                           .Name("gantry_snapshot_applies_total")
                           .Help("Snapshots and endpoint deltas applied")
                           .Register(*registry_)
                           .Add({})),
      snapshot_nacks(prometheus::BuildCounter()
                         .Name("gantry_snapshot_nacks_total")
                         .Help("Snapshots and endpoint deltas rejected")
                         .Register(*registry_)
                         .Add({})),
      listener_bind_errors(prometheus::BuildCounter()
                               .Name("gantry_listener_bind_errors_total")
                               .Help("Snapshot listeners (Gateway addresses and ports) that could not be bound")
                               .Register(*registry_)
                               .Add({})),
      snapshot_apply_seconds(prometheus::BuildHistogram()
                                 .Name("gantry_snapshot_apply_duration_seconds")
                                 .Help("Decode + validate + compile + publish time of a snapshot")
                                 .Register(*registry_)
                                 .Add({}, prometheus::Histogram::BucketBoundaries{
                                              0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                              0.025, 0.05, 0.1, 0.25, 0.5, 1})),
      mirror_requests(prometheus::BuildCounter()
                          .Name("gantry_mirror_requests_total")
                          .Help("Mirrored request copies by mirror cluster and result "
                                "(sent, failed, dropped, skipped)")
                          .Register(*registry_)),
      upstream_tls_handshakes(prometheus::BuildCounter()
                                  .Name("gantry_upstream_tls_handshakes_total")
                                  .Help("Completed TLS handshakes to backends, by cluster and whether the session was resumed")
                                  .Register(*registry_)),
      transform_results(prometheus::BuildCounter()
                            .Name("gantry_transform_total")
                            .Help("filters.transform decisions by route, direction (request, response) and "
                                  "result (transformed; refused: the client's body was too large, malformed "
                                  "or had a DOCTYPE; error: the upstream's body could not be converted)")
                            .Register(*registry_)),
      grpc_requests(prometheus::BuildCounter()
                        .Name("gantry_grpc_requests_total")
                        .Help("gRPC and gRPC-Web calls by route and the grpc-status the client got (the "
                              "backend's, or the gateway's own answer's: 14 no endpoint, 4 deadline, ...)")
                        .Register(*registry_)),
      passthrough_connections(prometheus::BuildCounter()
                                  .Name("gantry_passthrough_connections_total")
                                  .Help("TLS passthrough connections by cluster and result (relayed; no_endpoint; "
                                        "connect_failed)")
                                  .Register(*registry_)),
      passthrough_active(prometheus::BuildGauge()
                             .Name("gantry_passthrough_connections_active")
                             .Help("TLS passthrough connections being relayed")
                             .Register(*registry_)
                             .Add({})),
      passthrough_closed(prometheus::BuildCounter()
                             .Name("gantry_passthrough_closed_total")
                             .Help("Relayed TLS passthrough connections by how they ended (closed: both sides "
                                   "finished; reset: a side failed; idle_timeout)")
                             .Register(*registry_)),
      passthrough_bytes(prometheus::BuildCounter()
                            .Name("gantry_passthrough_bytes_total")
                            .Help("Bytes relayed by TLS passthrough, by direction (to_upstream includes the "
                                  "ClientHello)")
                            .Register(*registry_)),
      passthrough_bytes_to_upstream(passthrough_bytes.Add({{"direction", "to_upstream"}})),
      passthrough_bytes_to_client(passthrough_bytes.Add({{"direction", "to_client"}})) {
  // The unlabelled ones show 0 before any worker counted: a cell no worker writes.
  http2_streams_total.cell({});
  bytes_received.cell({});
  bytes_sent.cell({});
  add_collector([this] {
    return std::vector<prometheus::MetricFamily>{requests.collect(),       request_seconds.collect(),
                                                 upstream_seconds.collect(), http2_streams_total.collect(),
                                                 bytes_received.collect(), bytes_sent.collect()};
  });
}

std::string Metrics::serialize() const {
  std::ostringstream out;
  auto families = registry_->Collect();
  for (const auto& c : collectors_) {
    auto more = c();
    for (auto& f : more) families.push_back(std::move(f));
  }
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

void WorkerMetrics::request_done(const std::string& route, int status, double seconds) {
  auto& rc = routes_[route];
  int cls = status / 100;
  if (cls < 1 || cls > 5) cls = 0;
  if (rc.by_class[cls] == nullptr) {
    static const char* names[] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
    rc.by_class[cls] = &m_.requests.cell({{"route", route}, {"code_class", names[cls]}});
  }
  bump(*rc.by_class[cls]);
  if (rc.latency == nullptr) rc.latency = &m_.request_seconds.cell({{"route", route}});
  m_.request_seconds.observe(*rc.latency, seconds);
}

void WorkerMetrics::upstream_done(const std::string& cluster, double seconds) {
  auto& h = upstreams_[cluster];
  if (h == nullptr) h = &m_.upstream_seconds.cell({{"cluster", cluster}});
  m_.upstream_seconds.observe(*h, seconds);
}

void WorkerMetrics::transform_result(const std::string& route, const char* direction, const char* result) {
  auto& c = transform_results_[route + '\0' + direction + '\0' + result];
  if (c == nullptr)
    c = &m_.transform_results.Add({{"route", route}, {"direction", direction}, {"result", result}});
  c->Increment();
}

void WorkerMetrics::grpc_request_done(const std::string& route, int grpc_status) {
  std::string code = std::to_string(grpc_status);
  auto& c = grpc_requests_[route + '\0' + code];
  if (c == nullptr) c = &m_.grpc_requests.Add({{"route", route}, {"grpc_status", code}});
  c->Increment();
}

void WorkerMetrics::upstream_error(const std::string& cluster, const char* kind) {
  auto& c = upstream_errors_[cluster + '\0' + kind];
  if (c == nullptr) c = &m_.upstream_errors.Add({{"cluster", cluster}, {"kind", kind}});
  c->Increment();
}

void WorkerMetrics::upstream_tls_handshake(const std::string& cluster, bool resumed) {
  auto& c = tls_handshakes_[cluster + (resumed ? 'y' : 'n')];
  if (c == nullptr)
    c = &m_.upstream_tls_handshakes.Add({{"cluster", cluster}, {"resumed", resumed ? "true" : "false"}});
  c->Increment();
}

void WorkerMetrics::passthrough_result(const std::string& cluster, const char* result) {
  auto& c = passthrough_results_[cluster + '\0' + result];
  if (c == nullptr) c = &m_.passthrough_connections.Add({{"cluster", cluster}, {"result", result}});
  c->Increment();
}

void WorkerMetrics::mirror_result(const std::string& cluster, const char* result) {
  auto& c = mirror_results_[cluster + '\0' + result];
  if (c == nullptr) c = &m_.mirror_requests.Add({{"cluster", cluster}, {"result", result}});
  c->Increment();
}

}  // namespace gantry::admin
