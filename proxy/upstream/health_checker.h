// Active health checking: one prober per proxy (not per worker) for every
// cluster that a rule's policy.healthCheck names, on its own thread and
// io_context.
//
// The checker follows the published Config (polled every 200 ms): for each
// cluster with a healthCheck (the first rule naming it wins) it keeps a
// HealthTable, one atomic flag per endpoint, and one probe loop per endpoint:
// HTTP/1.1 GET `path` (or, with `grpc`, a grpc.health.v1.Health/Check call
// over HTTP/2 that must answer SERVING) every `interval` (±10 % jitter, first
// probe at a random point of the first interval) with a `timeout`, on a new
// connection each time, over TLS when the cluster has `tls` (the cluster's
// SNI, trust anchors and client certificate); `unhealthyThreshold`
// failures in a row mark the endpoint unhealthy, `healthyThreshold` successes
// in a row healthy again. Expected statuses: the list, or 200-399 when empty.
// Every endpoint starts healthy. A table is replaced (its probes stop) when
// the cluster's endpoint list or check settings change.
//
// Workers read health lock-free: generation() is one atomic load; only when it
// moved does a worker take the mutex (table()) to fetch the new tables.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "proxy/snapshot/model.h"
#include "proxy/tls/upstream_tls.h"

namespace gantry::control {
class ConfigStore;
}

namespace gantry::upstream {

struct HealthTable {
  HealthTable(const snapshot::HealthCheck& c, std::vector<std::string> k,
              std::shared_ptr<const tls::UpstreamTlsContext> t)
      : config(c), keys(std::move(k)), tls(std::move(t)), healthy(new std::atomic<bool>[keys.size()]) {
    for (size_t i = 0; i < keys.size(); ++i) healthy[i].store(true, std::memory_order_relaxed);
  }
  const snapshot::HealthCheck config;
  const std::vector<std::string> keys;  // "ip:port" per endpoint
  const std::shared_ptr<const tls::UpstreamTlsContext> tls;  // the cluster's, or null: plain TCP
  std::unique_ptr<std::atomic<bool>[]> healthy;
  std::atomic<bool> stopped{false};
};

class HealthChecker {
 public:
  explicit HealthChecker(const control::ConfigStore& store);
  ~HealthChecker();
  void start();
  void stop();

  // Any thread.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  std::shared_ptr<const HealthTable> table(const std::string& cluster) const;

 private:
  struct Impl;
  const control::ConfigStore& store_;
  std::unique_ptr<Impl> impl_;
  std::thread thread_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<HealthTable>> tables_;
  std::atomic<uint64_t> generation_{0};
};

}  // namespace gantry::upstream
