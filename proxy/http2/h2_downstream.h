// H2Downstream: one HTTP/2 stream as the exchange sees it, the
// exchange::Downstream (proxy/exchange/downstream.h) of the HTTP/2 codec.
//
// - request(): the stream's pseudo-headers mapped (:method → method,
//   :authority → host, normalised; :path → path, normalised, and query), its
//   fields as http::Header views into the stream's own strings, the body kind
//   (Content-Length when the client sent one, else kChunked for any streamed
//   body, kNone when the head ended the stream), proto "HTTP/2".
// - A request whose :path or :authority does not normalise, a plain CONNECT,
//   or an extended CONNECT for another protocol than websocket is refused by
//   create(): the caller answers it 400 (a local reply).
// - An extended CONNECT with :protocol websocket (RFC 8441) is presented as
//   a GET with upgrade "websocket", no body, and a Sec-WebSocket-Key made
//   here (RequestInfo::websocket_key; the client's own handshake fields are
//   dropped). When the exchange sends the upstream's 101 (head.upgrade) the
//   client gets :status 200 without Sec-WebSocket-Accept, and from then on
//   read_body() yields the client's DATA: the stream is the tunnel
//   (net/stream_tunnel.h), END_STREAM both ways a half-close.
// - send_head() writes the fields minus those HTTP/2 forbids (the codec drops
//   connection-specific ones and lower-cases names), with the response
//   filters' edits applied, x-request-id (unless the fields have one), the
//   exchange's added fields and the debug fields appended; the head's first
//   body bytes follow as DATA.
// - send_local_reply(): a gRPC request (content-type application/grpc*) gets a
//   trailers-only answer: :status 200, content-type application/grpc,
//   grpc-status = grpc_status_for(status), grpc-message = the text
//   percent-encoded; any other request gets status + text/plain body; both
//   carry x-request-id and x-gateway-reason when the reply has them.
// - reset(): RST_STREAM INTERNAL_ERROR for an upstream fault, CANCEL for a
//   cancelled exchange, CONNECT_ERROR for a tunnel whose upstream connection
//   failed; the connection's other streams go on.
// - send_interim(): 1xx answers are not forwarded on HTTP/2 (returns true).
// - bytes_received / bytes_sent: body bytes plus the header blocks' names and
//   values before HPACK (HTTP/2 framing is the connection's, not a stream's).
#pragma once

#include "proxy/base/aio.h"
#include <memory>
#include <string>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/exchange/downstream.h"
#include "proxy/http2/connection.h"

namespace gantry::http2 {

class H2Downstream final : public exchange::Downstream {
 public:
  // Builds the RequestInfo; an error carries the status to answer (400).
  // `client_ip`: the client (the peer, or the X-Forwarded-For entry a trusted
  // proxy named); `peer_ip`: the connection's peer when it differs.
  static Result<std::unique_ptr<H2Downstream>> create(std::shared_ptr<Stream> stream,
                                                       std::string_view client_ip, bool tls,
                                                       std::string_view peer_ip = {});
  // The same in `spare` (a finished stream's, recycle()d; null: a new one):
  // its strings and vectors keep their capacity, so a stream's downstream
  // costs no allocation once the worker's spares are warm.
  static Result<std::unique_ptr<H2Downstream>> create(std::unique_ptr<H2Downstream> spare,
                                                       std::shared_ptr<Stream> stream,
                                                       std::string_view client_ip, bool tls,
                                                       std::string_view peer_ip = {});
  // The stream's exchange is over: the stream let go and every field back to
  // its initial value, capacities kept (for create()).
  void recycle();

  const exchange::RequestInfo& request() const override { return info_; }
  // The listener the connection came in on (`name` must outlive this).
  // `sni`: RequestInfo::sni (outlives the stream: the connection's).
  void set_listener(std::string_view name, bool own, uint16_t port, std::string_view sni = {}) {
    info_.sni = sni;
    info_.listener = name;
    info_.own_listener = own;
    info_.listener_port = port;
  }
  // RequestInfo::client_cert (outlives the stream: the connection's).
  void set_client_cert(const tls::ClientCertificate* c) { info_.client_cert = c; }
  ::gantry::aio::awaitable<exchange::BodyChunk> read_body() override;
  ::gantry::aio::awaitable<bool> send_interim(int status, std::string_view reason,
                                            std::span<const http::Header> fields) override;
  // The head, and the body bytes that come with it, without a coroutine
  // frame when the stream's buffer takes them (it usually does).
  exchange::SendNow try_send_head(const exchange::ResponseHead& head) override;
  ::gantry::aio::awaitable<bool> send_head(const exchange::ResponseHead& head) override;
  ::gantry::aio::awaitable<bool> send_body(std::string_view data, bool end_stream) override;
  ::gantry::aio::awaitable<bool> send_trailers(std::span<const http::Header> fields) override;
  ::gantry::aio::awaitable<void> send_local_reply(const exchange::LocalReply& reply) override;
  void reset(exchange::ResetReason why) override;

  bool grpc() const { return grpc_; }

 private:
  H2Downstream() = default;

  std::shared_ptr<Stream> stream_;
  exchange::RequestInfo info_;
  std::string host_;   // normalised
  std::string path_;   // normalised
  std::string client_ip_;
  std::string peer_ip_;  // the connection's peer; empty: client_ip_
  std::vector<http::Header> headers_;  // views into stream_->head()
  std::vector<http::Header> trailers_;  // the request's trailers, views into the stream's
  bool grpc_ = false;
  bool tunnel_ = false;       // an extended CONNECT (RFC 8441 WebSocket)
  bool tunnel_open_ = false;  // ... the upstream accepted it: DATA is the tunnel's
  std::string websocket_key_;
  bool head_sent_ = false;
  size_t head_body_sent_ = 0;  // bytes of the head's body queued by try_send_head()
  uint64_t body_read_ = 0;  // request body bytes read so far
  // (A field added here is reset in recycle() too.)

  bool send_fields(const exchange::ResponseHead& head);  // HEADERS; false: the stream is gone
};

}  // namespace gantry::http2
