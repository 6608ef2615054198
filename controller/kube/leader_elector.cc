// Lease-based leader election; see leader_elector.h.
#include "controller/kube/leader_elector.h"

#include <spdlog/spdlog.h>

#include "controller/kube/status_patch.h"
#include "controller/kube/watch_protocol.h"

namespace gantry::controller::kube {

namespace {

std::string now_micro() {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  return format_rfc3339_micro(us);
}

}  // namespace

LeaderElector::LeaderElector(ApiClient& api, LeaderElectionConfig config)
    : api_(api), cfg_(std::move(config)) {
  path_ = "/apis/coordination.k8s.io/v1/namespaces/" + cfg_.namespace_ + "/leases";
}

LeaderElector::~LeaderElector() {
  stop();
  if (thread_.joinable()) thread_.detach();
}

void LeaderElector::start() {
  spdlog::info("leader election: lease {}/{} as {}", cfg_.namespace_, cfg_.name, cfg_.identity);
  thread_ = std::thread([this] { run(); });
}

void LeaderElector::stop() {
  stop_ = true;
  cv_.notify_all();
}

void LeaderElector::set_leading(bool on, const std::string& why) {
  if (leading_.exchange(on) == on) return;
  if (on) {
    ++transitions_;
    spdlog::info("leader election: acquired lease {}/{} as {}{}", cfg_.namespace_, cfg_.name,
                 cfg_.identity, why.empty() ? "" : " (" + why + ")");
  } else {
    spdlog::warn("leader election: lost lease {}/{}: {}; no longer writing status",
                 cfg_.namespace_, cfg_.name, why);
  }
}

void LeaderElector::run() {
  while (!stop_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) break;
      try_acquire_or_renew();
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, cfg_.retry_period, [this] { return stop_.load(); });
  }
}

void LeaderElector::try_acquire_or_renew() {
  auto now = std::chrono::steady_clock::now();
  auto check_deadline = [&](const std::string& why) {
    if (leading_ && now - last_renew_ > cfg_.renew_deadline)
      set_leading(false, "could not renew for " + std::to_string(cfg_.renew_deadline.count()) +
                             " s: " + why);
  };
  auto got = api_.call("GET", path_ + "/" + cfg_.name);
  if (!got.ok()) {
    spdlog::debug("leader election: {}", got.error().message);
    check_deadline(got.error().message);
    return;
  }
  LeaseRecord mine;
  mine.holder = cfg_.identity;
  mine.lease_duration_seconds = cfg_.lease_duration.count();
  if (got->status == 404) {
    mine.acquire_time = mine.renew_time = now_micro();
    auto r = api_.call("POST", path_, lease_object(cfg_.namespace_, cfg_.name, mine).dump());
    if (r.ok() && r->status == 201) {
      last_renew_ = now;
      set_leading(true, "created the lease");
    } else if (r.ok() && r->status != 409) {
      spdlog::warn("leader election: cannot create lease {}/{}: HTTP {}: {}", cfg_.namespace_,
                   cfg_.name, r->status, status_message(r->body));
    }
    return;
  }
  if (got->status != 200) {
    std::string why = "GET lease: HTTP " + std::to_string(got->status) + ": " +
                      status_message(got->body);
    spdlog::warn("leader election: {}", why);
    check_deadline(why);
    return;
  }
  nlohmann::json obj = nlohmann::json::parse(got->body, nullptr, false);
  auto rec = parse_lease(obj);
  if (!rec.ok()) {
    spdlog::warn("leader election: lease {}/{}: {}", cfg_.namespace_, cfg_.name,
                 rec.error().message);
    return;
  }
  tracker_.observe(*rec, now);
  bool ours = rec->holder == cfg_.identity;
  if (!ours && !tracker_.free(now)) {
    if (leading_) set_leading(false, "held by " + rec->holder);
    return;
  }
  mine.resource_version = rec->resource_version;
  mine.renew_time = now_micro();
  if (ours) {
    mine.acquire_time = rec->acquire_time;
    mine.transitions = rec->transitions;
  } else {
    mine.acquire_time = mine.renew_time;
    mine.transitions = rec->transitions + (rec->holder.empty() ? 0 : 1);
  }
  auto r = api_.call("PUT", path_ + "/" + cfg_.name,
                     lease_object(cfg_.namespace_, cfg_.name, mine).dump());
  if (r.ok() && r->status == 200) {
    last_renew_ = now;
    auto updated = parse_lease(nlohmann::json::parse(r->body, nullptr, false));
    if (updated.ok()) tracker_.observe(*updated, now);
    set_leading(true, ours ? "" : (rec->holder.empty() ? "the lease was free"
                                                        : "took over from " + rec->holder));
    return;
  }
  std::string why = r.ok() ? "PUT lease: HTTP " + std::to_string(r->status) + ": " +
                                 status_message(r->body)
                           : r.error().message;
  if (r.ok() && r->status == 409) {
    spdlog::debug("leader election: {}", why);  // someone else wrote first
    if (!ours && leading_) set_leading(false, "another replica updated the lease");
  } else {
    spdlog::warn("leader election: {}", why);
  }
  check_deadline(why);
}

void LeaderElector::release() {
  stop();
  std::lock_guard<std::mutex> lock(mu_);
  if (!leading_) return;
  const auto& rec = tracker_.record();
  if (!rec) return;
  LeaseRecord empty;
  empty.lease_duration_seconds = 1;
  empty.renew_time = now_micro();
  empty.acquire_time = empty.renew_time;
  empty.transitions = rec->transitions;
  empty.resource_version = rec->resource_version;
  auto r = api_.call("PUT", path_ + "/" + cfg_.name,
                     lease_object(cfg_.namespace_, cfg_.name, empty).dump());
  leading_ = false;
  if (r.ok() && r->status == 200)
    spdlog::info("leader election: released lease {}/{}", cfg_.namespace_, cfg_.name);
  else
    spdlog::warn("leader election: could not release lease {}/{}: {}", cfg_.namespace_, cfg_.name,
                 r.ok() ? "HTTP " + std::to_string(r->status) : r.error().message);
}

}  // namespace gantry::controller::kube
