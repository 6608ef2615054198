#include "proxy/upstream/cluster_state.h"

#include <algorithm>
#include <string_view>
#include <unordered_set>

namespace gantry::upstream {

ClusterRegistry& ClusterRegistry::global() {
  static ClusterRegistry registry;
  return registry;
}

std::shared_ptr<ClusterState> ClusterRegistry::get(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = by_name_[name];
  if (!slot) slot = std::make_shared<ClusterState>(name);
  return slot;
}

std::shared_ptr<Breaker> ClusterRegistry::breaker(const std::string& name,
                                                  const snapshot::CircuitBreaker& config) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& list = breakers_[name];
  for (const auto& b : list)
    if (b->config == config) return b;
  auto cb = resilience::CircuitBreaker::create(config);
  if (!cb.ok()) return nullptr;
  // Settings of a cluster that nothing uses any more are dropped: a cluster
  // keeps at most a handful of configs (normally one).
  list.erase(std::remove_if(list.begin(), list.end(), [](const auto& b) { return b.use_count() == 1; }),
             list.end());
  list.push_back(std::make_shared<Breaker>(config, std::move(cb).value()));
  return list.back();
}

std::shared_ptr<Outlier> ClusterRegistry::outlier(const std::string& name,
                                                  const snapshot::OutlierDetection& config) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& list = outliers_[name];
  for (const auto& o : list)
    if (o->config == config) return o;
  auto d = resilience::OutlierDetector::create(config, {});
  if (!d.ok()) return nullptr;
  list.erase(std::remove_if(list.begin(), list.end(), [](const auto& o) { return o.use_count() == 1; }),
             list.end());
  list.push_back(std::make_shared<Outlier>(config, std::move(d).value()));
  return list.back();
}

void ClusterRegistry::each_outlier(const std::function<void(const std::string&, Outlier&)>& f) {
  std::vector<std::pair<std::string, std::shared_ptr<Outlier>>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, list] : outliers_)
      for (const auto& o : list) all.emplace_back(name, o);
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [name, o] : all) f(name, *o);
}

void ClusterRegistry::each_breaker(const std::function<void(const std::string&, Breaker&)>& f) {
  std::vector<std::pair<std::string, std::shared_ptr<Breaker>>> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, list] : breakers_)
      for (const auto& b : list) all.emplace_back(name, b);
  }
  std::stable_sort(all.begin(), all.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [name, b] : all) f(name, *b);
}

size_t ClusterRegistry::retain(const std::function<bool(const std::string&)>& live) {
  std::lock_guard<std::mutex> lock(mu_);
  size_t before = cluster_count_locked();
  std::erase_if(by_name_, [&](const auto& kv) { return !live(kv.first); });
  std::erase_if(breakers_, [&](const auto& kv) { return !live(kv.first); });
  std::erase_if(outliers_, [&](const auto& kv) { return !live(kv.first); });
  return before - cluster_count_locked();
}

size_t ClusterRegistry::cluster_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return cluster_count_locked();
}

size_t ClusterRegistry::cluster_count_locked() const {
  std::unordered_set<std::string_view> names;
  for (const auto& [name, s] : by_name_) names.insert(name);
  for (const auto& [name, l] : breakers_) names.insert(name);
  for (const auto& [name, l] : outliers_) names.insert(name);
  return names.size();
}

}  // namespace gantry::upstream
