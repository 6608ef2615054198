// filters.grpcWeb as a chain filter (request_filters.h); the framing is grpc_web.h.
#include "proxy/filters/grpc_web.h"
#include "proxy/filters/request_filters.h"

#include "proxy/exchange/grpc.h"

namespace gantry::filters {

exchange::Verdict GrpcWebFilter::on_request(exchange::Exchange& ex) const {
  auto ct = ex.header("content-type");
  if (!ct) return exchange::Verdict::kContinue;
  auto t = grpc_web::parse_content_type(*ct);
  if (!t) return exchange::Verdict::kContinue;
  auto& p = ex.grpc_web;
  p.active = true;
  p.text = t->text;
  p.suffix = t->suffix;
  p.upstream_type = grpc_web::grpc_content_type(*t);
  p.client_type = grpc_web::web_content_type(*t);
  return exchange::Verdict::kContinue;
}

void GrpcWebFilter::on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const {
  if (!ex.grpc_web.active) return;
  up.headers.set.push_back({"content-type", ex.grpc_web.upstream_type});
  // The browser's hints mean nothing to a gRPC server.
  up.headers.remove.push_back("x-grpc-web");
  // content-length: build_upstream_head() leaves it out for a -text body.
}

void GrpcWebFilter::on_response(exchange::Exchange& ex, const exchange::ResponseInfo& resp,
                                exchange::HeaderEdits& edits) const {
  if (!ex.grpc_web.active) return;
  // Only a gRPC answer is translated; anything else (a proxy's 502 page, a
  // backend that is not gRPC) reaches the client as it is.
  std::optional<std::string_view> ct;
  if (resp.headers != nullptr) ct = http::find_header(*resp.headers, "content-type");
  ex.grpc_web.translate_response = ct && exchange::is_grpc_content_type(*ct);
  if (!ex.grpc_web.translate_response) return;
  edits.set.push_back({"content-type", ex.grpc_web.client_type});
  edits.remove.push_back("content-length");  // the trailer frame (and base64) change the length
}

}  // namespace gantry::filters
