// The proxy's two management listeners, one class:
//  - the stats listener (--stats-listen) serves /healthz, /readyz and /metrics
//    only: what probes and Prometheus need, safe to expose on the pod address;
//  - the admin listener (--admin-listen, 127.0.0.1 by default) serves those and
//    /config_dump and /upstreams, which reveal every host, path, Service and
//    pod address (docs/security.md): reach it through kubectl port-forward.
// Plain HTTP/1.1 on the control thread, one request per connection; never on
// the traffic listeners.
#pragma once

#include "proxy/base/aio.h"
#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <string>

#include "proxy/admin/metrics.h"
#include "proxy/base/flags.h"
#include "proxy/base/result.h"
#include "proxy/control/config_store.h"

namespace gantry::upstream {
class HealthChecker;
}

namespace gantry::admin {

class AdminServer {
 public:
  enum class Kind { kStats, kAdmin };
  // ready() returns an empty string when ready, else the reason it is not.
  AdminServer(boost::asio::io_context& io, control::ConfigStore& store, Metrics& metrics,
              std::function<std::string()> not_ready_reason, Kind kind = Kind::kAdmin);
  // The active health checker whose verdicts /upstreams shows (optional).
  void set_health(const upstream::HealthChecker* h) { health_ = h; }
  Status listen(const HostPort& hp);
  void start();
  void close();

 private:
  ::gantry::aio::awaitable<void> accept_loop();
  ::gantry::aio::awaitable<void> serve(::gantry::aio::tcp_socket sock);
  void respond(std::string_view method, std::string_view path, int& status, std::string& type,
               std::string& body);

  boost::asio::io_context& io_;
  control::ConfigStore& store_;
  Metrics& metrics_;
  std::function<std::string()> not_ready_reason_;
  const upstream::HealthChecker* health_ = nullptr;
  Kind kind_;
  ::gantry::aio::tcp_acceptor acceptor_;
};

}  // namespace gantry::admin
