// Character classes of RFC 9110 / RFC 3986 as constexpr lookup tables, shared by
// the head parsers, the chunked decoder and path normalisation. Internal to
// gantry_http.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

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

}  // namespace gantry::http::chars
