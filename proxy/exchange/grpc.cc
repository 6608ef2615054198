#include "proxy/exchange/grpc.h"

#include <cctype>
#include <cstdio>
#include <cstdint>
#include <utility>

namespace gantry::exchange {

bool is_grpc_content_type(std::string_view ct) {
  constexpr std::string_view kGrpc = "application/grpc";
  if (ct.size() < kGrpc.size()) return false;
  for (size_t i = 0; i < kGrpc.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(ct[i])) != kGrpc[i]) return false;
  if (ct.size() == kGrpc.size()) return true;
  const char next = ct[kGrpc.size()];
  return next == '+' || next == ';';
}

std::optional<std::chrono::milliseconds> parse_grpc_timeout(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return std::nullopt;
  int64_t n = 0;
  for (size_t i = 0; i + 1 < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return std::nullopt;
    n = n * 10 + (v[i] - '0');
  }
  // At most 99,999,999 of a unit: in milliseconds that is < 3.6e14, no overflow.
  switch (v.back()) {
    case 'H': return std::chrono::milliseconds(n * 3'600'000);
    case 'M': return std::chrono::milliseconds(n * 60'000);
    case 'S': return std::chrono::milliseconds(n * 1'000);
    case 'm': return std::chrono::milliseconds(n);
    case 'u': return std::chrono::milliseconds((n + 999) / 1'000);
    case 'n': return std::chrono::milliseconds((n + 999'999) / 1'000'000);
    default: return std::nullopt;
  }
}

std::string format_grpc_timeout(std::chrono::milliseconds left) {
  constexpr int64_t kMax = 99'999'999;  // 8 digits
  int64_t n = left.count() < 0 ? 0 : left.count();
  char unit = 'm';
  for (auto [div, u] : {std::pair<int64_t, char>{1'000, 'S'}, {60, 'M'}, {60, 'H'}}) {
    if (n <= kMax) break;
    n /= div;
    unit = u;
  }
  if (n > kMax) n = kMax;
  std::string out = std::to_string(n);
  out += unit;
  return out;
}

int grpc_status_for(int status) {
  switch (status) {
    case 400: return 13;  // INTERNAL
    case 401: return 16;  // UNAUTHENTICATED
    case 403: return 7;   // PERMISSION_DENIED
    case 404: return 12;  // UNIMPLEMENTED
    case 429:             // UNAVAILABLE (Envoy's default; it sends RESOURCE_EXHAUSTED only when told to)
    case 502:
    case 503: return 14;  // UNAVAILABLE
    case 504: return 4;   // DEADLINE_EXCEEDED: the gateway's own 504s are deadlines it enforced
    default: return 2;    // UNKNOWN
  }
}

std::string grpc_message_encode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c <= 0x7e && c != '%') {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out.append(buf);
    }
  }
  return out;
}

}  // namespace gantry::exchange
