// The exchange: one request and its response, the same for every downstream
// codec (HTTP/1.1 today, HTTP/2 next). It runs, in this fixed order:
//
//   route → request filters → [cache lookup] → select (backend, endpoint,
//   breaker) → upstream-request filters → upstream → response filters → log
//
// This header is the protocol-independent part: what a request looks like to
// a filter (RequestInfo), the per-exchange context that carries state between
// phases (Exchange), the gateway's own answers (LocalReply), and the edits
// filters make to the upstream request and the response (HeaderEdits,
// UpstreamRequest). It has no sockets, no coroutines and no codec: filters
// are unit-tested against a bare Exchange. See docs/ARCHITECTURE.md ("The
// exchange") for the codec side and why this shape.
//
// Invariants:
// - Every string_view in an Exchange points into memory that outlives the
//   exchange: the codec's request buffer (RequestInfo), the Config the
//   exchange pinned (snapshot strings), or the Exchange's own owned vectors.
// - An Exchange is reused by its connection (or stream) for the next request:
//   reset() keeps the vectors' capacity, so a request allocates nothing here
//   after the first.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http/message.h"

namespace gantry::router {
struct CompiledRule;
}
namespace gantry::snapshot {
struct Transform;
}

namespace gantry::tls {
struct ClientCertificate;
}

namespace gantry::exchange {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using OwnedHeaders = std::vector<std::pair<std::string, std::string>>;

// The request as every codec presents it (HTTP/2 pseudo-headers mapped:
// :method → method, :authority → host, :path → path + query).
struct RequestInfo {
  std::string_view method;
  std::string_view host;   // normalised (lower case, no port, no trailing dot)
  std::string_view path;   // normalised (docs/http.md), without the query
  std::string_view query;  // as sent, without '?'
  std::string_view host_header;  // Host / :authority as sent (empty when absent)
  const std::vector<http::Header>* headers = nullptr;  // every field, names as sent
  http::BodyKind body = http::BodyKind::kNone;  // kContentLength, kChunked (any streamed body) or kNone
  uint64_t content_length = 0;                  // when body == kContentLength
  std::string_view client_ip;  // the peer, or the X-Forwarded-For entry of a trusted proxy
  std::string_view peer_ip;    // the connection's peer (X-Forwarded-For is extended with it)
  // The upgrade asked for, a WebSocket: HTTP/1.1's Upgrade field, or the
  // :protocol of an HTTP/2 extended CONNECT (RFC 8441), which the exchange
  // sees as a GET with this upgrade. Empty: none.
  std::string_view upgrade;
  // HTTP/2 extended CONNECT only: the Sec-WebSocket-Key the codec made for the
  // HTTP/1.1 handshake with the upstream (the client sends none); the driver
  // sends it and checks the 101's Sec-WebSocket-Accept. Empty on HTTP/1.1,
  // whose client sends its key and checks the answer itself.
  std::string_view websocket_key;
  std::string_view proto;      // "HTTP/1.0", "HTTP/1.1", "HTTP/2"
  bool tls = false;
  // TLS on a snapshot listener: the client's SNI, lower case (empty: none
  // sent, or not looked at). The exchange answers 421 when the request's
  // host belongs to another Gateway listener than the SNI does.
  std::string_view sni;
  // TLS: what the handshake established about client certificates per
  // hostname (tls/client_certificates.h); null when nothing was kept.
  const tls::ClientCertificate* client_cert = nullptr;
  uint16_t listener_port = 0;  // the port the connection came in on (0: unknown)
  // The listener it came in on (snapshot::Listener::name) and whether it is
  // one of the proxy's own, which serve the routes that list no listener.
  std::string_view listener;
  bool own_listener = true;
};

// What the gateway answers itself: a filter's Respond, or an error of the
// exchange (no route, no endpoint, breaker open, upstream failure). One type,
// so that each codec builds its local replies in one place: HTTP/1.1 writes a
// status line, these headers and a text body; HTTP/2 sends HEADERS (+ DATA),
// and a gRPC request gets a trailers-only answer with grpc_status_for(status)
// (exchange/grpc.h).
struct LocalReply {
  int status = 0;
  std::string body;     // text without the final newline; no body for 204/304
  OwnedHeaders headers;  // extra fields (names as written; HTTP/2 lower-cases them)
  // `x-gateway-reason` value when the reason is the gateway's policy
  // ("circuit-open", "connection-limit", ...); empty for none.
  std::string_view gateway_reason;
  // The metric / access-log kind ("cors_rejected", "rate_limited", ...).
  std::string_view kind;
  // The downstream connection cannot be kept after this answer whatever the
  // codec would decide (e.g. a request body that will not be read). HTTP/1.1
  // closes; HTTP/2 resets the stream if its body is still arriving.
  bool close = false;
  // Set by the exchange when it hands the reply to the codec (X-Request-Id).
  std::string_view request_id;
  // The body goes out as it is (no newline added) and `headers` carry its
  // Content-Type (no text/plain of the codec's): an answer relayed from
  // elsewhere (extAuth's service).
  bool verbatim = false;

  void reset() {
    status = 0;
    request_id = {};
    body.clear();
    headers.clear();
    gateway_reason = {};
    kind = {};
    close = false;
    verbatim = false;
  }
};

// Edits of a header block, applied by the codec when it serialises the block:
// fields named in `remove` or `set` are dropped from what is forwarded
// (case-insensitive), then `set` and `add` are appended in that order. The
// views point into the pinned snapshot or into the Exchange.
struct HeaderEdits {
  std::vector<std::string_view> remove;
  std::vector<http::Header> set;
  std::vector<http::Header> add;

  bool empty() const { return remove.empty() && set.empty() && add.empty(); }
  // True when a forwarded field called `name` must be dropped.
  bool drops(std::string_view name) const;
  void reset() {
    remove.clear();
    set.clear();
    add.clear();
  }
};

// The upstream request as the upstream-request filters leave it. The codec
// of the upstream connection builds its head from this and the client's
// fields (minus hop-by-hop ones), then adds X-Forwarded-* and X-Request-Id.
struct UpstreamRequest {
  std::string path;       // with the rewrite applied; without the query
  std::string_view host;  // Host / :authority to send
  HeaderEdits headers;
  // The query to send, without '?' (apiKey drops its parameter); unset: the
  // request's own.
  std::optional<std::string> query;

  void reset() {
    path.clear();
    host = {};
    headers.reset();
    query.reset();
  }
};

// A wait a request filter started (Verdict::kPending): a call to an
// authorisation or rate-limit service, say. The filter creates it in
// on_request() and leaves it in Exchange::pending; the exchange driver
//   1. calls start(done) once, on the exchange's worker thread;
//   2. waits, running nothing else of this exchange, until done() is called
//      (from any thread, at most once) or the wait's deadline passes (the
//      route's request timeout, else the upstream timeout): then it calls
//      cancel() and answers 504 with x-gateway-reason: filter-timeout;
//   3. destroys the op, then calls the filter's on_resume(), whose verdict
//      stands for the filter's (kContinue: the next filter runs; kRespond:
//      ex.reply is answered; kPending: another op in Exchange::pending, the
//      same rules again).
// The op reads what it needs from the Exchange in start() and writes its
// result into its own members or the filter's Exchange slot before done().
// Once done() was called, or cancel() returned, it must not touch the
// Exchange again; a done() after the driver gave up is harmless.
class PendingOp {
 public:
  virtual ~PendingOp() = default;
  virtual void start(std::function<void()> done) = 0;
  virtual void cancel() {}
};

// rateLimit with scope global: what the store answered (written by the
// filter's PendingOp, possibly after the exchange gave up waiting: hence
// shared), read by the filter's on_resume().
struct GlobalRateLimitResult {
  enum : uint8_t { kWaiting, kDecided, kUnavailable } outcome = kWaiting;
  bool allowed = false;
  uint64_t limit = 0, remaining = 0, reset_seconds = 0, retry_after_seconds = 0;
};

// Something an exchange holds until it ends (connectionLimit's place in its
// client's count): destroyed by reset() or with the Exchange.
class Lease {
 public:
  virtual ~Lease() = default;
};

// The per-exchange context: one per request, reused by its connection.
// Filters read the request from `req` and leave their outputs here; state a
// filter carries from one phase to a later one lives in a field of its own
// below (a slot per filter that has such state), never in a heap object of
// the filter's.
class Exchange {
 public:
  RequestInfo req;
  const router::CompiledRule* rule = nullptr;
  size_t matched_prefix = 0;  // PathPrefix matches: length of the matched prefix of req.path
  SteadyTime started{};       // when the head was complete (rate limits count from here)

  // ---- outputs of the request phase
  LocalReply reply;                      // set by a filter that answers (Verdict::kRespond)
  std::optional<uint64_t> body_limit;    // a streamed request body larger than this → 413
  OwnedHeaders response_headers;         // added to whatever answer the client gets from upstream or cache

  // A request filter's wait (Verdict::kPending); the driver owns it from then on.
  std::unique_ptr<PendingOp> pending;

  // ---- slots: per-filter state carried between phases
  OwnedHeaders jwt_claims;  // jwt: claim → header values, set on the upstream request
  // apiKey / basicAuth: who authenticated (a view into the pinned snapshot);
  // empty: nobody. rateLimit with key Consumer counts per consumer.
  std::string_view consumer;
  // extAuth: the fields its service's 2xx answer sets on the upstream
  // request, and the verdict of its finished call (for on_resume()).
  OwnedHeaders ext_auth_headers;
  // extAuth grpc: fields its service's OK answer removes from the upstream request.
  std::vector<std::string> ext_auth_remove;
  uint8_t ext_auth_verdict = 0;

  // A request body a filter reads before it decides (extAuth
  // withRequestBody). The filter sets `want` (and the bound) and returns
  // kPending; before it starts the wait, the driver reads up to max_bytes of
  // the body (a longer one: 413, unless allow_partial), sets `read`, and
  // `data` views the body's plain bytes (at most max_bytes; `partial`: the
  // body goes on). The whole body is kept for the upstream either way.
  struct BodyRead {
    bool want = false;
    uint64_t max_bytes = 0;
    bool allow_partial = false;
    bool read = false;
    bool partial = false;
    std::string_view data;
  } request_body;
  // rateLimit scope global: the store's answer (exchange.h, GlobalRateLimitResult).
  std::shared_ptr<GlobalRateLimitResult> global_rate_limit;
  // connectionLimit: the request's place in its client's count (filters/connection_limit.h).
  std::unique_ptr<Lease> connection_lease;

  // transform: which bodies the exchange driver converts (set by the
  // transform filter's on_request; docs/policies.md, "transform").
  enum class Conversion : uint8_t { kNone, kJsonToXml, kXmlToJson };
  struct TransformPlan {
    const snapshot::Transform* config = nullptr;  // null: the rule has no transform filter
    Conversion request = Conversion::kNone;   // the request body, buffered and converted
    Conversion response = Conversion::kNone;  // the response body, when its Content-Type is the backend's format
  } transform;

  // grpcWeb: the request is gRPC-Web (set by the grpc_web filter's
  // on_request). The driver then answers the gateway's own replies as
  // gRPC-Web trailers-only, sends the body up as gRPC (a -text body
  // decoded) and the answer down as gRPC-Web (net/grpc_web_downstream.h).
  struct GrpcWebPlan {
    bool active = false;
    bool text = false;        // application/grpc-web-text: base64 both ways
    std::string_view suffix;  // "+proto", ...: a view into the request's content-type
    std::string upstream_type;  // application/grpc[+suffix]: the upstream request's content-type
    std::string client_type;    // application/grpc-web[-text][+suffix]: the answer's
    bool translate_response = false;  // the answer is gRPC (set by the filter's on_response)
  } grpc_web;

  // Wall-clock time (JWT exp/nbf), read once per exchange when a filter asks.
  WallTime wall_now() {
    if (wall_now_ == WallTime{}) wall_now_ = std::chrono::system_clock::now();
    return wall_now_;
  }
  void set_wall_now(WallTime t) { wall_now_ = t; }  // tests

  // The first field called `lower_name` (case-insensitive), or nullopt.
  std::optional<std::string_view> header(std::string_view lower_name) const {
    return req.headers != nullptr ? http::find_header(*req.headers, lower_name) : std::nullopt;
  }

  void reset() {
    req = {};
    rule = nullptr;
    matched_prefix = 0;
    started = {};
    reply.reset();
    body_limit.reset();
    response_headers.clear();
    pending.reset();
    jwt_claims.clear();
    consumer = {};
    ext_auth_headers.clear();
    ext_auth_remove.clear();
    ext_auth_verdict = 0;
    request_body = {};
    transform = {};
    grpc_web = {};
    global_rate_limit.reset();
    connection_lease.reset();
    wall_now_ = {};
  }

 private:
  WallTime wall_now_{};
};

}  // namespace gantry::exchange
