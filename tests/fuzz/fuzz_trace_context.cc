// libFuzzer target: the trace-context parsers (traceparent, b3 single, b3
// multi split on '|', tracestate check). A context that parses formats back
// to a traceparent that parses to the same ids.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/tracing/trace_context.h"

using namespace gantry::tracing;

static void check(const std::optional<TraceContext>& c) {
  if (!c) return;
  char tp[kTraceparentSize];
  format_traceparent(c->trace_id, c->span_id, c->sampled.value_or(false), tp);
  auto back = parse_traceparent(std::string_view(tp, sizeof tp));
  if (!back || back->trace_id != c->trace_id || back->span_id != c->span_id) std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check(parse_traceparent(in));
  check(parse_b3_single(in));
  std::string_view parts[4];
  for (int i = 0; i < 4; ++i) {
    size_t bar = in.find('|');
    parts[i] = in.substr(0, bar);
    in = bar == std::string_view::npos ? std::string_view{} : in.substr(bar + 1);
  }
  check(parse_b3_multi(parts[0], parts[1], parts[2], parts[3]));
  (void)forwardable_tracestate(parts[0]);
  return 0;
}
