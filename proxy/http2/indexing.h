// Which fields HPACK should not enter into its dynamic table (RFC 7541 2.3.2).
//
// A field whose value is new on every message (a request id, a trace context)
// would cost an entry and an eviction per message and never save a byte: the
// table fills with values that are never sent again, and every later lookup
// searches through them (measured: ~4,000 instructions per h2 response with
// x-request-id indexed, docs/BENCHMARKS.md). Such fields go as literals
// (libnghttp2's "no index" flag, which HPACK encodes as never indexed).
// libnghttp2 already does so for content-length, etag, set-cookie, :path and
// a few more.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <string_view>

namespace gantry::http2 {

inline bool new_on_every_message(std::string_view name) {
  return name == "x-request-id" || name == "traceparent" || name == "tracestate";
}

// The nghttp2_nv flags for a lower-case field name.
inline uint8_t nv_flags(std::string_view name) {
  return new_on_every_message(name) ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
}

}  // namespace gantry::http2
