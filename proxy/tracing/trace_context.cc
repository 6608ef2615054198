#include "proxy/tracing/trace_context.h"

#include <cmath>

namespace gantry::tracing {

namespace {

constexpr char kHex[] = "0123456789abcdef";

int lower_hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Exactly 2*N lower-case hex digits into out; false otherwise.
template <size_t N>
bool read_hex(std::string_view s, std::array<uint8_t, N>& out) {
  if (s.size() != 2 * N) return false;
  for (size_t i = 0; i < N; ++i) {
    int hi = lower_hex_value(s[2 * i]), lo = lower_hex_value(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

template <size_t N>
bool all_zero(const std::array<uint8_t, N>& a) {
  for (uint8_t b : a)
    if (b != 0) return false;
  return true;
}

// A B3 trace id: 32 hex, or 16 hex (64-bit ids, left-padded with zeros).
bool read_b3_trace_id(std::string_view s, TraceId& out) {
  if (s.size() == 32) return read_hex(s, out);
  if (s.size() != 16) return false;
  std::array<uint8_t, 8> low{};
  if (!read_hex(s, low)) return false;
  out.fill(0);
  for (size_t i = 0; i < 8; ++i) out[8 + i] = low[i];
  return true;
}

}  // namespace

std::optional<TraceContext> parse_traceparent(std::string_view v) {
  // version "-" trace-id "-" parent-id "-" trace-flags
  if (v.size() < kTraceparentSize) return std::nullopt;
  std::array<uint8_t, 1> version{};
  if (!read_hex(v.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
  if (v[2] != '-' || v[35] != '-' || v[52] != '-') return std::nullopt;
  // Version 00 is exactly 55 bytes; a later version may append "-..." fields.
  if (version[0] == 0 && v.size() != kTraceparentSize) return std::nullopt;
  if (v.size() > kTraceparentSize && v[kTraceparentSize] != '-') return std::nullopt;
  TraceContext c;
  std::array<uint8_t, 1> flags{};
  if (!read_hex(v.substr(3, 32), c.trace_id) || !read_hex(v.substr(36, 16), c.span_id) ||
      !read_hex(v.substr(53, 2), flags))
    return std::nullopt;
  if (all_zero(c.trace_id) || all_zero(c.span_id)) return std::nullopt;
  c.sampled = (flags[0] & 0x01) != 0;
  return c;
}

std::optional<TraceContext> parse_b3_single(std::string_view v) {
  size_t d1 = v.find('-');
  if (d1 == std::string_view::npos) return std::nullopt;  // empty, or a sampling state only
  TraceContext c;
  if (!read_b3_trace_id(v.substr(0, d1), c.trace_id)) return std::nullopt;
  std::string_view rest = v.substr(d1 + 1);
  size_t d2 = rest.find('-');
  if (!read_hex(rest.substr(0, d2), c.span_id)) return std::nullopt;
  if (d2 != std::string_view::npos) {
    rest = rest.substr(d2 + 1);
    size_t d3 = rest.find('-');
    std::string_view state = rest.substr(0, d3);
    if (state == "1" || state == "d") c.sampled = true;
    else if (state == "0") c.sampled = false;
    else return std::nullopt;
    if (d3 != std::string_view::npos) {
      SpanId parent{};
      if (!read_hex(rest.substr(d3 + 1), parent) || all_zero(parent)) return std::nullopt;
    }
  }
  if (all_zero(c.trace_id) || all_zero(c.span_id)) return std::nullopt;
  return c;
}

std::optional<TraceContext> parse_b3_multi(std::string_view trace_id, std::string_view span_id,
                                           std::string_view sampled, std::string_view flags) {
  TraceContext c;
  if (!read_b3_trace_id(trace_id, c.trace_id) || !read_hex(span_id, c.span_id)) return std::nullopt;
  if (all_zero(c.trace_id) || all_zero(c.span_id)) return std::nullopt;
  if (flags == "1") c.sampled = true;  // debug implies accept
  else if (!flags.empty() && flags != "0") return std::nullopt;
  if (!c.sampled) {
    if (sampled == "1" || sampled == "true") c.sampled = true;
    else if (sampled == "0" || sampled == "false") c.sampled = false;
    else if (!sampled.empty()) return std::nullopt;
  }
  return c;
}

bool forwardable_tracestate(std::string_view v) {
  if (v.empty() || v.size() > 512) return false;
  size_t members = 1;
  for (char ch : v) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c > 0x7e) return false;
    if (c == ',') ++members;
  }
  return members <= 32;
}

void to_hex(const uint8_t* bytes, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
}

std::string hex(const TraceId& id) {
  std::string s(32, '0');
  to_hex(id.data(), id.size(), s.data());
  return s;
}

std::string hex(const SpanId& id) {
  std::string s(16, '0');
  to_hex(id.data(), id.size(), s.data());
  return s;
}

void format_traceparent(const TraceId& trace, const SpanId& span, bool sampled, char* out) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  to_hex(trace.data(), trace.size(), out + 3);
  out[35] = '-';
  to_hex(span.data(), span.size(), out + 36);
  out[52] = '-';
  out[53] = '0';
  out[54] = sampled ? '1' : '0';
}

void format_b3(const TraceId& trace, const SpanId& span, bool sampled, char* out) {
  to_hex(trace.data(), trace.size(), out);
  out[32] = '-';
  to_hex(span.data(), span.size(), out + 33);
  out[49] = '-';
  out[50] = sampled ? '1' : '0';
}

TraceId make_trace_id(uint64_t hi, uint64_t lo) {
  if (hi == 0 && lo == 0) lo = 1;
  TraceId id{};
  for (int i = 0; i < 8; ++i) {
    id[static_cast<size_t>(i)] = static_cast<uint8_t>(hi >> (56 - 8 * i));
    id[static_cast<size_t>(8 + i)] = static_cast<uint8_t>(lo >> (56 - 8 * i));
  }
  return id;
}

SpanId make_span_id(uint64_t r) {
  if (r == 0) r = 1;
  SpanId id{};
  for (int i = 0; i < 8; ++i) id[static_cast<size_t>(i)] = static_cast<uint8_t>(r >> (56 - 8 * i));
  return id;
}

bool ratio_sampled(const TraceId& id, double ratio) {
  if (!(ratio > 0)) return false;
  if (ratio >= 1) return true;
  uint64_t low = 0;
  for (size_t i = 8; i < 16; ++i) low = low << 8 | id[i];
  // ratio * 2^64, computed in long double to keep the low bits.
  const long double bound = static_cast<long double>(ratio) * 18446744073709551616.0L;
  return static_cast<long double>(low) < bound;
}

}  // namespace gantry::tracing
