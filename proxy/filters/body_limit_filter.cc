// filters.maxRequestBodySize as a chain filter (request_filters.h).
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

exchange::Verdict BodyLimitFilter::on_request(exchange::Exchange& ex) const {
  ex.body_limit = limit_;
  if (ex.req.body != http::BodyKind::kContentLength || ex.req.content_length <= limit_)
    return exchange::Verdict::kContinue;
  ex.reply.status = 413;
  // Appended, not "literal" + std::string&&: GCC 12 at -O3 reports a false -Wrestrict there (GCC PR 105329).
  ex.reply.body.assign("request body larger than ").append(std::to_string(limit_)).append(" bytes");
  ex.reply.kind = "body_too_large";
  ex.reply.close = true;  // the body is not read
  return exchange::Verdict::kRespond;
}

}  // namespace gantry::filters
