// Per-cluster runtime state shared by all workers of one proxy: today the
// retry budget. Keyed by cluster name and kept for the life of the process,
// so a snapshot swap that keeps a cluster's name keeps its state (the same
// carry-over rule rule_policies.h applies to rate limiters by route label).
//
// Invariants: ClusterRegistry::get takes a mutex and is called only on a
// worker's cache miss (first request of a cluster on that worker); the
// objects it returns live as long as any holder and are thread-safe
// themselves (RetryBudget locks per call).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "proxy/resilience/retry.h"

namespace gantry::upstream {

// Retries may add 20% to a cluster's requests, and at least 10 per 10 s
// whatever the traffic, so a quiet cluster still retries.
inline resilience::RetryBudgetOptions default_retry_budget() {
  return resilience::RetryBudgetOptions{0.2, std::chrono::milliseconds(10000), 10};
}

struct ClusterState {
  explicit ClusterState(std::string n) : name(std::move(n)), retry_budget(default_retry_budget()) {}
  const std::string name;
  resilience::RetryBudget retry_budget;
};

class ClusterRegistry {
 public:
  // The state of cluster `name`, created on first use. Any thread.
  std::shared_ptr<ClusterState> get(const std::string& name);

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<ClusterState>> by_name_;
};

}  // namespace gantry::upstream
