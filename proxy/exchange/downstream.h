// The downstream stream interface: what a codec (HTTP/1.1, HTTP/2) offers
// the exchange for one request/response stream. The exchange (exchange.h)
// is written against this and nothing codec-specific; see
// docs/ARCHITECTURE.md, "The exchange", for the whole contract.
//
// State (December 2026): the contract is fixed here so that codecs can be
// built against it. The HTTP/1.1 session in net/server.cc still drives its
// exchange inline (its request, upstream-request and response phases already
// go through the filter chain); moving that driver behind this interface, so
// an HTTP/2 stream runs the same code, is the next step of issue 13.
//
// Rules every implementation keeps:
// - One stream = one exchange. HTTP/1.1: the connection's current request;
//   HTTP/2: one stream id. Streams of one HTTP/2 connection run their
//   exchanges concurrently on the connection's worker (one thread).
// - request() stays valid until the request body has been read (HTTP/1.1
//   keeps the head in its read buffer until then).
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
struct ResponseHead {
  int status = 0;
  std::string_view reason;  // HTTP/1.1 only; empty: the standard phrase
  const std::vector<http::Header>* fields = nullptr;
  const HeaderEdits* edits = nullptr;
  const OwnedHeaders* added = nullptr;
  std::optional<uint64_t> content_length;  // nullopt: length unknown, streamed
  bool end_stream = false;                 // no body follows (HEAD, 204, 304, empty)
};

// Bytes of the request body as they arrive.
struct BodyChunk {
  std::string_view data;  // valid until the next read_body()
  bool end = false;       // the body is complete (data may still hold its last bytes)
  bool failed = false;    // the client went away or sent a malformed body (answered by the codec)
};

enum class ResetReason : uint8_t {
  kUpstreamTruncated,  // the upstream ended the body early (issue 19)
  kUpstreamProtocol,   // the upstream's body framing was malformed
  kCancelled,          // the exchange gave up (drain, deadline)
};

class Downstream {
 public:
  virtual ~Downstream() = default;
  virtual const RequestInfo& request() const = 0;

  // The next bytes of the request body (BodyKind::kNone: end at once).
  virtual boost::asio::awaitable<BodyChunk> read_body() = 0;

  // An interim answer (1xx other than 100 and 101). False: the stream is gone.
  virtual boost::asio::awaitable<bool> send_interim(int status, std::span<const http::Header> fields) = 0;
  virtual boost::asio::awaitable<bool> send_head(const ResponseHead& head) = 0;
  virtual boost::asio::awaitable<bool> send_body(std::string_view data, bool end_stream) = 0;
  // Trailers end the stream (HTTP/1.1: only with a chunked body; dropped for HTTP/1.0).
  virtual boost::asio::awaitable<bool> send_trailers(std::span<const http::Header> fields) = 0;
  virtual boost::asio::awaitable<void> send_local_reply(const LocalReply& reply) = 0;
  virtual void reset(ResetReason why) = 0;
};

}  // namespace gantry::exchange
