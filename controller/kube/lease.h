// Leader election bookkeeping over a coordination.k8s.io/v1 Lease, pure.
//
// Same rules as client-go's leaderelection: a Lease is free when it names no
// holder, or when its record (holder, renewTime, transitions, duration) has
// not changed for leaseDurationSeconds as measured by *our* clock since we
// first saw that record — never by comparing renewTime with our clock, so
// clock skew between replicas does not matter. Updates carry the
// resourceVersion we read (optimistic concurrency: a 409 means someone else
// wrote first).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "proxy/base/result.h"

namespace gantry::controller::kube {

struct LeaseRecord {
  std::string holder;
  int64_t lease_duration_seconds = 0;
  std::string acquire_time;  // MicroTime
  std::string renew_time;    // MicroTime
  int64_t transitions = 0;
  std::string resource_version;  // of the object read; not part of the record's identity

  bool same_record(const LeaseRecord& o) const {
    return holder == o.holder && lease_duration_seconds == o.lease_duration_seconds &&
           acquire_time == o.acquire_time && renew_time == o.renew_time &&
           transitions == o.transitions;
  }
};

Result<LeaseRecord> parse_lease(const nlohmann::json& lease);
// A Lease object for create (resource_version empty) or update.
nlohmann::json lease_object(const std::string& namespace_, const std::string& name,
                            const LeaseRecord& r);

class LeaseTracker {
 public:
  using Clock = std::chrono::steady_clock;
  // Records what was read at `now`; the expiry clock restarts when the record changed.
  void observe(const LeaseRecord& r, Clock::time_point now) {
    if (!record_ || !record_->same_record(r)) observed_at_ = now;
    record_ = r;
  }
  // True when the lease may be taken: no holder, or no renewal seen for its duration.
  bool free(Clock::time_point now) const {
    if (!record_ || record_->holder.empty()) return true;
    auto d = std::chrono::seconds(record_->lease_duration_seconds);
    return observed_at_ + d <= now;
  }
  const std::optional<LeaseRecord>& record() const { return record_; }

 private:
  std::optional<LeaseRecord> record_;
  Clock::time_point observed_at_{};
};

}  // namespace gantry::controller::kube
