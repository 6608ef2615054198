// Character classes of RFC 9110 / RFC 3986 as constexpr lookup tables, shared by
// the head parsers, the chunked decoder and path normalisation. Internal to
// gantry_http.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "proxy/http/message.h"

namespace gantry::http::chars {

inline constexpr std::array<bool, 256> make_table(std::string_view extra, bool alnum) {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = alnum && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
  }
  for (char c : extra) t[static_cast<unsigned char>(c)] = true;
  return t;
}

// tchar (RFC 9110 5.6.2).
inline constexpr std::array<bool, 256> kToken = make_table("!#$%&'*+-.^_`|~", true);
// unreserved (RFC 3986 2.3).
inline constexpr std::array<bool, 256> kUnreserved = make_table("-._~", true);

inline bool is_token(unsigned char c) { return kToken[c]; }
inline bool is_token(char c) { return kToken[static_cast<unsigned char>(c)]; }
inline bool is_unreserved(unsigned char c) { return kUnreserved[c]; }

// field-value octets: VCHAR / obs-text / SP / HTAB (no CTL, no DEL).
inline bool is_field_char(unsigned char c) { return c >= 0x20 ? c != 0x7f : c == '\t'; }
inline bool is_field_char(char c) { return is_field_char(static_cast<unsigned char>(c)); }

// Whether every octet of a field value is a field-value octet. Eight at a
// time: a word is looked at octet by octet only when one of its octets is
// below 0x20 (a CTL, or an HTAB, which is allowed) or is DEL; the response
// heads of a proxied request spent ~2,000 instructions in the octet loop.
inline bool is_field_value(std::string_view v) {
  constexpr uint64_t k01 = 0x0101010101010101ull;
  constexpr uint64_t k80 = 0x8080808080808080ull;
  const char* p = v.data();
  size_t n = v.size();
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t x;
    std::memcpy(&x, p, 8);
    const uint64_t below_space = (x - 0x20 * k01) & ~x & k80;  // some octet < 0x20 (exact for "some")
    const uint64_t d = x ^ (0x7f * k01);
    const uint64_t del = (d - k01) & ~d & k80;  // some octet == 0x7f
    if ((below_space | del) != 0) {
      for (int i = 0; i < 8; ++i)
        if (!is_field_char(p[i])) return false;
    }
  }
  for (; n > 0; ++p, --n)
    if (!is_field_char(*p)) return false;
  return true;
}

inline bool is_token_string(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!is_token(c)) return false;
  }
  return true;
}

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// ASCII upper case to lower case, eight octets at a time (message.h's
// detail::lower_word): an HTTP/1.1 upstream's field names ("Content-Type")
// become HTTP/2's (h2_downstream.cc).
inline void lower_ascii(std::string& s) {
  char* p = s.data();
  size_t n = s.size();
  for (; n >= 8; p += 8, n -= 8) {
    const uint64_t x = detail::lower_word(p);
    std::memcpy(p, &x, 8);
  }
  for (; n > 0; ++p, --n)
    if (*p >= 'A' && *p <= 'Z') *p = static_cast<char>(*p + 32);
}

}  // namespace gantry::http::chars
