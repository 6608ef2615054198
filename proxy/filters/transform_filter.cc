// filters.transform as a chain filter (request_filters.h): the selection
// rules of docs/policies.md, "transform". The conversion itself runs in the
// exchange driver, which owns the bodies.
#include "proxy/filters/request_filters.h"
#include "proxy/filters/transform.h"

namespace gantry::filters {

namespace {

using Conversion = exchange::Exchange::Conversion;

BodyFormat format_of(snapshot::TransformFormat f) {
  return f == snapshot::TransformFormat::kXml ? BodyFormat::kXml : BodyFormat::kJson;
}

std::string_view media_type_of(BodyFormat f) { return f == BodyFormat::kXml ? kXmlMediaType : kJsonMediaType; }

}  // namespace

exchange::Verdict TransformFilter::on_request(exchange::Exchange& ex) const {
  const BodyFormat backend = format_of(config_.backend);
  const BodyFormat other = backend == BodyFormat::kXml ? BodyFormat::kJson : BodyFormat::kXml;
  const Conversion to_backend = backend == BodyFormat::kXml ? Conversion::kJsonToXml : Conversion::kXmlToJson;
  const Conversion to_client = backend == BodyFormat::kXml ? Conversion::kXmlToJson : Conversion::kJsonToXml;
  const BodyFormat sent = media_format(ex.header("content-type").value_or(""));
  auto& plan = ex.transform;
  plan.config = &config_;
  // 1. A request body in the other format is converted to the backend's
  //    (not an empty one, nor one with a Content-Encoding).
  const bool body = ex.req.body == http::BodyKind::kChunked ||
                    (ex.req.body == http::BodyKind::kContentLength && ex.req.content_length > 0);
  const auto encoding = ex.header("content-encoding");
  const bool encoded = encoding && !http::iequals(*encoding, "identity");
  if (config_.request && body && !encoded && sent == other) plan.request = to_backend;
  // 2. The response is converted for a client that prefers the other format:
  //    by Accept, or (Accept naming neither) by the format it sent.
  if (config_.response) {
    const BodyFormat wants = accept_preference(ex.header("accept").value_or(""));
    if (wants == other || (wants == BodyFormat::kNone && sent == other)) plan.response = to_client;
  }
  return exchange::Verdict::kContinue;
}

void TransformFilter::on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const {
  const BodyFormat backend = format_of(config_.backend);
  if (ex.transform.request != Conversion::kNone)
    up.headers.set.push_back(http::Header{"content-type", media_type_of(backend)});
  // 3. The backend is asked for its own format when the answer is converted.
  // An encoded (compressed) answer is relayed unconverted, so none is asked for.
  if (ex.transform.response != Conversion::kNone) {
    up.headers.set.push_back(http::Header{"accept", media_type_of(backend)});
    up.headers.set.push_back(http::Header{"accept-encoding", "identity"});
  }
}

}  // namespace gantry::filters
