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

int http_status_for_grpc(int grpc_status) {
  switch (grpc_status) {
    case 0: return 200;   // OK
    case 1: return 499;   // CANCELLED
    case 3:               // INVALID_ARGUMENT
    case 9:               // FAILED_PRECONDITION
    case 11: return 400;  // OUT_OF_RANGE
    case 4: return 504;   // DEADLINE_EXCEEDED
    case 5: return 404;   // NOT_FOUND
    case 6:               // ALREADY_EXISTS
    case 10: return 409;  // ABORTED
    case 7: return 403;   // PERMISSION_DENIED
    case 8: return 429;   // RESOURCE_EXHAUSTED
    case 12: return 501;  // UNIMPLEMENTED
    case 14: return 503;  // UNAVAILABLE
    case 16: return 401;  // UNAUTHENTICATED
    default: return 500;  // UNKNOWN 2, INTERNAL 13, DATA_LOSS 15, anything else
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

namespace {

// A protobuf base-128 varint at `p` (at most 10 bytes); false when truncated
// or longer than 64 bits.
bool read_varint(std::string_view s, size_t& p, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && p < s.size(); shift += 7) {
    const auto b = static_cast<unsigned char>(s[p++]);
    v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return shift < 63 || b <= 1;
  }
  return false;
}

}  // namespace

std::string grpc_health_check_request(std::string_view service) {
  std::string msg;
  if (!service.empty()) {  // field 1, length-delimited; "" is the default and not sent
    msg.push_back(0x0a);
    for (uint64_t n = service.size(); ; n >>= 7) {
      if (n < 0x80) {
        msg.push_back(static_cast<char>(n));
        break;
      }
      msg.push_back(static_cast<char>((n & 0x7f) | 0x80));
    }
    msg.append(service);
  }
  std::string out(5, '\0');  // uncompressed, then the length big-endian
  const auto n = static_cast<uint32_t>(msg.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + msg;
}

int grpc_health_status(std::string_view body) {
  if (body.size() < 5 || body[0] != 0) return -1;  // too short, or compressed
  const uint32_t n = (uint32_t{static_cast<unsigned char>(body[1])} << 24) |
                     (uint32_t{static_cast<unsigned char>(body[2])} << 16) |
                     (uint32_t{static_cast<unsigned char>(body[3])} << 8) | static_cast<unsigned char>(body[4]);
  if (n != body.size() - 5) return -1;  // truncated, or more than one message
  const std::string_view msg = body.substr(5);
  int status = 0;
  for (size_t p = 0; p < msg.size();) {
    uint64_t tag = 0, v = 0;
    if (!read_varint(msg, p, tag) || (tag >> 3) == 0) return -1;
    switch (tag & 7) {
      case 0:  // varint
        if (!read_varint(msg, p, v)) return -1;
        if ((tag >> 3) == 1) status = v > 0x7fffffff ? -1 : static_cast<int>(v);
        if (status < 0) return -1;
        break;
      case 1:  // 64-bit
        if (msg.size() - p < 8) return -1;
        p += 8;
        break;
      case 2:  // length-delimited
        if (!read_varint(msg, p, v) || v > msg.size() - p) return -1;
        p += static_cast<size_t>(v);
        break;
      case 5:  // 32-bit
        if (msg.size() - p < 4) return -1;
        p += 4;
        break;
      default:
        return -1;
    }
  }
  return status;
}

}  // namespace gantry::exchange
