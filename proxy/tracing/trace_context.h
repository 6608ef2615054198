// Trace context (docs/tracing.md): the W3C `traceparent` / `tracestate`
// headers, and B3 (single `b3` and multi `X-B3-*`) for older meshes, parsed
// into one TraceContext; the gateway's own traceparent formatted for the
// upstream request; the sampling decision. Pure: no I/O, no clock, no
// randomness of its own (ids come from the caller's generator).
//
// Parsers take the header value as received and return nullopt for anything
// the specifications do not allow (the request then starts a new trace, as
// W3C Trace Context 4.3 says): upper-case hex, all-zero ids, version ff,
// a version 00 value with extra bytes, bad separators, bad sampling flags.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gantry::tracing {

using TraceId = std::array<uint8_t, 16>;
using SpanId = std::array<uint8_t, 8>;

// A caller's context: whose span the gateway's span is a child of.
struct TraceContext {
  TraceId trace_id{};
  SpanId span_id{};  // the caller's span: the parent of the gateway's
  // The caller's sampling decision; nullopt when B3 said nothing (a B3
  // context without a sampling state defers the decision to the receiver).
  std::optional<bool> sampled;
  bool operator==(const TraceContext&) const = default;
};

// W3C Trace Context, traceparent: "00-<32 hex>-<16 hex>-<2 hex>". A higher
// version is read by its version-00 prefix (the spec's forward
// compatibility); version ff is invalid.
std::optional<TraceContext> parse_traceparent(std::string_view v);

// B3 single header: "<trace>-<span>[-<sampling>[-<parent span>]]" with a
// 16- or 32-hex trace id, sampling 0, 1 or d (debug: sampled). A value that
// is only a sampling state ("0", "1", "d") carries no context: nullopt.
std::optional<TraceContext> parse_b3_single(std::string_view v);

// B3 multi headers (each empty when absent): X-B3-TraceId, X-B3-SpanId,
// X-B3-Sampled ("0", "1", "true", "false"), X-B3-Flags ("1": debug, sampled).
std::optional<TraceContext> parse_b3_multi(std::string_view trace_id, std::string_view span_id,
                                           std::string_view sampled, std::string_view flags);

// tracestate is forwarded as received when it is a plausible list
// (RFC: at most 32 members, printable ASCII, 512 bytes is what every
// implementation must propagate); otherwise it is dropped.
bool forwardable_tracestate(std::string_view v);

// "00-<trace>-<span>-01|00" into out (55 bytes).
constexpr size_t kTraceparentSize = 55;
void format_traceparent(const TraceId& trace, const SpanId& span, bool sampled, char* out);
// "<trace>-<span>-1|0" into out (32 + 1 + 16 + 2 = 51 bytes).
constexpr size_t kB3Size = 51;
void format_b3(const TraceId& trace, const SpanId& span, bool sampled, char* out);

// Lower-case hex of bytes into out (2 * n chars).
void to_hex(const uint8_t* bytes, size_t n, char* out);
std::string hex(const TraceId& id);
std::string hex(const SpanId& id);

// Ids from two 64-bit random numbers (never all zero).
TraceId make_trace_id(uint64_t hi, uint64_t lo);
SpanId make_span_id(uint64_t r);

// The ratio sampler for new traces (OpenTelemetry's TraceIdRatioBased): the
// last 8 bytes of the trace id, read as a number, below ratio * 2^64. The
// same trace id gives the same answer on every gateway replica.
bool ratio_sampled(const TraceId& id, double ratio);

// The head decision: a parent's sampled flag when it has one (parent-based),
// else the ratio for a new trace. 5xx answers are exported anyway, decided at
// the end (see docs/tracing.md).
inline bool head_sampled(const std::optional<TraceContext>& parent, const TraceId& id, double ratio) {
  if (parent && parent->sampled) return *parent->sampled;
  return ratio_sampled(id, ratio);
}

}  // namespace gantry::tracing
