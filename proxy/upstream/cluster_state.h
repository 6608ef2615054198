// Per-cluster runtime state shared by all workers of one proxy: the retry
// budget, the circuit breakers (with their connection / pending-request
// limits) and the outlier detectors. Keyed by cluster name (a breaker also by
// its config) and kept while the cluster is in the applied snapshot, so a
// snapshot swap that keeps a cluster's name and settings keeps its state (the
// carry-over rule rule_policies.h applies to rate limiters by route label).
// retain() forgets the clusters that left the snapshot; holders (a request in
// flight, a worker's cache) keep their objects alive until they let go.
//
// Invariants: the registry's mutex is taken only on a worker's cache miss
// (first request of a cluster, or of a new Config, on that worker) and by
// the admin listener; the objects it hands out are thread-safe themselves
// (RetryBudget and CircuitBreaker lock per call, ResourceLimit is atomic) and
// live as long as any holder.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/resilience/circuit_breaker.h"
#include "proxy/resilience/outlier_detector.h"
#include "proxy/resilience/retry.h"

namespace gantry::upstream {

// Retries may add 20% to a cluster's requests, and at least 10 per second
// (100 per 10 s window) whatever the traffic, so a quiet cluster still
// retries: Gateway API's defaults for a retry constraint (BackendTrafficPolicy
// retryConstraint: budget 20% over 10 s, minRetryRate 10 per second).
inline resilience::RetryBudgetOptions default_retry_budget() {
  return resilience::RetryBudgetOptions{0.2, std::chrono::milliseconds(10000), 100};
}

// A circuit breaker and the limits of one circuitBreaker config of a cluster.
struct Breaker {
  Breaker(const snapshot::CircuitBreaker& c, std::unique_ptr<resilience::CircuitBreaker> b)
      : config(c), breaker(std::move(b)), limits(c) {}
  const snapshot::CircuitBreaker config;
  std::unique_ptr<resilience::CircuitBreaker> breaker;
  resilience::ClusterLimits limits;
};

// The outlier detector of one outlierDetection config of a cluster. The
// detector indexes endpoints by position: sync() re-keys it when a worker
// serves a different endpoint list than the one it was last synced to (an
// endpoint delta); state follows each endpoint by its "ip:port".
struct Outlier {
  Outlier(const snapshot::OutlierDetection& c, std::unique_ptr<resilience::OutlierDetector> d)
      : config(c), detector(std::move(d)) {}
  const snapshot::OutlierDetection config;
  std::unique_ptr<resilience::OutlierDetector> detector;
  // Cheap when `list` is the list last synced to (one atomic load).
  void sync(const void* list, const std::vector<std::string>& keys) {
    if (synced_.load(std::memory_order_acquire) == list) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (keys != keys_) {
      keys_ = keys;
      detector->update_endpoints(keys_);
    }
    synced_.store(list, std::memory_order_release);
  }
  std::vector<std::string> keys() {
    std::lock_guard<std::mutex> lock(mu_);
    return keys_;
  }

 private:
  std::mutex mu_;
  std::vector<std::string> keys_;
  std::atomic<const void*> synced_{nullptr};
};

struct ClusterState {
  explicit ClusterState(std::string n) : name(std::move(n)), retry_budget(default_retry_budget()) {}
  const std::string name;
  resilience::RetryBudget retry_budget;
};

class ClusterRegistry {
 public:
  // The one registry of the process (the data plane and the admin listener share it).
  static ClusterRegistry& global();

  // The state of cluster `name`, created on first use. Any thread.
  std::shared_ptr<ClusterState> get(const std::string& name);
  // The breaker of cluster `name` built from `config`: the existing one when
  // that cluster already has a breaker with equal settings. Null when the
  // config is invalid. Any thread.
  std::shared_ptr<Breaker> breaker(const std::string& name, const snapshot::CircuitBreaker& config);
  // The outlier detector of cluster `name` built from `config` (shared like breakers).
  // Its endpoint list is set by the first Outlier::sync.
  std::shared_ptr<Outlier> outlier(const std::string& name, const snapshot::OutlierDetection& config);
  void each_outlier(const std::function<void(const std::string&, Outlier&)>& f);
  // Calls f(cluster name, breaker) for every breaker, sorted by cluster name.
  void each_breaker(const std::function<void(const std::string&, Breaker&)>& f);
  // Forgets every cluster for which `live(name)` is false (called with each
  // applied snapshot). Returns how many clusters were forgotten.
  size_t retain(const std::function<bool(const std::string&)>& live);
  // Clusters with any state (retry budget, breaker or detector).
  size_t cluster_count();

 private:
  size_t cluster_count_locked() const;
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<ClusterState>> by_name_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Breaker>>> breakers_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Outlier>>> outliers_;
};

}  // namespace gantry::upstream
