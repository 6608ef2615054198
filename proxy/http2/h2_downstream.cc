// H2Downstream: see h2_downstream.h.
#include "proxy/http2/h2_downstream.h"
#include "proxy/base/aio.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "proxy/exchange/grpc.h"
#include "proxy/http/chars.h"
#include "proxy/http/path.h"
#include "proxy/http/websocket.h"

namespace gantry::http2 {

namespace asio = boost::asio;

namespace {

// The fields of an answer relayed from the exchange: views into its head
// (names as the upstream wrote them: the codec lowers them), reused from one
// answer to the next on the worker's thread; the codec copies them before
// send_head_now() returns.
thread_local std::vector<FieldView> answer_fields;

void add_field(std::vector<Field>& out, std::string_view name, std::string_view value) {
  Field& f = out.emplace_back();
  f.name.assign(name);
  http::chars::lower_ascii(f.name);
  f.value.assign(value);
}

// Framing is HTTP/2's own: these fields of an HTTP/1.1 answer are not forwarded.
bool framing_field(std::string_view name) {
  return http::iequals(name, "content-length") || http::is_hop_by_hop(name);
}

// What a header block counts for bytes_received / bytes_sent: field names
// and values before HPACK (the access log's bytesIn / bytesOut on HTTP/2).
template <class Fields>
uint64_t block_bytes(const Fields& fields) {
  uint64_t n = 0;
  for (const auto& f : fields) n += f.name.size() + f.value.size();
  return n;
}

}  // namespace

Result<std::unique_ptr<H2Downstream>> H2Downstream::create(std::shared_ptr<Stream> stream,
                                                           std::string_view client_ip, bool tls,
                                                           std::string_view peer_ip) {
  return create(nullptr, std::move(stream), client_ip, tls, peer_ip);
}

Result<std::unique_ptr<H2Downstream>> H2Downstream::create(std::unique_ptr<H2Downstream> spare,
                                                           std::shared_ptr<Stream> stream,
                                                           std::string_view client_ip, bool tls,
                                                           std::string_view peer_ip) {
  std::unique_ptr<H2Downstream> d = spare ? std::move(spare) : std::unique_ptr<H2Downstream>(new H2Downstream());
  d->stream_ = std::move(stream);
  const RequestHead& h = d->stream_->head();
  std::string_view method = h.method;
  if (h.method == "CONNECT") {
    // RFC 9113 8.5: a plain CONNECT asks for a TCP tunnel to :authority, a
    // forward proxy's job (refused with 400, as HTTP/1.1's CONNECT is).
    // RFC 8441's extended CONNECT with :protocol websocket is a WebSocket:
    // the exchange sees a GET that asks for the upgrade.
    if (h.protocol.empty()) return Error{"CONNECT is not supported: the gateway is not a forward proxy"};
    if (!http::iequals(h.protocol, "websocket"))
      return Error{"extended CONNECT: only the websocket protocol is tunnelled"};
    method = "GET";
    std::array<uint8_t, 16> nonce{};
    if (RAND_bytes(nonce.data(), static_cast<int>(nonce.size())) != 1)
      return Error{"no random bytes for the WebSocket key"};
    d->websocket_key_ = http::websocket_key(nonce);
    d->tunnel_ = true;
  }
  auto target = http::parse_target(method, h.path);
  if (!target.ok()) return target.error();
  auto host = http::normalize_host(h.authority);
  if (!host.ok()) return host.error();
  d->path_ = std::move(target->path);
  d->host_ = std::move(*host);
  d->client_ip_.assign(client_ip);
  d->peer_ip_.assign(peer_ip);
  d->headers_.reserve(h.headers.size());
  for (const Field& f : h.headers) {
    // The handshake's own fields are the gateway's to make on a tunnel.
    if (d->tunnel_ && (f.name == "sec-websocket-key" || f.name == "sec-websocket-accept")) continue;
    d->headers_.push_back({f.name, f.value});
    if (f.name == "content-type" && exchange::is_grpc_content_type(f.value)) d->grpc_ = true;
  }
  exchange::RequestInfo& r = d->info_;
  r.method = d->tunnel_ ? std::string_view("GET") : std::string_view(h.method);
  if (d->tunnel_) {
    r.upgrade = "websocket";
    r.websocket_key = d->websocket_key_;
  }
  r.host = d->host_;
  r.path = d->path_;
  r.query = target->query;
  r.host_header = h.authority;
  r.headers = &d->headers_;
  if (d->tunnel_) {
    r.body = http::BodyKind::kNone;  // the stream's DATA is the tunnel's, once it is open
  } else if (h.content_length) {
    r.body = http::BodyKind::kContentLength;
    r.content_length = *h.content_length;
  } else {
    r.body = d->stream_->head_ended() ? http::BodyKind::kNone : http::BodyKind::kChunked;
  }
  r.client_ip = d->client_ip_;
  r.peer_ip = d->peer_ip_.empty() ? std::string_view(d->client_ip_) : std::string_view(d->peer_ip_);
  r.proto = "HTTP/2";
  r.tls = tls;
  d->bytes_received = h.method.size() + h.scheme.size() + h.authority.size() + h.path.size() + block_bytes(h.headers);
  return d;
}

void H2Downstream::recycle() {
  stream_.reset();
  info_ = exchange::RequestInfo{};
  for (std::string* s : {&host_, &path_, &client_ip_, &peer_ip_, &websocket_key_}) s->clear();
  headers_.clear();
  trailers_.clear();
  grpc_ = tunnel_ = tunnel_open_ = head_sent_ = false;
  head_body_sent_ = 0;
  body_read_ = 0;
  bytes_received = bytes_sent = 0;
  relays_h1_chunked = false;
}

aio::awaitable<exchange::BodyChunk> H2Downstream::read_body() {
  if (info_.body == http::BodyKind::kNone && !tunnel_open_) co_return exchange::BodyChunk{{}, true, false};
  BodyPiece p = co_await stream_->read_body();
  body_read_ += p.data.size();
  bytes_received += p.data.size();
  exchange::BodyChunk c;
  c.data = p.data;
  c.end = p.end;
  c.failed = p.failed;
  c.payload_bytes = body_read_;
  if (p.end && p.trailers != nullptr && !p.trailers->empty()) {
    trailers_.clear();
    for (const Field& f : *p.trailers) trailers_.push_back(http::Header{f.name, f.value});
    c.trailers = trailers_;
  }
  co_return c;
}

aio::awaitable<bool> H2Downstream::send_interim(int, std::string_view, std::span<const http::Header>) {
  co_return !stream_->closed();
}

bool H2Downstream::send_fields(const exchange::ResponseHead& head) {
  std::vector<FieldView>& fields = answer_fields;
  fields.clear();
  bool has_request_id = false;
  // The upstream's 101 to the WebSocket handshake opens the tunnel: the
  // client's extended CONNECT gets 200 (RFC 8441 5), without the HTTP/1.1
  // handshake's fields.
  const bool tunnel = tunnel_ && head.upgrade;
  if (head.fields != nullptr) {
    for (const http::Header& f : *head.fields) {
      if (framing_field(f.name)) continue;
      if (tunnel && http::iequals(f.name, "sec-websocket-accept")) continue;
      if (head.edits != nullptr && head.edits->drops(f.name)) continue;
      if (http::iequals(f.name, "x-request-id")) has_request_id = true;
      fields.push_back({f.name, f.value});
    }
  }
  if (head.edits != nullptr) {
    for (const http::Header& f : head.edits->set) fields.push_back({f.name, f.value});
    for (const http::Header& f : head.edits->add) fields.push_back({f.name, f.value});
  }
  if (!has_request_id && !head.request_id.empty()) fields.push_back({"x-request-id", head.request_id});
  if (head.added != nullptr) {
    for (const auto& [name, value] : *head.added) fields.push_back({name, value});
  }
  char length[24];
  if (head.content_length && head.status != 204 && head.status != 304) {
    const auto end = std::to_chars(length, length + sizeof(length), *head.content_length).ptr;
    fields.push_back({"content-length", std::string_view(length, static_cast<size_t>(end - length))});
  }
  for (const http::Header& f : head.debug) fields.push_back({f.name, f.value});
  head_sent_ = true;
  const std::span<const FieldView> all(fields);
  bytes_sent += 3 + block_bytes(all);  // :status
  if (tunnel) {
    tunnel_open_ = true;
    return stream_->send_head_now(200, all, false);
  }
  return stream_->send_head_now(head.status, all, head.end_stream && head.body.empty());
}

exchange::SendNow H2Downstream::try_send_head(const exchange::ResponseHead& head) {
  if (!head_sent_ && !send_fields(head)) return exchange::SendNow::kFailed;
  if (head.body.empty()) return exchange::SendNow::kDone;
  const std::string_view rest = head.body.substr(head_body_sent_);
  const size_t n = stream_->send_body_now(rest, head.end_stream);
  head_body_sent_ += n;
  bytes_sent += n;
  if (n == rest.size() && !stream_->closed()) return exchange::SendNow::kDone;
  return stream_->closed() ? exchange::SendNow::kFailed : exchange::SendNow::kWouldBlock;
}

aio::awaitable<bool> H2Downstream::send_head(const exchange::ResponseHead& head) {
  if (!head_sent_ && !send_fields(head)) co_return false;
  if (head.body.empty()) co_return true;
  const std::string_view rest = head.body.substr(head_body_sent_);
  head_body_sent_ = head.body.size();
  co_return co_await send_body(rest, head.end_stream);
}

aio::awaitable<bool> H2Downstream::send_body(std::string_view data, bool end_stream) {
  // Most pieces fit the stream's buffer at once: no coroutine frame for them.
  const size_t n = stream_->send_body_now(data, end_stream);
  if (n == data.size() && !stream_->closed()) {
    bytes_sent += data.size();
    co_return true;
  }
  if (stream_->closed()) co_return false;
  const bool ok = co_await stream_->send_body(data.substr(n), end_stream);
  if (ok) bytes_sent += data.size();
  co_return ok;
}

aio::awaitable<bool> H2Downstream::send_trailers(std::span<const http::Header> fields) {
  std::vector<Field> t;
  for (const http::Header& f : fields) add_field(t, f.name, f.value);
  co_return co_await stream_->send_trailers(t);
}

aio::awaitable<void> H2Downstream::send_local_reply(const exchange::LocalReply& reply) {
  if (head_sent_) {  // too late for an answer: end the stream abnormally
    stream_->reset(ErrorCode::kInternalError);
    co_return;
  }
  std::vector<Field> fields;
  if (grpc_) {
    // Trailers-only (gRPC over HTTP/2): one HEADERS frame ending the stream.
    add_field(fields, "content-type", "application/grpc");
    add_field(fields, "grpc-status", std::to_string(exchange::grpc_status_for(reply.status)));
    if (!reply.body.empty()) add_field(fields, "grpc-message", exchange::grpc_message_encode(reply.body));
    if (!reply.gateway_reason.empty()) add_field(fields, "x-gateway-reason", reply.gateway_reason);
    if (!reply.request_id.empty()) add_field(fields, "x-request-id", reply.request_id);
    for (const auto& [name, value] : reply.headers) add_field(fields, name, value);
    head_sent_ = true;
    bytes_sent += 3 + block_bytes(fields);
    co_await stream_->send_head(200, fields, true);
    co_return;
  }
  const bool no_body = reply.status == 204 || reply.status == 304 || info_.method == "HEAD";
  const std::string body = reply.body.empty() || no_body ? std::string()
                           : reply.verbatim                ? reply.body
                                                           : reply.body + "\n";
  if (!reply.verbatim) add_field(fields, "content-type", "text/plain");
  if (!no_body) add_field(fields, "content-length", std::to_string(body.size()));
  if (!reply.gateway_reason.empty()) add_field(fields, "x-gateway-reason", reply.gateway_reason);
  if (!reply.request_id.empty()) add_field(fields, "x-request-id", reply.request_id);
  for (const auto& [name, value] : reply.headers) add_field(fields, name, value);
  head_sent_ = true;
  bytes_sent += 3 + block_bytes(fields);
  if (!co_await stream_->send_head(reply.status, fields, body.empty())) co_return;
  // A request body still arriving is stopped by the codec (RST_STREAM
  // NO_ERROR once the answer is complete), so reply.close needs nothing more.
  if (!body.empty()) co_await send_body(body, true);
}

void H2Downstream::reset(exchange::ResetReason why) {
  switch (why) {
    case exchange::ResetReason::kCancelled: stream_->reset(ErrorCode::kCancel); break;
    case exchange::ResetReason::kTunnelBroken: stream_->reset(ErrorCode::kConnectError); break;
    default: stream_->reset(ErrorCode::kInternalError); break;
  }
}

}  // namespace gantry::http2
