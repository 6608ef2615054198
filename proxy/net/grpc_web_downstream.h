// The client's stream as an h2c/gRPC upstream phase sees it when the request
// is gRPC-Web (filters.grpcWeb; docs/policies.md, "gRPC-Web"): a
// Downstream that wraps the codec's and translates the bodies with the pure
// coders of filters/grpc_web.h. The headers are the grpc_web filter's
// (content-type both ways); this adapter does the bytes:
//
//   read_body()      a -text body's base64 decoded (400 when it is not base64)
//   send_head()      the gRPC answer's head; an HTTP/1.1 client gets it
//                    chunked (its length changes), so the connection is kept
//   send_body()      gRPC messages as they are (-text: base64, 3-byte groups)
//   send_trailers()  the trailer frame at the end of the body (-text: the
//                    base64 stream ends with it, padded)
//
// An answer that is not gRPC (ex.grpc_web.translate_response false) passes
// untouched. Local replies were already made trailers-only by the driver
// (grpc_web::to_trailers_only); they are forwarded.
#pragma once

#include "proxy/base/aio.h"
#include <utility>  // before Asio: awaitable.hpp uses std::exchange

#include <string>

#include "proxy/exchange/downstream.h"
#include "proxy/filters/grpc_web.h"

namespace gantry::net {

class GrpcWebDownstream final : public exchange::Downstream {
 public:
  GrpcWebDownstream(exchange::Downstream& inner, const exchange::Exchange& ex);

  const exchange::RequestInfo& request() const override { return inner_.request(); }
  ::gantry::aio::awaitable<exchange::BodyChunk> read_body() override;
  void keep_request() override { inner_.keep_request(); }
  ::gantry::aio::awaitable<bool> send_interim(int status, std::string_view reason,
                                            std::span<const http::Header> fields) override;
  ::gantry::aio::awaitable<bool> send_head(const exchange::ResponseHead& head) override;
  ::gantry::aio::awaitable<bool> send_body(std::string_view data, bool end_stream) override;
  ::gantry::aio::awaitable<bool> send_trailers(std::span<const http::Header> fields) override;
  ::gantry::aio::awaitable<void> send_local_reply(const exchange::LocalReply& reply) override;
  void reset(exchange::ResetReason why) override { inner_.reset(why); }

 private:
  // bytes_received / bytes_sent are the wrapped stream's (the access log reads them here).
  void sync_counters() {
    bytes_received = inner_.bytes_received;
    bytes_sent = inner_.bytes_sent;
  }
  ::gantry::aio::awaitable<bool> send_head_(const exchange::ResponseHead& head);
  ::gantry::aio::awaitable<bool> send_body_(std::string_view data, bool end_stream);
  ::gantry::aio::awaitable<bool> send_trailers_(std::span<const http::Header> fields);
  // `data` (already translated) to the client; an HTTP/1.1 client gets a chunk.
  ::gantry::aio::awaitable<bool> emit(std::string_view data, bool end);

  exchange::Downstream& inner_;
  const exchange::Exchange& ex_;
  bool translate_ = false;  // the answer is gRPC: its body is translated
  bool chunked_ = false;    // this adapter frames chunks for an HTTP/1.1 client
  bool ended_ = false;
  filters::grpc_web::Base64Decoder decoder_;
  filters::grpc_web::Base64Encoder encoder_;
  std::string in_, out_, frame_;
};

}  // namespace gantry::net
