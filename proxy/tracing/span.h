// One finished server span, as the exporter sends it (docs/tracing.md lists
// the attributes). Built by the exchange driver only for a span that will be
// exported (sampled, or answered 5xx), so an unsampled request allocates
// nothing for it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "proxy/tracing/trace_context.h"

namespace gantry::tracing {

using AttrValue = std::variant<std::string, int64_t, bool>;
using Attributes = std::vector<std::pair<std::string, AttrValue>>;

struct SpanEvent {
  std::string name;
  uint64_t time_unix_ns = 0;
  Attributes attributes;
};

struct Span {
  TraceId trace_id{};
  SpanId span_id{};
  std::optional<SpanId> parent_span_id;
  std::string trace_state;  // the caller's tracestate, as forwarded
  std::string name;         // "GET /route" per the HTTP conventions: method and route
  uint64_t start_unix_ns = 0;
  uint64_t end_unix_ns = 0;
  bool error = false;       // status ERROR: a 5xx answer (server spans: 4xx are not errors)
  std::string status_message;
  Attributes attributes;
  std::vector<SpanEvent> events;
};

}  // namespace gantry::tracing
