// The exchange driver: runs one exchange (docs/ARCHITECTURE.md, "The
// exchange") for a stream of any codec, and talks to the client only through
// exchange::Downstream:
//
//   route → request filters → cache lookup → select (backend ref, breaker,
//   endpoint) → upstream-request filters → upstream (HTTP/1.1 pools, retries,
//   timeouts, mirror copy) → response filters → relay body (cache fill) → log
//
// Every answer the gateway makes itself (no route, no endpoint, breaker open,
// 502/503/504, a filter's Respond) is an exchange::LocalReply handed to
// Downstream::send_local_reply; nothing here writes client bytes.
//
// Entry point for a codec that runs one exchange per stream (HTTP/2, from the
// connection's StreamRunner, on the worker's thread):
//
//   std::unique_ptr<ExchangeDriver> d = take_driver(w);
//   co_await d->run(down);
//   if (d->upgraded) co_await tunnel_upgraded(w, down, *d);
//   give_back_driver(w, std::move(d));
//
// (net/h2_listener.cc, H2Connections::run_stream: in the stream's own
// coroutine, no frame of its own per stream.)
//
// A codec that runs many exchanges on one stream (HTTP/1.1 keep-alive) keeps
// one ExchangeDriver and calls run() per request, so its buffers are reused
// (no allocation per request once warm).
//
// Why in net/ and not exchange/: the driver uses the worker's pools,
// balancers, breakers and deadline sweep (net/worker.h); exchange/ stays pure
// (no sockets, no coroutines) so filters are unit-tested against a bare
// Exchange.
#pragma once

#include <utility>

#include "proxy/base/aio.h"
#include <boost/asio/awaitable.hpp>
#include <array>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "proxy/exchange/downstream.h"
#include "proxy/exchange/exchange.h"
#include "proxy/http/parser.h"
#include "proxy/http2/server_session.h"
#include "proxy/net/worker.h"
#include "proxy/resilience/outlier_detector.h"
#include "proxy/resilience/retry.h"
#include "proxy/tracing/span.h"

namespace gantry::control {
struct ClusterEndpoints;
struct Config;
struct RulePolicies;
}  // namespace gantry::control
namespace gantry::exchange {
class FilterChain;
}
namespace gantry::filters {
struct CachedResponse;
}
namespace gantry::snapshot {
struct RequestMirror;
}

namespace gantry::net {

struct CacheFill;

// The trace of one exchange (docs/tracing.md): active only when the proxy
// exports spans (--tracing-endpoint); everything else here is untouched on
// the request path when it is off.
struct TraceRecord {
  bool active = false;
  bool sampled = false;     // the head decision (parent-based, else the ratio)
  bool b3 = false;          // the caller spoke B3: the upstream gets a b3 field too
  tracing::TraceId trace_id{};
  tracing::SpanId span_id{};  // the gateway's span
  std::optional<tracing::SpanId> parent;
  std::string tracestate;   // forwarded as received
  std::string client;       // client.address
  uint64_t start_unix_ns = 0;
  uint32_t retries = 0;
  bool cache_hit = false;
  std::string_view filter;  // the request filter that answered (a snapshot name), if any
  std::vector<tracing::SpanEvent> events;
  char hex[48] = {};        // trace id (32) + span id (16), for the access log

  void reset() {
    active = sampled = b3 = cache_hit = false;
    parent.reset();
    tracestate.clear();
    client.clear();
    retries = 0;
    filter = {};
    events.clear();
  }
  // An event on the span (built only when the span may be exported).
  void event(std::string name, tracing::Attributes attrs = {});
};

// What the access log and the request metrics record of one exchange (or of a
// codec's own answer before an exchange began, e.g. HTTP/1.1's 400 and 408).
struct ExchangeRecord {
  Clock::time_point started;
  std::string request_id, method, host, path, route, upstream;
  std::string_view proto;        // the stream's ("HTTP/1.1", "HTTP/2"); empty before a request was parsed
  int status = 0;                // 0: nothing was answered (client gone)
  // A gRPC or gRPC-Web call: the grpc-status its client got (-1: none, e.g.
  // a reset stream; not a gRPC call); gantry_grpc_requests_total.
  int grpc_status = -1;
  bool grpc = false;             // a gRPC call over HTTP/2, or gRPC-Web
  double upstream_ms = -1;
  const char* error = nullptr;   // access-log "error": why the answer ended abnormally
  const std::string* cluster = nullptr;  // the chosen backend's (lives in the pinned Config)
  TraceRecord trace;

  void reset() {
    if (trace.active) trace.reset();
    request_id.clear();
    method.clear();
    host.clear();
    path.clear();
    route.clear();
    upstream.clear();
    proto = {};
    status = 0;
    grpc_status = -1;
    grpc = false;
    upstream_ms = -1;
    error = nullptr;
    cluster = nullptr;
  }
};

// The request id of an exchange: the client's X-Request-Id when it sent a
// usable one (1..128 bytes), else 32 random hex digits.
void assign_request_id(const std::vector<http::Header>* headers, std::string& out);

class ExchangeDriver {
 public:
  // `deadlines`: the node of the worker's sweep list that times the
  // upstream's connect and reads (a codec's session may lend its own; null:
  // the driver links one of its own for its lifetime).
  explicit ExchangeDriver(Worker& w, SessionBase* deadlines = nullptr);
  ~ExchangeDriver();
  ExchangeDriver(const ExchangeDriver&) = delete;
  ExchangeDriver& operator=(const ExchangeDriver&) = delete;

  // Runs one exchange on `down` to its end (answered, reset, or the client
  // gone), then logs it. The stream's request() must be complete.
  ::gantry::aio::awaitable<void> run(exchange::Downstream& down);

  // After run(): the upstream connection of an upgrade the upstream accepted
  // (101 to an HTTP/1.1 WebSocket request), for the codec to tunnel; null
  // otherwise. `tunnel_idle`: the route's idle timeout for it.
  std::unique_ptr<UpstreamConn> upgraded;
  std::chrono::milliseconds tunnel_idle{0};

  // The record of the exchange in progress. A codec's own answer before any
  // exchange (HTTP/1.1 parse errors, 408) fills it and calls log().
  ExchangeRecord record;
  void log(std::string_view client, uint64_t bytes_in, uint64_t bytes_out);

  // The exchange is over and the driver goes to the worker's spares
  // (HTTP/2): no deadline armed, nothing of the exchange kept, buffers
  // larger than kSpareBufferBytes given back.
  void recycle();

 private:
  using ms = std::chrono::milliseconds;

  // The gateway's own answer, through the LocalReply in ex_.reply.
  ::gantry::aio::awaitable<void> reply(exchange::Downstream& down, int status, std::string body, bool close,
                                     std::string_view gateway_reason = {});
  ::gantry::aio::awaitable<void> send_reply(exchange::Downstream& down);
  void finish(const exchange::Downstream& down);
  void build_upstream_head(const exchange::RequestInfo& rq);
  // Tracing (docs/tracing.md): the caller's context and the head decision;
  // the route's sampling override; the span, exported at the end.
  void begin_trace(const exchange::RequestInfo& rq, tracing::Exporter& ex);
  void route_sampling(double ratio);
  void end_trace(tracing::Exporter& ex);
  // One try on an HTTP/2 cluster, and what it came to. The caller's hooks:
  // outlier reporting, and the retry policy (empty: no retry; set only when
  // the request body can be sent again).
  struct H2cTry {
    enum Outcome : uint8_t {
      kAnswered,       // the client has its answer (the exchange is over)
      kConnectFailed,  // no connection or no stream: nothing was sent
      kRefused,        // REFUSED_STREAM: the server did not process it (RFC 9113 8.7)
      kRetry,          // a reset or a status the policy retries, nothing went downstream
      kIntercepted,    // filters.defaultBackend answers in place of `intercepted`, nothing went downstream
    };
    std::function<void(size_t, resilience::UpstreamResult)> report;
    std::function<bool(const resilience::TryOutcome&)> may_retry;
    // filters.defaultBackend interceptStatuses: whether an answer with this
    // status (or the gateway's own 502/504) goes to the default backend.
    std::function<bool(int)> intercept;
    int intercepted = 0;  // kIntercepted: the status the default backend answers in place of
    std::string tls_failure;       // why the last TLS handshake failed
    bool refused_retried = false;  // a refused stream goes again once without a policy
  };
  // The exchange's upstream phase on an h2c cluster (net/h2_upstream.h):
  // one stream on a shared HTTP/2 connection to endpoint `idx`; the request
  // head comes from up_head_, the body from replay_ when `body_buffered`.
  ::gantry::aio::awaitable<H2cTry::Outcome> run_h2c(exchange::Downstream& down, const exchange::FilterChain* chain,
                                                  const control::ClusterEndpoints& cluster, size_t idx,
                                                  bool has_body, bool body_buffered, bool te_trailers, ms timeout,
                                                  std::optional<Clock::time_point> deadline, bool grpc,
                                                  H2cTry& hooks);
  ::gantry::aio::awaitable<bool> relay_request_body(exchange::Downstream& down, UpstreamConn& up,
                                                  error_code& ec, bool& client_failed);
  // filters.maxRequestBodySize on a streamed body (a Content-Length one is
  // judged by the filter): `c` took it over the limit; the 413's text.
  bool over_body_limit(const exchange::BodyChunk& c) const;
  std::string body_limit_text() const;
  // The request's trailers, for an HTTP/2 upstream: an h2 client's (from
  // the body's last chunk, take_trailers()) or an HTTP/1.1 chunked body's
  // (collected by body_dechunk_ into req_trailer_raw_); lower-cased, without
  // the fields a trailer may not carry (request_trailer_allowed()).
  void take_trailers(const exchange::BodyChunk& c);
  void add_request_trailers(std::span<const http::Header> fields);
  std::span<const http2::Field> request_trailers();
  // `sent`: Content-Length body bytes that already went out with the head.
  ::gantry::aio::awaitable<bool> relay_response_body(exchange::Downstream& down, UpstreamConn& up,
                                                   bool& upstream_reusable, uint64_t sent);
  // The upstream ended a response before the body its framing promised
  // (EOF, reset, or no bytes within the timeout): counted, logged, and marked
  // on the access-log line. `got`: body bytes received; `want`: 0 if unknown.
  void upstream_truncated(bool timeout, uint64_t got, uint64_t want);
  ::gantry::aio::awaitable<size_t> read_some(UpstreamConn& up, Buffer& b, ms timeout, error_code& ec);
  ::gantry::aio::awaitable<std::string> tls_handshake(UpstreamConn& up, const control::ClusterEndpoints& c,
                                                    ms timeout);

  // ---- response cache (filters.cache): lookup before the upstream phase,
  // capture while relaying, store at the end. True: a hit was answered.
  ::gantry::aio::awaitable<bool> cache_lookup(exchange::Downstream& down, const control::RulePolicies& pol,
                                            ms wait_limit, std::unique_ptr<CacheFill>& fill);
  ::gantry::aio::awaitable<void> serve_cached(exchange::Downstream& down, const filters::CachedResponse& r,
                                            const control::RulePolicies& pol);
  void cache_begin_fill(CacheFill& f, bool is_upgrade);
  void cache_capture(std::string_view bytes);
  void cache_end_fill(CacheFill& f, bool complete);
  // ---- filters.transform (ex_.transform): the request body read whole into
  // replay_ and converted, its length ending up_head_ (false: answered); the
  // upstream's response body read whole, converted and answered (false: the
  // client did not get it all).
  ::gantry::aio::awaitable<bool> transform_request(exchange::Downstream& down);
  // ---- a request body read before the upstream phase (filters.transform,
  // extAuth withRequestBody): its plain bytes into body_ (an HTTP/1.1
  // chunked body's framing, as read, into body_raw_), continuing where an
  // earlier read stopped, to its end or, with `partial_ok`, until body_
  // holds `limit` bytes. kFailed: answered (a malformed body) or the client
  // is gone; kTooLarge: over `limit`, nothing answered yet.
  enum class BodyRead : uint8_t { kWhole, kPartial, kTooLarge, kFailed };
  ::gantry::aio::awaitable<BodyRead> read_request_body(exchange::Downstream& down, uint64_t limit, bool partial_ok);
  // extAuth withRequestBody (ex_.request_body): the body read for the
  // filter's wait; false: answered (413, a malformed body) or client gone.
  ::gantry::aio::awaitable<bool> read_body_for_filter(exchange::Downstream& down);
  ::gantry::aio::awaitable<bool> transform_response(exchange::Downstream& down, const exchange::FilterChain* chain,
                                                  UpstreamConn& up, bool& upstream_reusable);
  // ---- request mirroring (filters.requestMirrors): a copy of the upstream
  // request as sent (up_head_ + the buffered body) handed to the worker's
  // RequestMirror, per sampled mirror.
  void mirror_request(const snapshot::RequestMirror& m, const control::Config& cfg,
                      std::string_view upstream_host, bool body_buffered, bool upgrade);

  Worker& w_;
  std::unique_ptr<SessionBase> own_deadlines_;
  SessionBase& timer_;

  // per exchange, reused (capacities kept)
  exchange::Exchange ex_;              // the filters' inputs and outputs
  exchange::UpstreamRequest upreq_;   // the upstream request as the upstream-request filters leave it
  exchange::HeaderEdits resp_edits_;  // the response filters' edits of the answer's fields
  const snapshot::BackendRef* backend_ref_ = nullptr;  // the backendRef picked (its response header edits)
  std::string up_head_;               // the upstream request head, serialised
  std::string pool_key_;              // a TLS cluster's pool key: endpoint key + the cluster's suffix
  std::string replay_;                // a request body kept for retries and the mirror
  http::ResponseParser resp_parser_;
  http::ResponseHead resp_;
  http::ChunkedDecoder chunked_;
  std::string trailer_block_;                  // a de-chunked answer's trailer section
  std::vector<http::Header> trailer_fields_;   // ... as fields, views into trailer_block_
  static void forwardable_trailers(std::string_view block, std::vector<http::Header>& out);
  std::string decoded_;               // a chunked response's data, for a stream that takes no chunked framing
  std::vector<http::Header> cached_fields_;  // a cached answer's fields
  std::string sticky_;                // the request's session-cookie value
  std::string sni_scratch_;           // "listener/hostname" the connection's SNI belongs to
  // Client certificates per hostname: the host has an entry, and the
  // ssl-client-* fields its upstream request gets (tls/client_certificates.h).
  bool client_cert_host_ = false;
  std::vector<std::pair<std::string, std::string>> client_cert_fields_;
  std::string listener_scratch_;      // "listener/hostname" the request's routes are matched on
  std::vector<bool> ejected_;         // outlier detection: per endpoint, out of rotation
  std::string set_cookie_;            // a session cookie value to issue (consistent hash on a cookie)
  std::string cookie_attributes_;     // what follows set_cookie_ in Set-Cookie (affinity_cookie.h)
  std::string chunk_line_;            // a chunk-size line of a re-chunked request body
  std::string transform_in_, transform_out_;  // filters.transform: a response body before / after conversion
  // A request body read before the upstream phase (read_request_body()).
  std::string body_;                  // its plain bytes
  std::string body_raw_;              // an HTTP/1.1 chunked body's framing as read (relayed as is)
  http::ChunkedDecoder body_dechunk_;
  bool body_early_ = false;           // some of the body was read before the upstream phase
  bool body_ended_ = false;           // ... all of it
  bool body_h1_chunked_ = false;      // ... with HTTP/1.1 chunked framing (body_raw_)
  std::string req_trailer_raw_;       // an HTTP/1.1 chunked body's trailer section (request_trailers())
  std::vector<http2::Field> req_trailers_;  // the request's trailers for an HTTP/2 upstream
  // filters.defaultBackend: the request's URI, Host and client, kept for an intercepted answer.
  std::string error_uri_, error_host_, error_client_;
  CacheFill* capture_ = nullptr;      // set while relay_response_body feeds a cache fill
  bool parent_decided_ = false;       // the caller's context carried a sampling decision
  std::array<http::Header, 3> debug_{};  // --debug-headers fields
  char debug_time_[32] = {};
};

// Waits for a filter's PendingOp (exchange.h has the contract): start(done),
// then until done() ran (true) or `limit` passed (cancel(), false). `alive`
// (the worker's) keeps a late done() from posting to a worker being destroyed.
::gantry::aio::awaitable<bool> await_pending(boost::asio::io_context& io, exchange::PendingOp& op,
                                           std::chrono::milliseconds limit,
                                           std::shared_ptr<std::atomic<bool>> alive);

// One exchange on `down` with a driver of its own (HTTP/2: one per stream),
// taken from the worker's spares when one is there and returned to them
// after (at most kMaxSpareDrivers are kept; SpareDrivers::trim() lets those
// unused for a second go). The cap is above the streams a worker has in
// flight under load (the h2 bench keeps 160): at 64, four streams in ten
// built a driver, and its buffers, anew. At 1,024, the drivers idle
// HTTP/1.1 connections give back cost 0.2 KiB per idle connection at 10,000
// (kept, then freed among live objects); at 256, nothing measurable.
constexpr size_t kMaxSpareDrivers = 256;
constexpr size_t kSpareBufferBytes = 64 * 1024;
// An HTTP/2 WebSocket the upstream accepted (ExchangeDriver::upgraded): the
// stream is the tunnel. The driver (and the client's connectionLimit place
// it holds) waits for it.
::gantry::aio::awaitable<void> tunnel_upgraded(Worker& w, exchange::Downstream& down, ExchangeDriver& d);

// Whether a request trailer field named `name` may be relayed: not a
// pseudo-header, nor a framing, routing or connection-specific field (RFC
// 9110 6.5.1, RFC 9113 8.2.2).
bool request_trailer_allowed(std::string_view name);

// The worker's spare drivers: a driver for an HTTP/2 stream, or for an
// HTTP/1.1 connection (taken when it opens, given back while it idles and
// taken again at its next request, so an idle connection holds none).
std::unique_ptr<ExchangeDriver> take_driver(Worker& w);
void give_back_driver(Worker& w, std::unique_ptr<ExchangeDriver> d);

// The memory of ExchangeDriver::run()'s coroutine frames, from the thread's
// spares (at most kMaxSpareFrames; trim_spare_frames(), the worker's sweep,
// lets go those unused since its last call). The frame holds every phase's
// locals apart (~5.7 KiB with GCC 12): past glibc's per-thread cache and
// Asio's frame recycling, so each exchange paid a malloc and a free on
// glibc's slow paths (~450 instructions, HTTP/1.1 and HTTP/2 alike). Kept in
// the drivers instead, the frames of drivers that idle HTTP/1.1 connections
// gave back were freed among long-lived objects: +1 KiB per idle connection.
constexpr size_t kMaxSpareFrames = kMaxSpareDrivers;
void* take_exchange_frame(size_t size);
void give_back_exchange_frame(void* frame, size_t size);
void trim_spare_frames();

}  // namespace gantry::net

// run()'s promise: Asio's, with the frame's memory from the thread's spare
// frames (take_exchange_frame). A coroutine's promise may declare an
// operator new that receives the coroutine's arguments (C++20
// [dcl.fct.def.coroutine]); Asio chooses its promise for every awaitable
// with a partial specialization of std::coroutine_traits, and this full one
// is more specialised. Asio's awaitable accepts to be awaited only from a
// handle typed with Asio's promise: await_transform hands it that handle,
// of the same frame (the promise adds no member, so it sits where Asio's
// would). Nothing else differs from Asio's promise.
template <>
struct std::coroutine_traits<::gantry::aio::awaitable<void>, gantry::net::ExchangeDriver&,
                             gantry::exchange::Downstream&> {
  using AsioPromise = boost::asio::detail::awaitable_frame<void, ::gantry::aio::Executor>;
  struct promise_type : AsioPromise {
    static void* operator new(std::size_t size, gantry::net::ExchangeDriver&, gantry::exchange::Downstream&) {
      return gantry::net::take_exchange_frame(size);
    }
    static void operator delete(void* frame, std::size_t size) { gantry::net::give_back_exchange_frame(frame, size); }

    template <class T>
    struct Awaiter {
      ::gantry::aio::awaitable<T> inner;
      bool await_ready() const noexcept { return inner.await_ready(); }
      void await_suspend(std::coroutine_handle<promise_type> h) {
        inner.await_suspend(std::coroutine_handle<AsioPromise>::from_promise(h.promise()));
      }
      T await_resume() { return inner.await_resume(); }
    };
    template <class T>
    Awaiter<T> await_transform(::gantry::aio::awaitable<T> a) {
      return Awaiter<T>{std::move(a)};
    }
    using AsioPromise::await_transform;  // this_coro::executor, an operation's initiation
  };
  static_assert(sizeof(promise_type) == sizeof(AsioPromise) && alignof(promise_type) == alignof(AsioPromise));
};
