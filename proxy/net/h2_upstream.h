// HTTP/2 upstream connections (h2c with prior knowledge): one libnghttp2
// client session (http2::ClientSession) on a socket, driven by one reader
// and one writer coroutine on the worker's thread, carrying the streams of
// many exchanges. The exchange driver opens an H2Call per request on a
// connection from the worker's per-endpoint list (Worker::h2_conns): a
// connection is reused while it can open a stream (the server's
// SETTINGS_MAX_CONCURRENT_STREAMS not reached, no GOAWAY); otherwise another
// one is connected.
//
// Invariants:
// - Single-threaded: everything runs on the owning worker's io_context.
// - An H2Call is registered with its connection from open() until release();
//   the connection's callbacks fill it and wake its waiter. release() resets
//   a stream that has not closed (RST_STREAM CANCEL).
// - A connection is handed out once the server's SETTINGS arrived (within the
//   connect timeout, as gRPC clients wait for the server preface): a port
//   that accepts but does not speak HTTP/2 (a stopped process, another
//   protocol) is a failed connect, and the request goes to another endpoint
//   with nothing sent.
// - When the connection fails (socket error, protocol error, no answer to a
//   keepalive PING) every open call is marked closed with kInternalError and
//   woken; the connection is dead and is never handed out again.
// - Keepalive (Envoy's connection_keepalive): with nothing read for
//   `keepalive_interval` the connection sends a PING; when nothing arrives
//   within `keepalive_timeout` after it, the connection fails (above).
// - shutdown() (the idle sweep) ends a connection with GOAWAY(NO_ERROR),
//   flushed before the socket closes; close() (the worker stopping) closes.
// - Bounded memory: a call's `data` holds at most the stream window
//   (ClientLimits::stream_window); the window reopens only as the exchange
//   consume()s what it relayed downstream.
#pragma once

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include "proxy/base/aio.h"
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/http2/client_session.h"
#include "proxy/tls/upstream_tls.h"

namespace gantry::net {

// The HTTP/2 request head of an HTTP/1.1 request head `h1` (request line,
// fields, final CRLF; as ExchangeDriver serialises it for any upstream): the
// same fields, names lower-cased, Host as :authority, :scheme https with
// `tls`; connection-specific fields are dropped by the codec.
http2::RequestHead h2_request_head(std::string_view h1, bool tls);

// One request/response stream on an upstream HTTP/2 connection.
struct H2Call {
  explicit H2Call(const ::gantry::aio::Executor& ex) : signal(ex), write_signal(ex) {}
  int32_t id = -1;
  bool head = false;   // the response head arrived
  int status = 0;
  std::vector<http2::Field> headers;
  std::string data;    // response body bytes not yet relayed
  bool ended = false;  // the response is complete (trailers, if any, in `trailers`)
  std::vector<http2::Field> trailers;
  bool closed = false;  // the stream is gone
  http2::ErrorCode code = http2::ErrorCode::kNoError;
  // The response side and the request-body side wait on timers of their own
  // (expires_at() on a shared one would cancel the other's wait).
  ::gantry::aio::steady_timer signal;
  ::gantry::aio::steady_timer write_signal;

  void notify() {
    signal.cancel();
    write_signal.cancel();
  }
  ::gantry::aio::awaitable<void> wait(bool writer);
};

// How an upstream HTTP/2 connection checks its backend (H2UpstreamConn::Options).
struct H2ConnOptions {
  std::chrono::milliseconds keepalive_interval{0};  // 0: no keepalive PINGs
  std::chrono::milliseconds keepalive_timeout{10000};
  // Called when a keepalive PING went unanswered (before the calls fail).
  std::function<void()> on_keepalive_timeout;
};

class H2UpstreamConn : public http2::ClientHandler, public std::enable_shared_from_this<H2UpstreamConn> {
 public:
  using Options = H2ConnOptions;

  // Connects to `ep` within `timeout` and starts the connection's coroutines.
  // Null (with `ec` set) when the connection could not be made. With `tls`
  // (an H2 cluster: HTTP/2 over TLS) the handshake runs within the same
  // `timeout` and must select h2 by ALPN; when it fails `tls_error` says why.
  static ::gantry::aio::awaitable<std::shared_ptr<H2UpstreamConn>> connect(
      boost::asio::io_context& io, boost::asio::ip::tcp::endpoint ep, std::chrono::milliseconds timeout,
      boost::system::error_code& ec, std::shared_ptr<const tls::UpstreamTlsContext> tls = nullptr,
      std::string* tls_error = nullptr, Options options = {});
  ~H2UpstreamConn() override;

  bool usable() const { return !dead_ && !closing_ && session_->can_open(); }
  bool dead() const { return dead_; }
  bool closing() const { return closing_; }
  size_t open_streams() const { return calls_.size(); }
  // Since when no stream has been open (the connection's start at first):
  // the worker closes connections idle beyond --upstream-idle-timeout.
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }
  // The server takes extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1,
  // RFC 8441): known once the connection is handed out (its SETTINGS came).
  bool connect_protocol() const { return session_->connect_protocol(); }
  // TLS: whether the handshake resumed a cached session.
  bool resumed() const { return tls_ && SSL_session_reused(tls_->native_handle()) == 1; }

  // Opens a stream for `call`. False: the connection cannot carry it.
  bool open(H2Call& call, const http2::RequestHead& head, bool end_stream);
  size_t send_data(H2Call& call, std::string_view data);
  void end_request(H2Call& call, std::span<const http2::Field> trailers = {});
  void consume(H2Call& call, size_t n);
  // The exchange is done with `call`: a stream still open is cancelled.
  void release(H2Call& call);
  void close();     // ends the connection at once (the worker is stopping)
  void shutdown();  // GOAWAY(NO_ERROR), flushed, then the socket closes

  // http2::ClientHandler
  void on_response(int32_t id, int status, std::vector<http2::Field>&& headers, bool end_stream) override;
  void on_data(int32_t id, std::string_view data) override;
  void on_response_end(int32_t id, const std::vector<http2::Field>* trailers) override;
  void on_closed(int32_t id, http2::ErrorCode code) override;
  void on_writable(int32_t id) override;

  H2UpstreamConn(boost::asio::io_context& io, ::gantry::aio::tcp_socket sock);  // use connect()

 private:
  H2Call* find(int32_t id);
  void fail();
  void wake_writer() { write_signal_.cancel(); }
  ::gantry::aio::awaitable<void> read_loop();
  ::gantry::aio::awaitable<void> write_loop();
  ::gantry::aio::awaitable<void> keepalive_loop();

  ::gantry::aio::tcp_socket sock_;
  std::shared_ptr<const tls::UpstreamTlsContext> tls_ctx_;
  std::unique_ptr<boost::asio::ssl::stream<::gantry::aio::tcp_socket&>> tls_;  // after sock_: destroyed first
  std::unique_ptr<http2::ClientSession> session_;
  std::unordered_map<int32_t, H2Call*> calls_;
  ::gantry::aio::steady_timer write_signal_;
  ::gantry::aio::steady_timer ready_signal_;  // connect() waits on it for the server's SETTINGS
  ::gantry::aio::steady_timer keepalive_;
  Options options_;
  std::chrono::steady_clock::time_point idle_since_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_read_ = std::chrono::steady_clock::now();
  bool ready_ = false;    // the server's SETTINGS arrived
  bool closing_ = false;  // shutdown(): GOAWAY queued, closes once written
  bool dead_ = false;
};

// A connection of `pool` that can open one more stream (dead ones are
// dropped from it first); null when none can.
std::shared_ptr<H2UpstreamConn> usable_conn(std::vector<std::shared_ptr<H2UpstreamConn>>& pool);

// The idle sweep over a pool of HTTP/2 connections by key: connections
// without an open stream for `limit` get shutdown() (GOAWAY, then close);
// dead or closing ones are forgotten, and so are keys left without any.
void reap_idle_h2(std::unordered_map<std::string, std::vector<std::shared_ptr<H2UpstreamConn>>>& pools,
                  std::chrono::steady_clock::time_point now, std::chrono::milliseconds limit);

}  // namespace gantry::net
