// HTTP/1.1 message heads as the codec hands them to the proxy: zero-copy views
// into the connection's receive buffer plus the framing facts derived while
// parsing (body kind, keep-alive, upgrade). Invariant: every string_view in a
// head points into the buffer that was parsed and is valid only while that
// buffer is; heads are reused across requests with clear(), which keeps the
// headers vector's capacity so steady-state parsing does not allocate.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

namespace gantry::http {

struct Header {
  std::string_view name;   // as sent (case preserved)
  std::string_view value;  // leading and trailing OWS trimmed
};

enum class Version : uint8_t { kHttp10, kHttp11 };
enum class BodyKind : uint8_t { kNone, kContentLength, kChunked, kUntilClose };

struct Limits {
  size_t max_head_bytes = 60 * 1024;  // request line/status line + headers, incl. final CRLFCRLF
  size_t max_headers = 100;
};

struct RequestHead {
  std::string_view method;
  std::string_view target;  // request-target as sent
  Version version = Version::kHttp11;
  std::vector<Header> headers;  // in order; names as sent
  // Derived while parsing:
  BodyKind body = BodyKind::kNone;  // requests: kNone, kContentLength or kChunked only
  uint64_t content_length = 0;
  bool keep_alive = true;          // from version + Connection header tokens
  bool expect_continue = false;    // Expect: 100-continue (HTTP/1.1 only)
  bool upgrade_websocket = false;  // Connection: upgrade + Upgrade: websocket (GET, HTTP/1.1)
  std::string_view host;           // Host header value (or empty)
  void clear();                    // reuse without freeing the vector's capacity
};

struct ResponseHead {
  int status = 0;
  std::string_view reason;
  Version version = Version::kHttp11;
  std::vector<Header> headers;
  BodyKind body = BodyKind::kNone;  // kNone for HEAD requests, 1xx, 204, 304; kUntilClose when
                                    // no framing
  uint64_t content_length = 0;
  bool keep_alive = true;
  void clear();
};

namespace detail {
// Eight octets from `p` with 'A'..'Z' made lower case. For each octet below
// 0x80, bit 7 of (o & 0x7f) + (0x80 - 'A') says o >= 'A', and of
// (o & 0x7f) + (0x7f - 'Z') says o > 'Z'; their difference marks 'A'..'Z',
// whose 0x20 bit is then set (octets from 0x80 are left alone).
inline uint64_t lower_word(const char* p) {
  constexpr uint64_t k01 = 0x0101010101010101ull;
  constexpr uint64_t k80 = 0x8080808080808080ull;
  uint64_t x;
  std::memcpy(&x, p, 8);
  const uint64_t low7 = x & ~k80;
  const uint64_t upper = ((low7 + (0x80 - 'A') * k01) ^ (low7 + (0x7f - 'Z') * k01)) & ~x & k80;
  return x | (upper >> 2);
}
bool iequals_short(const char* a, const char* b, size_t n);  // n < 8
}  // namespace detail

// Case-insensitive ASCII compare. Inline: most calls compare a field name
// with a name of another length, and those that do not take eight octets at
// a time (the last word overlapping the one before).
inline bool iequals(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  if (n != b.size()) return false;
  if (n < 8) return detail::iequals_short(a.data(), b.data(), n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    if (detail::lower_word(a.data() + i) != detail::lower_word(b.data() + i)) return false;
  return i == n || detail::lower_word(a.data() + n - 8) == detail::lower_word(b.data() + n - 8);
}
// The value of the first header called `name` (case-insensitive), if any.
std::optional<std::string_view> find_header(const std::vector<Header>& h, std::string_view name);
// Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade,
// Proxy-Authenticate, Proxy-Authorization. The caller also removes the names listed in
// Connection (see for_each_list_element).
bool is_hop_by_hop(std::string_view name);

// Calls fn(element) for each non-empty element of a comma-separated header list
// (RFC 9110 5.6.1), with OWS trimmed. Does not allocate.
template <typename Fn>
void for_each_list_element(std::string_view value, Fn&& fn) {
  size_t i = 0;
  while (i <= value.size()) {
    size_t comma = value.find(',', i);
    if (comma == std::string_view::npos) comma = value.size();
    std::string_view e = value.substr(i, comma - i);
    while (!e.empty() && (e.front() == ' ' || e.front() == '\t')) e.remove_prefix(1);
    while (!e.empty() && (e.back() == ' ' || e.back() == '\t')) e.remove_suffix(1);
    if (!e.empty()) fn(e);
    i = comma + 1;
  }
}

}  // namespace gantry::http
