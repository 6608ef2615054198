// filters.requestHeaders and filters.responseHeaders as chain filters
// (header_filters.h): the same edit, on two header blocks.
#include "proxy/filters/header_filters.h"

#include <vector>

#include "proxy/http/message.h"

namespace gantry::filters {

void add_modifier(const snapshot::HeaderModifier& m, exchange::HeaderEdits& edits) {
  for (const auto& n : m.remove) edits.remove.push_back(n);
  for (const auto& h : m.set) edits.set.push_back({h.name, h.value});
  for (const auto& h : m.add) edits.add.push_back({h.name, h.value});
}

void add_modifier_over(const snapshot::HeaderModifier& m, exchange::HeaderEdits& edits) {
  auto drop = [&](std::string_view name) {
    auto same = [&](const http::Header& h) { return http::iequals(h.name, name); };
    std::erase_if(edits.set, same);
    std::erase_if(edits.add, same);
  };
  for (const auto& n : m.remove) drop(n);
  for (const auto& h : m.set) drop(h.name);
  add_modifier(m, edits);
}

void RequestHeadersFilter::on_upstream_request(exchange::Exchange&, exchange::UpstreamRequest& up) const {
  add_modifier(config_, up.headers);
}

void ResponseHeadersFilter::on_response(exchange::Exchange&, const exchange::ResponseInfo&,
                                        exchange::HeaderEdits& edits) const {
  add_modifier(config_, edits);
}

}  // namespace gantry::filters
