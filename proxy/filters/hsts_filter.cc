// filters.hsts as a chain filter (request_filters.h).
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

void HstsFilter::on_response(exchange::Exchange& ex, const exchange::ResponseInfo&,
                             exchange::HeaderEdits& edits) const {
  if (ex.req.tls) edits.set.push_back({"Strict-Transport-Security", config_.value});
}

}  // namespace gantry::filters
