// Passive outlier detection of one upstream cluster.
//
// Each endpoint (by its index in the cluster's endpoint list) has two
// counters: consecutive 5xx responses and consecutive connect failures. When
// either reaches its threshold (0 disables it) the endpoint is ejected for
// base_ejection_time x its ejection count (the count grows by one per
// ejection and shrinks by one per base_ejection_time spent back in rotation;
// the time is capped at max(base_ejection_time, 300 s)). An ejection is
// refused when it would put more than max_ejection_percent of the endpoints
// out (ejected + 1 <= n x percent / 100), so one endpoint of one is never
// ejected. Ejections end lazily: the first call at or after the deadline
// returns the endpoint to rotation with its counters reset.
// One instance per cluster, shared by every worker: a small mutex per cluster.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::resilience {

using SteadyTime = std::chrono::steady_clock::time_point;

enum class UpstreamResult : uint8_t {
  kSuccess,         // a response below 500
  kServerError,     // a 5xx response
  kConnectFailure,  // connect refused / timed out
};

struct OutlierStats {
  uint32_t ejected = 0;  // endpoints out of rotation now
  uint64_t ejections_total = 0;
  uint64_t ejections_refused = 0;  // over max_ejection_percent
};

class OutlierDetector {
 public:
  static constexpr std::chrono::milliseconds kMaxEjectionTime{300000};

  // `endpoints`: the cluster's endpoint identities ("10.0.0.1:8080"), in the
  // order the runtime indexes them.
  static Result<std::unique_ptr<OutlierDetector>> create(const snapshot::OutlierDetection& config,
                                                         std::span<const std::string> endpoints);

  // Replaces the endpoint list (an endpoint delta). State follows an endpoint
  // by identity; new endpoints start clean.
  void update_endpoints(std::span<const std::string> endpoints);

  // Reports the result of one request to endpoint `index`. True when this
  // result ejected it. Out-of-range indexes are ignored.
  bool record(size_t index, UpstreamResult result, SteadyTime now);

  bool is_ejected(size_t index, SteadyTime now);
  // ejected[i] = is_ejected(i) for every endpoint; resized to the endpoint count.
  void ejected_mask(std::vector<bool>& ejected, SteadyTime now);
  OutlierStats stats(SteadyTime now);

 private:
  struct EndpointState {
    std::string id;
    uint32_t consecutive_5xx = 0;
    uint32_t consecutive_connect_failures = 0;
    uint32_t ejection_count = 0;  // drives the growing ejection time
    bool ejected = false;
    SteadyTime ejected_until{};
    SteadyTime returned_at{};  // when it last came back (for the count's decay)
  };

  explicit OutlierDetector(const snapshot::OutlierDetection& config) : config_(config) {}
  void expire(EndpointState& e, SteadyTime now);  // caller holds mu_
  void expire_all(SteadyTime now);
  bool try_eject(EndpointState& e, SteadyTime now);

  const snapshot::OutlierDetection config_;
  std::mutex mu_;
  std::vector<EndpointState> endpoints_;
  uint32_t ejected_ = 0;
  uint64_t ejections_total_ = 0;
  uint64_t ejections_refused_ = 0;
};

}  // namespace gantry::resilience
