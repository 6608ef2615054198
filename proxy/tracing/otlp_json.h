// OTLP/HTTP JSON encoding of a batch of spans (an ExportTraceServiceRequest,
// opentelemetry-proto's documented JSON mapping): trace and span ids as hex,
// 64-bit integers and times as decimal strings, enums as numbers. Why JSON
// and not protobuf: docs/tracing.md ("Export").
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "proxy/tracing/span.h"

namespace gantry::tracing {

// One resource (service.name = `service_name`), one scope ("gantry"), all
// spans; kind SERVER.
std::string encode_otlp_json(std::span<const Span> spans, std::string_view service_name,
                             std::string_view service_version);

}  // namespace gantry::tracing
