// HTTP/2 on the proxy's own listeners (issue 13): how a client connection
// that speaks HTTP/2 reaches the HTTP/2 codec (proxy/http2/), and how each of
// its streams reaches the exchange. One H2Connections per worker, on the
// worker's thread.
//
// How a connection gets here:
// - Cleartext listener: the HTTP/1.1 session looks at its connection's first
//   bytes only when they start with 'P'; the HTTP/2 client preface (h2c with
//   prior knowledge) hands the socket over with the bytes already read. No
//   extra read, no copy and no allocation on the HTTP/1.1 path.
// - TLS listener: ALPN offers h2 before http/1.1 (tls::set_offer_h2); a
//   handshake that negotiated h2 hands the TLS stream over.
// - HTTP/1.1 `Upgrade: h2c` is not honoured (RFC 9113 deprecated it): the
//   request is served as HTTP/1.1 and the Upgrade field dropped as hop-by-hop.
//
// Invariants:
// - A stream becomes an H2Downstream (a :path or :authority that does not
//   normalise, or CONNECT, is answered 400 here) and runs the exchange
//   through the worker's ExchangeRunner; streams of a connection run
//   concurrently on the worker's thread.
// - An HTTP/2 connection counts in the worker's connection count (and in
//   gantry_downstream_connections_active) until the connection *and* the
//   exchange of each of its streams have finished, so a shutdown waits for
//   exchanges still talking to an upstream after their client went away.
// - drain_all() sends the two-step GOAWAY on every connection (Drainable);
//   a connection accepted while the server drains is drained at once.
#pragma once

#include "proxy/base/aio.h"
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/admin/metrics.h"
#include "proxy/exchange/downstream.h"
#include "proxy/http2/connection.h"
#include "proxy/net/access_log.h"
#include "proxy/net/cidr.h"
#include "proxy/net/server.h"

namespace gantry::http2 {
class H2Downstream;
}

namespace gantry::net {

// True when the TLS handshake on `ssl` negotiated ALPN h2.
bool negotiated_h2(SSL* ssl);
// The server name the client sent in its TLS handshake on `ssl`, lower case
// (empty: none).
std::string connection_sni(SSL* ssl);

class H2Connections {
 public:
  // `worker_connections`: the worker's count of client connections;
  // `draining`: whether the server drains (a new connection is drained at once).
  H2Connections(boost::asio::io_context& io, const ServerOptions& opts, admin::WorkerMetrics& metrics,
                AccessLog& log, std::atomic<size_t>& worker_connections, std::function<bool()> draining);
  ~H2Connections();
  H2Connections(const H2Connections&) = delete;
  H2Connections& operator=(const H2Connections&) = delete;

  // Set once by the worker before it serves: each stream runs one exchange
  // (route → filters → upstream → response → log) on it.
  void set_worker(Worker* w) { worker_ = w; }

  // Take over a client connection. `peer_ip`: the connection's peer address;
  // `listener`, `local_port`: the listener it came in on (routes match on it).
  void serve(::gantry::aio::tcp_socket sock, std::string already_read, std::string peer_ip,
             std::shared_ptr<const ListenerTag> listener = nullptr, uint16_t local_port = 0);
  // `sni`: the client's SNI on a snapshot listener (RequestInfo::sni).
  // `client_cert`: RequestInfo::client_cert.
  void serve(boost::asio::ssl::stream<::gantry::aio::tcp_socket> sock, std::string peer_ip,
             std::shared_ptr<const ListenerTag> listener = nullptr, uint16_t local_port = 0,
             std::string sni = {}, std::shared_ptr<const tls::ClientCertificate> client_cert = nullptr);

  // The two-step GOAWAY on every open connection (idempotent).
  void drain_all();
  size_t open_connections() const { return open_; }

  // GOAWAY to the connections of a snapshot listener the snapshot dropped.
  void drain_listener(const std::string& name);
  // The worker's sweep, once a second: the spare downstreams unused in that
  // second go (as the worker's spare exchange drivers, SpareDrivers::trim()).
  void trim_spares();
  struct Conn;

 private:
  template <class Socket>
  void start(Socket sock, std::string already_read, std::string peer_ip, bool tls,
             std::shared_ptr<const ListenerTag> listener, uint16_t local_port, std::string sni = {},
             std::shared_ptr<const tls::ClientCertificate> client_cert = nullptr);
  ::gantry::aio::awaitable<void> run_stream(std::shared_ptr<Conn> c, std::shared_ptr<http2::Stream> st);
  void finished(Conn& c);

  boost::asio::io_context& io_;
  // Limits, idle timeout, drain ack timeout: shared by the worker's h2c
  // connections, each of which keeps it alive (they may outlive this object).
  std::shared_ptr<const http2::ConnectionOptions> conn_opts_;
  std::vector<Cidr> trusted_proxies_;   // X-Forwarded-For is believed only from these peers
  admin::WorkerMetrics& metrics_;
  AccessLog& log_;
  std::atomic<size_t>& worker_connections_;
  std::function<bool()> draining_;
  Worker* worker_ = nullptr;
  Conn* conns_ = nullptr;  // intrusive list of open connections
  size_t open_ = 0;
  // The downstreams of finished streams, for the next streams (a stack, at
  // most kMaxSpareDownstreams; `spare_low_water_`: the fewest since the last
  // trim): a stream's request then lands in strings and vectors already grown.
  static constexpr size_t kMaxSpareDownstreams = 256;
  std::vector<std::unique_ptr<http2::H2Downstream>> spares_;
  size_t spare_low_water_ = 0;
};

}  // namespace gantry::net
