// The proxy's data plane: N workers, each one thread with its own
// io_context, its own SO_REUSEPORT listener, its own upstream connection pools
// and load-balancer state. Nothing on the request path is shared between
// workers except the published Config (read through a ConfigView) and atomic
// metric counters.
//
// Request life cycle (one coroutine per client connection):
//   read head (request-header timeout) -> parse strictly -> normalise target
//   (the HTTP/1.1 codec, net/server.cc's Session) -> the exchange driver
//   (net/exchange_driver.h): route -> request filters -> response cache
//   lookup (a hit answers here) -> backend ref, breaker -> upstream-request
//   filters -> mirror copy (fire-and-forget) -> endpoint -> pooled or new
//   upstream connection -> relay head and body -> response filters -> relay
//   response (captured for the cache when it may be stored) -> log; the codec
//   keeps both sides alive when allowed.
// The gateway's own answers are exchange::LocalReply values, written by each
// codec in one place (HTTP/1.1: Session::local_reply, with a short body and
// the X-Request-Id).
#pragma once

#include <atomic>
#include <optional>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/admin/metrics.h"
#include "proxy/base/flags.h"
#include "proxy/control/config_store.h"
#include "proxy/net/access_log.h"
#include "proxy/net/cidr.h"

namespace boost::asio::ssl {
class context;
}

namespace gantry::upstream {
class HealthChecker;
}
namespace gantry::tracing {
class Exporter;
}

namespace gantry::net {

struct ServerOptions {
  HostPort http_listen{"0.0.0.0", 8080};
  std::optional<HostPort> https_listen;  // certificates come from the snapshot
  // A cleartext listener that speaks HTTP/2 only, with prior knowledge
  // (--h2c-listen): no HTTP/1.1 sniffing, so bytes that are not the client
  // preface end the connection with GOAWAY PROTOCOL_ERROR (RFC 9113 3.4).
  std::optional<HostPort> h2c_listen;
  int workers = 1;
  std::chrono::milliseconds request_header_timeout{10000};
  std::chrono::milliseconds client_idle_timeout{60000};
  std::chrono::milliseconds upstream_connect_timeout{5000};
  std::chrono::milliseconds upstream_timeout{60000};  // default per-try response timeout
  // Pooled upstream connections idle longer are closed (checked every second).
  std::chrono::milliseconds upstream_idle_timeout{30000};
  // Idle keep-alive connections a worker keeps per upstream endpoint
  // (--upstream-max-idle-per-endpoint). One given back past it is closed, so
  // a load with more requests in flight per endpoint than this opens and
  // closes connections all the time (a TCP handshake and teardown on both
  // sides); the idle timeout above bounds how long the pool stays large.
  size_t upstream_max_idle_per_endpoint = 1024;
  // HTTP/2 upstream keepalive (net/h2_upstream.h): a connection with nothing
  // read for the interval is PINGed, and fails when nothing arrives within
  // the timeout after it (--upstream-h2-keepalive-interval / -timeout; an
  // interval of 0: off).
  std::chrono::milliseconds upstream_h2_keepalive_interval{30000};
  std::chrono::milliseconds upstream_h2_keepalive_timeout{10000};
  std::chrono::milliseconds websocket_idle_timeout{3600000};  // unless the route sets timeouts.idle
  // TLS passthrough connections with no byte either way this long are closed
  // (--passthrough-idle-timeout; net/passthrough.h).
  std::chrono::milliseconds passthrough_idle_timeout{3600000};
  bool debug_headers = false;
  // HTTP/2 on the listeners (--http2): h2c prior knowledge on the plain one,
  // ALPN h2 on the TLS one (net/h2_listener.h).
  bool http2 = true;
  std::vector<Cidr> trusted_proxies;
  // Tracing (docs/tracing.md): the exporter spans go to (--tracing-endpoint;
  // null: tracing off) and the sampling ratio of new traces (--tracing-sampling).
  tracing::Exporter* tracer = nullptr;
  double tracing_sampling = 1.0;
};

class Worker;

// Which listener a connection came in on: the name routes list
// (snapshot::Listener::name) and whether it is one of the proxy's own
// (--http-listen / --https-listen), which serve the routes that list none.
struct ListenerTag {
  ListenerTag(std::string n, bool o, uint16_t public_port_ = 0)
      : name(std::move(n)), own(o), public_port(public_port_) {}
  std::string name;
  bool own = false;
  uint16_t public_port = 0;  // snapshot::Listener::public_port: what redirects keep
  // Set when a snapshot drops the listener: its connections are closed at
  // their next request boundary (HTTP/1.1: the answer carries Connection:
  // close; HTTP/2: GOAWAY), so a Gateway that is gone stops being served
  // on connections opened before (a client may reach its port again for
  // another Gateway, as in service mode where ports are reused).
  mutable std::atomic<bool> closed{false};
};

class Server {
 public:
  Server(ServerOptions opts, control::ConfigStore& store, admin::Metrics& metrics, AccessLog& log);
  ~Server();

  // Binds every worker's listener, then those of the applied snapshot. Errors
  // name the address.
  Status listen();
  // Binds the listeners of `snap` not bound yet on every worker (SO_REUSEPORT)
  // and closes those it no longer has; connections accepted earlier are not
  // touched. A listener that cannot be bound is logged and retried with the
  // next snapshot. Called on the control thread after each publish.
  void sync_listeners(const std::shared_ptr<const snapshot::Snapshot>& snap);
  void start();          // starts the worker threads
  void begin_drain();    // responses now carry Connection: close; HTTP/2 connections get GOAWAY
  void stop_accepting(); // closes the listeners
  // Waits until every client connection has finished or the deadline passed,
  // then stops the workers and joins them.
  void shutdown(std::chrono::milliseconds grace);

  bool draining() const { return draining_.load(std::memory_order_relaxed); }
  const ServerOptions& options() const { return opts_; }
  uint16_t http_port() const { return opts_.http_listen.port; }
  uint16_t https_port() const { return opts_.https_listen ? opts_.https_listen->port : 0; }
  uint16_t h2c_port() const { return opts_.h2c_listen ? opts_.h2c_listen->port : 0; }
  boost::asio::ssl::context& tls_context() { return *tls_ctx_; }
  AccessLog& log() { return log_; }
  size_t active_connections() const;
  const upstream::HealthChecker& health() const { return *health_; }

 private:
  friend class Worker;
  ServerOptions opts_;
  control::ConfigStore& store_;
  admin::Metrics& metrics_;
  AccessLog& log_;
  std::unique_ptr<boost::asio::ssl::context> tls_ctx_;
  std::unique_ptr<upstream::HealthChecker> health_;  // active health checks, one thread
  std::atomic<bool> draining_{false};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::shared_ptr<const ListenerTag> http_tag_, https_tag_, h2c_tag_;
  std::mutex listeners_mu_;  // sync_listeners vs stop_accepting
  bool accepting_ = true;
  std::shared_ptr<const snapshot::Snapshot> synced_;  // the snapshot last synced
  // snapshot listeners bound on every worker -> (tls, public port)
  std::map<std::string, std::pair<bool, uint16_t>> bound_;
};

}  // namespace gantry::net
