// The controller's management listeners:
//  - the health listener (--health-listen): /healthz, /readyz, /metrics, what
//    probes and Prometheus need, safe to expose on the pod address;
//  - the admin listener (--admin-listen, 127.0.0.1 by default): those and
//    /status, every route's conditions (docs/security.md).
//
// A tiny blocking HTTP/1.0-style server on its own thread (one request per
// connection, then close) polling both sockets. It serves probes and tests,
// never traffic; the state it reports is set by the main loop under a mutex.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "proxy/base/flags.h"
#include "proxy/base/result.h"

namespace gantry::controller {

struct HealthState {
  bool ready = false;  // the first snapshot was ACKed
  std::string not_ready_reason = "no snapshot acknowledged by the proxy yet";
  uint64_t pushes = 0;
  uint64_t acks = 0;
  uint64_t nacks = 0;
  uint64_t acked_version = 0;
  bool proxy_connected = false;
  uint64_t loads = 0;
  uint64_t objects = 0;
  uint64_t files_with_errors = 0;
  uint64_t routes_not_accepted = 0;
  std::string status_json = "{\"routes\":[]}";
  // The ingress-nginx migration report (admin listener, /ingress-nginx).
  std::string ingress_nginx_json = "{\"ingresses\":[]}";
  // Extra metric lines in the Prometheus text format (the kube source's), appended as they are.
  std::string extra_metrics;
};

class HealthServer {
 public:
  // Binds and listens on both (admin: none when nullopt); the error names
  // the flag and the address.
  static Result<std::unique_ptr<HealthServer>> start(const HostPort& health,
                                                     const std::optional<HostPort>& admin);
  ~HealthServer();

  void update(const HealthState& s);
  uint16_t port() const { return port_; }
  uint16_t admin_port() const { return admin_port_; }

 private:
  HealthServer(int fd, uint16_t port, int admin_fd, uint16_t admin_port);
  void run();
  void serve(int client, bool admin);

  int fd_;
  uint16_t port_;
  int admin_fd_;  // -1: no admin listener
  uint16_t admin_port_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  HealthState state_;
  std::thread thread_;
};

}  // namespace gantry::controller
