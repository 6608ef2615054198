// HTTP/2 connection driver: runs one client connection's ServerSession on a
// socket (cleartext h2c or TLS after ALPN h2) with Boost.Asio coroutines, and
// gives each request stream to a runner coroutine as an http2::Stream, whose
// awaitable calls map one to one onto the exchange's Downstream interface
// (proxy/exchange/downstream.h): read_body, send_head, send_body,
// send_trailers, reset.
//
// Invariants:
// - One reader and one writer coroutine per connection, plus one runner per
//   open stream, all on the connection's executor (one thread): no locks.
//   A parking connection (serve_parking()) has neither while it is parked.
// - Flow control is the codec's and reaches the runner: read_body() hands
//   out what arrived and reopens the window for the previous piece only when
//   asked for the next one; send_body() completes only when the codec took
//   every byte (within the client's window plus the codec's bounded buffer).
// - When the connection ends (peer gone, protocol error, flood, idle
//   timeout) every open stream is marked closed and its runner woken: its
//   pending calls return false / failed and it unwinds.
// - Drainable::drain() starts the two-step GOAWAY; the connection ends when
//   its streams have finished.
#pragma once

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include "proxy/base/aio.h"
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http2/server_session.h"

namespace gantry::http2 {

class Core;

// A piece of the request body. `data` stays valid until the next read_body().
struct BodyPiece {
  std::string_view data;
  bool end = false;                               // the request is complete
  bool failed = false;                            // the stream or connection is gone
  const std::vector<Field>* trailers = nullptr;   // with end, when the client sent some
};

class Stream {
 public:
  Stream(std::shared_ptr<Core> core, int32_t id, RequestHead head, bool ended);
  int32_t id() const { return id_; }
  const RequestHead& head() const { return head_; }
  bool closed() const { return closed_; }
  bool request_ended() const { return ended_; }  // END_STREAM received (by now)
  // The request's HEADERS carried END_STREAM: it has no body. (request_ended()
  // may also hold for a body that arrived in full before the stream's runner
  // looked, e.g. a small gRPC message in the read that brought the head.)
  bool head_ended() const { return head_ended_; }
  ErrorCode close_code() const { return close_code_; }

  ::gantry::aio::awaitable<BodyPiece> read_body();
  ::gantry::aio::awaitable<bool> send_head(int status, std::span<const Field> fields, bool end_stream);
  ::gantry::aio::awaitable<bool> send_body(std::string_view data, bool end_stream);
  // The same without a coroutine frame, for callers that need not wait:
  // send_head_now() never waits; send_body_now() queues what the stream's
  // buffer takes and returns how much (all of it, and the end sent with
  // `end_stream`, or less: send_body() does the rest); false/0 once closed.
  bool send_head_now(int status, std::span<const Field> fields, bool end_stream);
  bool send_head_now(int status, std::span<const FieldView> fields, bool end_stream);
  size_t send_body_now(std::string_view data, bool end_stream);
  ::gantry::aio::awaitable<bool> send_trailers(std::span<const Field> fields);
  void reset(ErrorCode code);

 private:
  friend class Core;
  ::gantry::aio::awaitable<void> wait(bool writer);
  void notify();

  std::shared_ptr<Core> core_;
  int32_t id_;
  RequestHead head_;
  std::string in_;        // body bytes received, not yet handed out
  std::string handed_;    // the piece last handed out (consumed on the next call)
  std::vector<Field> trailers_;
  bool ended_ = false;    // END_STREAM received
  bool head_ended_ = false;  // ... on the HEADERS frame
  bool end_told_ = false;
  bool closed_ = false;
  ErrorCode close_code_ = ErrorCode::kNoError;
  // Made at the first wait (a stream whose answer goes out at once, the
  // common case, never waits: a timer's construction looks its service up
  // under the io_context's lock).
  std::optional<::gantry::aio::steady_timer> signal_;
  std::optional<::gantry::aio::steady_timer> write_signal_;
};

// Runs one stream, started once its request head is in (aio::spawn_detached).
// The coroutine it returns must not let an exception escape.
using StreamRunner = std::function<::gantry::aio::awaitable<void>(std::shared_ptr<Stream>)>;

// What the connection's owner keeps to drain it (call on the connection's
// thread): the two-step GOAWAY, then the connection ends when its streams
// have. Step two follows the PING ack, or `drain_ack_timeout` at the latest.
class Drainable {
 public:
  virtual ~Drainable() = default;
  virtual void drain() = 0;
};

struct ConnectionOptions {
  Limits limits;
  std::chrono::milliseconds idle_timeout{60000};  // no stream open and nothing read
  std::chrono::milliseconds drain_ack_timeout{1000};
  // Called once when the connection starts, with its drain handle.
  std::function<void(std::weak_ptr<Drainable>)> on_start;
  // Called once when the connection has ended, with its session.
  std::function<void(const ServerSession&)> on_end;
};

// Serves one connection until it ends. `already_read` holds bytes read while
// detecting the protocol (the preface on an h2c listener); they are fed first.
// `options` must outlive the connection (the worker owns one copy).
::gantry::aio::awaitable<void> serve(::gantry::aio::tcp_socket socket, std::string already_read,
                                   const ConnectionOptions& options, StreamRunner runner);
::gantry::aio::awaitable<void> serve(boost::asio::ssl::stream<::gantry::aio::tcp_socket> socket,
                                   std::string already_read, const ConnectionOptions& options,
                                   StreamRunner runner);

// serve() for a cleartext connection that parks while idle, as an idle
// HTTP/1.1 keep-alive connection does: once it has had no stream open, read
// nothing for 100 ms and has nothing to write, its reader and writer
// coroutines end at the next park_quiet_connections(), and what stays is the
// socket, the session (Core) and one readiness wait; bytes from the peer (or
// its close), the idle timeout, a drain, or its session's hibernation a
// second after the last bytes resume it in new coroutines.
// Runs on the socket's executor; `done` is called once, when the connection
// has ended (with the exception that ended it, if one did). `options` must
// outlive the connection; `on_start`, when given, is called instead of
// options.on_start (per-connection state, so that connections can share one
// `options`).
void serve_parking(::gantry::aio::tcp_socket socket, std::string already_read,
                   const ConnectionOptions& options, StreamRunner runner,
                   std::function<void(std::exception_ptr)> done,
                   std::function<void(std::weak_ptr<Drainable>)> on_start = nullptr);

// The owner's periodic sweep (every 100 ms, on the connections' thread):
// parks the calling thread's serve_parking() connections that are quiet (no
// stream open, nothing read for 100 ms, nothing to write). Only connections
// not parked are looked at: they are on a list of the thread's while their
// coroutines run.
void park_quiet_connections(std::chrono::steady_clock::time_point now);

}  // namespace gantry::http2
