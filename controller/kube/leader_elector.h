// Leader election on a coordination.k8s.io/v1 Lease (see lease.h for the rules).
//
// One thread: every retry period (2 s) it reads the Lease; creates it when
// missing; renews it while we hold it; takes it over when it is free (no
// holder, or not renewed for its 15 s duration by our clock). Updates are PUTs
// carrying the resourceVersion read, so two candidates cannot both win. A
// holder that cannot renew for the renew deadline (10 s) steps down before its
// lease can expire elsewhere. release() (at shutdown) empties the holder so a
// standby takes over at its next retry instead of waiting out the lease.
// Acquisitions and losses are logged; leading() is read by the status writer.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "controller/kube/api_client.h"
#include "controller/kube/lease.h"

namespace gantry::controller::kube {

struct LeaderElectionConfig {
  std::string namespace_ = "default";
  std::string name = "gantry-controller";
  std::string identity;  // hostname_pid
  std::chrono::seconds lease_duration{15};
  std::chrono::seconds renew_deadline{10};
  std::chrono::seconds retry_period{2};
};

class LeaderElector {
 public:
  LeaderElector(ApiClient& api, LeaderElectionConfig config);
  ~LeaderElector();

  void start();
  void stop();
  // Gives the lease up if we hold it (bounded by the client's timeout).
  void release();
  bool leading() const { return leading_.load(); }
  uint64_t transitions() const { return transitions_.load(); }  // times we acquired it

 private:
  void run();
  void try_acquire_or_renew();
  void set_leading(bool on, const std::string& why);

  ApiClient& api_;
  LeaderElectionConfig cfg_;
  std::string path_;
  LeaseTracker tracker_;
  std::chrono::steady_clock::time_point last_renew_{};
  std::atomic<bool> leading_{false};
  std::atomic<uint64_t> transitions_{0};
  std::atomic<bool> stop_{false};
  std::mutex mu_;  // guards the API calls vs release(), and the sleep
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace gantry::controller::kube
