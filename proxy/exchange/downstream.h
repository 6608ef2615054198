// The downstream stream interface: what a codec (HTTP/1.1, HTTP/2) offers
// the exchange for one request/response stream. The exchange (exchange.h)
// is written against this and nothing codec-specific; see
// docs/ARCHITECTURE.md, "The exchange", for the whole contract.
//
// State (December 2026): the request path runs through this interface. The
// exchange driver (net/exchange_driver.h, ExchangeDriver::run()) drives every
// exchange; the HTTP/1.1 session (net/server.cc) is the first Downstream and
// H2Downstream (http2/h2_downstream.h) the second. What stays HTTP/1.1-only
// is the codec's: 100-continue (sent on the first read_body()), the
// WebSocket tunnel after a 101 (the driver hands the upstream connection
// back), keep-alive and pipelining. An HTTP/2 WebSocket (extended CONNECT,
// RFC 8441) is tunnelled through this interface instead (net/stream_tunnel.h):
// after the head with `upgrade`, read_body() yields the client's DATA and
// send_body() carries the upstream's bytes, both under HTTP/2 flow control.
// So is an HTTP/1.1 client's WebSocket to an HTTP/2 backend (an extended
// CONNECT upstream): after its 101 the HTTP/1.1 session's read_body() and
// send_body() carry the connection's bytes.
//
// Rules every implementation keeps:
// - One stream = one exchange. HTTP/1.1: the connection's current request;
//   HTTP/2: one stream id. Streams of one HTTP/2 connection run their
//   exchanges concurrently on the connection's worker (one thread).
// - request() stays valid until the first read_body() (HTTP/1.1 keeps the
//   head in its read buffer, which the body's bytes may then overwrite): the
//   exchange copies what it needs later before it reads the body, or calls
//   keep_request() first.
// - Flow control is the codec's: send_body() completes when the codec has
//   taken the bytes (HTTP/2: within the peer's window), so a slow reader
//   slows the upstream read, never grows a buffer without bound.
// - reset() ends the stream abnormally and at once: HTTP/1.1 closes the
//   connection (the only way to tell a client that a framed body was cut);
//   HTTP/2 sends RST_STREAM (INTERNAL_ERROR for an upstream fault, CANCEL for
//   a cancelled exchange) and keeps the connection's other streams.
// - Local replies are built by the codec from LocalReply in one place:
//   HTTP/1.1 writes status line + fields + text body; HTTP/2 writes HEADERS
//   (+ DATA); a gRPC request (content-type application/grpc*) gets a
//   trailers-only answer with grpc-status = grpc_status_for(status) and
//   grpc-message = the body.
#pragma once

#include "proxy/base/aio.h"
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "proxy/exchange/exchange.h"

namespace gantry::exchange {

// A response head as the exchange hands it to the codec: the upstream's (or
// the cache's) fields, the response filters' edits, and the fields the
// exchange adds (CORS, RateLimit-*, X-Cache, Set-Cookie, X-Request-Id). The
// codec drops the fields its protocol forbids (hop-by-hop ones; framing
// fields on 1xx/204/304 and on HTTP/2 altogether) and frames the body itself.
// Field order: `fields` (minus dropped ones), edits' set and add,
// X-Request-Id (unless `fields` has one), `added`, the codec's framing
// fields, `debug`.
struct ResponseHead {
  int status = 0;
  std::string_view reason;  // HTTP/1.1 only; empty: the standard phrase
  const std::vector<http::Header>* fields = nullptr;
  const HeaderEdits* edits = nullptr;
  const OwnedHeaders* added = nullptr;
  std::string_view request_id;
  std::span<const http::Header> debug;     // --debug-headers fields (x-gateway-route, ...)
  // The length of the body when known. A Content-Length in `fields` is the
  // same length (relayed by HTTP/1.1 in place); without one the codec writes it.
  std::optional<uint64_t> content_length;
  // The first bytes of the body, sent with the head (one write on HTTP/1.1).
  std::string_view body;
  bool end_stream = false;  // nothing follows `body` (HEAD, 204, 304, a complete body)
  // The body that follows is an HTTP/1.1 upstream's chunked framing, relayed
  // as is; only when the stream's relays_h1_chunked is set.
  bool h1_chunked = false;
  // A 101 to the request's Upgrade: HTTP/1.1 keeps Upgrade/Connection; HTTP/2
  // answers the extended CONNECT 200 and its stream becomes the tunnel.
  bool upgrade = false;
};

// Bytes of the request body as they arrive.
struct BodyChunk {
  std::string_view data;  // valid until the next read_body()
  bool end = false;       // the body is complete (data may still hold its last bytes)
  // The client went away (error 0: nothing to answer) or sent a malformed
  // body (error: the status the exchange answers, `why` its text).
  bool failed = false;
  int error = 0;
  std::string_view why;
  // `data` is the client's HTTP/1.1 chunked framing (validated), relayed to
  // an HTTP/1.1 upstream as is; false: plain body bytes.
  bool h1_chunked = false;
  uint64_t payload_bytes = 0;  // body bytes (framing excluded) read so far, this chunk included
  // With `end`: the request's trailer fields, when the client sent some
  // (HTTP/2; an HTTP/1.1 chunked body's trailers are in its framing).
  // Valid until the exchange ends.
  std::span<const http::Header> trailers;
};

// What try_send_head() did.
enum class SendNow : uint8_t {
  kDone,        // the head (and its body bytes) went out
  kFailed,      // the stream is gone
  kWouldBlock,  // not (all) sent: send_head() with the same head finishes it
};

enum class ResetReason : uint8_t {
  kUpstreamTruncated,  // the upstream ended the body early (issue 19)
  kUpstreamProtocol,   // the upstream's body framing was malformed
  kCancelled,          // the exchange gave up (drain, deadline)
  kTunnelBroken,       // a tunnel's upstream connection failed (HTTP/2: CONNECT_ERROR, RFC 9113 8.5)
};

class Downstream {
 public:
  virtual ~Downstream() = default;
  virtual const RequestInfo& request() const = 0;

  // The next bytes of the request body (BodyKind::kNone: end at once).
  virtual ::gantry::aio::awaitable<BodyChunk> read_body() = 0;
  // From now on request() stays valid after read_body() too: the exchange
  // reads the body before its request phase is over (a filter that decides
  // on the body). HTTP/1.1 copies its head out of the read buffer; codecs
  // whose request() never moves need nothing.
  virtual void keep_request() {}

  // An interim answer (1xx other than 100 and 101; `reason` for HTTP/1.1,
  // empty: the standard phrase). False: the stream is gone.
  virtual ::gantry::aio::awaitable<bool> send_interim(int status, std::string_view reason,
                                                    std::span<const http::Header> fields) = 0;
  virtual ::gantry::aio::awaitable<bool> send_head(const ResponseHead& head) = 0;
  // The head sent without waiting, when the codec can (HTTP/1.1: the socket
  // took it all at once, the common case): no coroutine frame for the
  // exchange's hottest call. kWouldBlock: the exchange then calls send_head()
  // with the same head, which sends what is left. Default: always kWouldBlock.
  virtual SendNow try_send_head(const ResponseHead&) { return SendNow::kWouldBlock; }
  virtual ::gantry::aio::awaitable<bool> send_body(std::string_view data, bool end_stream) = 0;
  // Trailers end the stream (HTTP/1.1: only with a chunked body; dropped for HTTP/1.0).
  virtual ::gantry::aio::awaitable<bool> send_trailers(std::span<const http::Header> fields) = 0;
  virtual ::gantry::aio::awaitable<void> send_local_reply(const LocalReply& reply) = 0;
  virtual void reset(ResetReason why) = 0;

  // Counted by the codec, read by the exchange for the access log: bytes of
  // this exchange received from and sent to the client (HTTP/1.1: heads and
  // framing included; HTTP/2: field names and values before HPACK, and
  // the body bytes).
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  // The codec writes an HTTP/1.1 chunked body as it gets it (an HTTP/1.1
  // client): the exchange relays an upstream's chunked framing untouched
  // (chunk sizes, extensions and trailers as sent) instead of decoding it.
  bool relays_h1_chunked = false;
};

}  // namespace gantry::exchange
