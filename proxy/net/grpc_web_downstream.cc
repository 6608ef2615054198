// GrpcWebDownstream: see grpc_web_downstream.h.
#include "proxy/net/grpc_web_downstream.h"
#include "proxy/base/aio.h"

#include <cstdio>

namespace gantry::net {

namespace asio = boost::asio;

GrpcWebDownstream::GrpcWebDownstream(exchange::Downstream& inner, const exchange::Exchange& ex)
    : inner_(inner), ex_(ex) {
  sync_counters();
}

aio::awaitable<bool> GrpcWebDownstream::send_interim(int status, std::string_view reason,
                                                      std::span<const http::Header> fields) {
  const bool ok = co_await inner_.send_interim(status, reason, fields);
  sync_counters();
  co_return ok;
}

aio::awaitable<void> GrpcWebDownstream::send_local_reply(const exchange::LocalReply& reply) {
  co_await inner_.send_local_reply(reply);
  sync_counters();
}

aio::awaitable<bool> GrpcWebDownstream::send_head(const exchange::ResponseHead& head) {
  const bool ok = co_await send_head_(head);
  sync_counters();
  co_return ok;
}

aio::awaitable<bool> GrpcWebDownstream::send_body(std::string_view data, bool end_stream) {
  const bool ok = co_await send_body_(data, end_stream);
  sync_counters();
  co_return ok;
}

aio::awaitable<bool> GrpcWebDownstream::send_trailers(std::span<const http::Header> fields) {
  const bool ok = co_await send_trailers_(fields);
  sync_counters();
  co_return ok;
}

aio::awaitable<exchange::BodyChunk> GrpcWebDownstream::read_body() {
  exchange::BodyChunk c = co_await inner_.read_body();
  sync_counters();
  if (!ex_.grpc_web.text || c.failed) co_return c;
  if (c.h1_chunked) {
    // To an HTTP/1.1 backend the body goes as it came; to an HTTP/2 one
    // (the only kind a translated exchange reaches) a chunked -text body
    // would need de-chunking before its base64: not done.
    if (!ex_.grpc_web.active) co_return c;
    c.failed = true;
    c.error = 501;
    c.why = "a chunked grpc-web-text request body to an HTTP/2 backend is not supported yet";
    c.data = {};
    co_return c;
  }
  in_.clear();
  if (!decoder_.feed(c.data, in_) || (c.end && !decoder_.complete())) {
    c.failed = true;
    c.error = 400;
    c.why = "the grpc-web-text request body is not base64";
    c.data = {};
    co_return c;
  }
  c.data = in_;
  co_return c;
}

aio::awaitable<bool> GrpcWebDownstream::send_head_(const exchange::ResponseHead& head) {
  translate_ = ex_.grpc_web.translate_response;
  if (!translate_) co_return co_await inner_.send_head(head);
  exchange::ResponseHead h = head;
  h.content_length.reset();
  if (head.end_stream && head.body.empty()) {
    // Trailers-only: the status is in the head; nothing follows.
    h.content_length = 0;
    ended_ = true;
    co_return co_await inner_.send_head(h);
  }
  chunked_ = inner_.relays_h1_chunked;
  h.h1_chunked = chunked_;
  h.body = {};
  h.end_stream = false;
  if (!co_await inner_.send_head(h)) co_return false;
  if (head.body.empty() && !head.end_stream) co_return true;
  co_return co_await send_body_(head.body, head.end_stream);
}

aio::awaitable<bool> GrpcWebDownstream::emit(std::string_view data, bool end) {
  if (!chunked_) co_return co_await inner_.send_body(data, end);
  frame_.clear();
  if (!data.empty()) {
    char size[20];
    std::snprintf(size, sizeof size, "%zx\r\n", data.size());
    frame_.append(size).append(data).append("\r\n");
  }
  if (end) frame_.append("0\r\n\r\n");
  if (frame_.empty()) co_return true;
  co_return co_await inner_.send_body(frame_, end);
}

aio::awaitable<bool> GrpcWebDownstream::send_body_(std::string_view data, bool end_stream) {
  if (!translate_) co_return co_await inner_.send_body(data, end_stream);
  if (ended_) co_return true;
  if (end_stream) ended_ = true;
  if (!ex_.grpc_web.text) co_return co_await emit(data, end_stream);
  out_.clear();
  encoder_.feed(data, out_);
  if (end_stream) encoder_.finish(out_);
  co_return co_await emit(out_, end_stream);
}

aio::awaitable<bool> GrpcWebDownstream::send_trailers_(std::span<const http::Header> fields) {
  if (!translate_) co_return co_await inner_.send_trailers(fields);
  if (ended_) co_return true;
  ended_ = true;
  out_.clear();
  filters::grpc_web::append_trailer_frame(fields, out_);
  if (ex_.grpc_web.text) {
    std::string plain;
    plain.swap(out_);
    encoder_.feed(plain, out_);
    encoder_.finish(out_);
  }
  co_return co_await emit(out_, true);
}

}  // namespace gantry::net
