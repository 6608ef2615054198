// HTTP/1.1 wire helpers shared by the HTTP/1.1 codec (net/server.cc's
// Session) and the exchange driver's upstream side (net/exchange_driver.cc):
// field serialisation, reason phrases, request ids, and the non-blocking
// write fast path (a write that completes at once costs no coroutine frame).
#pragma once

#include "proxy/base/aio.h"
#include <utility>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <array>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/message.h"

namespace gantry::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

inline auto awaitable_ec(error_code& ec) { return asio::redirect_error(aio::use_awaitable, ec); }

inline const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 421: return "Misdirected Request";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

// Writes the eight low nibbles of `v` as eight lower-case hex digits, the
// lowest first, without a loop: the nibbles are spread one to an octet, then
// each becomes '0' + n, plus 'a' - '0' - 10 where n > 9 (n + 6 carries into
// bit 4). Digit by digit, a request id cost ~300 instructions.
inline void hex8(uint32_t v, char* out) {
  uint64_t x = v;
  x = ((x & 0xffff0000ull) << 16) | (x & 0xffffull);
  x = ((x & 0x0000ff000000ff00ull) << 8) | (x & 0x000000ff000000ffull);
  x = ((x & 0x00f000f000f000f0ull) << 4) | (x & 0x000f000f000f000full);
  const uint64_t letters = ((x + 0x0606060606060606ull) >> 4) & 0x0101010101010101ull;
  x += 0x3030303030303030ull + ('a' - '0' - 10) * letters;
  std::memcpy(out, &x, 8);  // little-endian: the first octet is the lowest nibble
}

// Fills `out` with 32 random hex digits.
inline void new_request_id(std::string& out) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  out.resize(32);
  const uint64_t a = rng(), b = rng();
  hex8(static_cast<uint32_t>(a), out.data());
  hex8(static_cast<uint32_t>(a >> 32), out.data() + 8);
  hex8(static_cast<uint32_t>(b), out.data() + 16);
  hex8(static_cast<uint32_t>(b >> 32), out.data() + 24);
}

// True when `name` appears as a token of any Connection header (those headers
// are hop-by-hop for this message, RFC 9110 7.6.1).
inline bool named_by_connection(const std::vector<http::Header>& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (!http::iequals(h.name, "connection")) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      auto comma = v.find(',');
      std::string_view tok = v.substr(0, comma);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (http::iequals(tok, name)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

inline void append_header(std::string& out, std::string_view name, std::string_view value) {
  size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

inline bool has_connection_header(const std::vector<http::Header>& headers) {
  for (const auto& h : headers)
    if (h.name.size() == 10 && http::iequals(h.name, "connection")) return true;
  return false;
}

// Writes as much as the socket takes now without blocking. Returns true when
// all of `data` went out (the common case: no coroutine suspension, no
// asynchronous operation); otherwise `data` keeps the rest for async_write.
inline bool try_write(aio::tcp_socket& s, std::string_view& data, error_code& ec) {
  size_t n = s.write_some(asio::buffer(data.data(), data.size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  data.remove_prefix(std::min(n, data.size()));
  return ec || data.empty();
}

// Writes as much of `a` then `b` (either may be empty) as the socket takes now,
// in one gather write (sendmsg), so a small response head and its body leave
// in one syscall. Returns true when all went out (or on error); otherwise `a`
// and `b` keep the rest for write_rest. A plain function, not a coroutine: the
// common case allocates no coroutine frame.
// With `b` empty (a request or answer without a body, the common case) it is
// a plain send(): sendmsg() also copies in a msghdr and an iovec array, ~0.1 µs
// of kernel time per call (docs/BENCHMARKS.md, session 20).
// Like the gather write, all sent leaves `a` and `b` as they were (callers
// count what they wrote from them).
inline bool try_write_two(aio::tcp_socket& s, std::string_view& a, std::string_view& b, error_code& ec) {
  size_t n = b.empty() ? s.write_some(asio::buffer(a.data(), a.size()), ec)
                       : s.write_some(std::array<asio::const_buffer, 2>{asio::buffer(a.data(), a.size()),
                                                                       asio::buffer(b.data(), b.size())},
                                      ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    n = 0;
  }
  if (ec || n == a.size() + b.size()) return true;
  if (n < a.size()) {
    a.remove_prefix(n);
  } else {
    b.remove_prefix(n - a.size());
    a = {};
  }
  return false;
}

template <class S>
aio::awaitable<void> write_rest(S& s, std::string_view a, std::string_view b, error_code& ec) {
  std::array<asio::const_buffer, 2> rest{asio::buffer(a.data(), a.size()), asio::buffer(b.data(), b.size())};
  co_await asio::async_write(s, rest, awaitable_ec(ec));
}

// RFC 9110 9.2.2: methods a client may repeat without changing the outcome.
inline bool idempotent_method(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

inline void set_nodelay(aio::tcp_socket& s) {
  error_code ec;
  s.set_option(tcp::no_delay(true), ec);
}

}  // namespace gantry::net
