#include "proxy/resilience/outlier_detector.h"

#include <algorithm>
#include <unordered_map>

namespace gantry::resilience {

Result<std::unique_ptr<OutlierDetector>> OutlierDetector::create(
    const snapshot::OutlierDetection& config, std::span<const std::string> endpoints) {
  if (config.max_ejection_percent > 100) {
    return Error{"outlierDetection: maxEjectionPercent must be <= 100"};
  }
  if (config.base_ejection_time.count() <= 0) {
    return Error{"outlierDetection: baseEjectionTime must be > 0"};
  }
  auto d = std::unique_ptr<OutlierDetector>(new OutlierDetector(config));
  d->update_endpoints(endpoints);
  return d;
}

void OutlierDetector::update_endpoints(std::span<const std::string> endpoints) {
  std::lock_guard lock(mu_);
  std::unordered_map<std::string_view, size_t> old;
  for (size_t i = 0; i < endpoints_.size(); ++i) old.emplace(endpoints_[i].id, i);
  std::vector<EndpointState> next(endpoints.size());
  for (size_t i = 0; i < endpoints.size(); ++i) {
    auto it = old.find(endpoints[i]);
    if (it != old.end()) next[i] = endpoints_[it->second];
    next[i].id = endpoints[i];
  }
  endpoints_ = std::move(next);
  ejected_ = static_cast<uint32_t>(
      std::count_if(endpoints_.begin(), endpoints_.end(), [](auto& e) { return e.ejected; }));
}

void OutlierDetector::expire(EndpointState& e, SteadyTime now) {
  if (e.ejected && now >= e.ejected_until) {
    e.ejected = false;
    e.returned_at = now;
    e.consecutive_5xx = 0;
    e.consecutive_connect_failures = 0;
    --ejected_;
  }
}

void OutlierDetector::expire_all(SteadyTime now) {
  for (auto& e : endpoints_) expire(e, now);
}

bool OutlierDetector::try_eject(EndpointState& e, SteadyTime now) {
  expire_all(now);  // the percentage counts only endpoints still out
  const uint64_t n = endpoints_.size();
  if ((static_cast<uint64_t>(ejected_) + 1) * 100 > n * config_.max_ejection_percent) {
    ++ejections_refused_;
    e.consecutive_5xx = 0;
    e.consecutive_connect_failures = 0;
    return false;
  }
  // The count decays by one per base_ejection_time spent back in rotation.
  if (e.ejection_count > 0) {
    const auto healthy_for = now - e.returned_at;
    const auto periods = static_cast<uint64_t>(healthy_for / config_.base_ejection_time);
    e.ejection_count =
        periods >= e.ejection_count ? 0 : e.ejection_count - static_cast<uint32_t>(periods);
  }
  ++e.ejection_count;
  const auto cap =
      std::max(std::chrono::duration_cast<std::chrono::milliseconds>(config_.base_ejection_time),
               kMaxEjectionTime);
  const auto time = std::min<std::chrono::milliseconds>(
      config_.base_ejection_time * static_cast<int64_t>(e.ejection_count), cap);
  e.ejected = true;
  e.ejected_until = now + time;
  ++ejected_;
  ++ejections_total_;
  return true;
}

bool OutlierDetector::record(size_t index, UpstreamResult result, SteadyTime now) {
  std::lock_guard lock(mu_);
  if (index >= endpoints_.size()) return false;
  EndpointState& e = endpoints_[index];
  expire(e, now);
  if (e.ejected) return false;  // results of requests sent before the ejection
  bool trip = false;
  switch (result) {
    case UpstreamResult::kSuccess:
      e.consecutive_5xx = 0;
      e.consecutive_connect_failures = 0;
      break;
    case UpstreamResult::kServerError:
      e.consecutive_connect_failures = 0;  // it connected
      ++e.consecutive_5xx;
      trip = config_.consecutive_5xx > 0 && e.consecutive_5xx >= config_.consecutive_5xx;
      break;
    case UpstreamResult::kConnectFailure:
      ++e.consecutive_connect_failures;
      trip = config_.consecutive_connect_failures > 0 &&
             e.consecutive_connect_failures >= config_.consecutive_connect_failures;
      break;
  }
  return trip && try_eject(e, now);
}

bool OutlierDetector::is_ejected(size_t index, SteadyTime now) {
  std::lock_guard lock(mu_);
  if (index >= endpoints_.size()) return false;
  expire(endpoints_[index], now);
  return endpoints_[index].ejected;
}

void OutlierDetector::ejected_mask(std::vector<bool>& ejected, SteadyTime now) {
  std::lock_guard lock(mu_);
  expire_all(now);
  ejected.resize(endpoints_.size());
  for (size_t i = 0; i < endpoints_.size(); ++i) ejected[i] = endpoints_[i].ejected;
}

OutlierStats OutlierDetector::stats(SteadyTime now) {
  std::lock_guard lock(mu_);
  expire_all(now);
  return {ejected_, ejections_total_, ejections_refused_};
}

}  // namespace gantry::resilience
