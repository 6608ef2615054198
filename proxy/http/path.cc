// parse_target / normalize_host: single pass over the target, writing the
// normalised path into one string reserved up front; dot segments are resolved
// as each segment completes (RFC 3986 5.2.4 on the output buffer).
#include "proxy/http/path.h"

#include <arpa/inet.h>

#include <cstring>

#include "proxy/http/chars.h"
#include "proxy/http/message.h"

namespace gantry::http {

namespace {

// Raw bytes allowed in a path besides unreserved: sub-delims, ':' and '@' (pchar),
// '/' handled by the caller, plus characters clients send unencoded in practice.
constexpr std::array<bool, 256> kPathChar = chars::make_table("-._~!$&'()*+,;=:@\"<>[]^`{|}", true);

// Query bytes: any visible ASCII except '#'.
inline bool is_query_char(char c) { return c > 0x20 && c < 0x7f && c != '#'; }

constexpr char kHex[] = "0123456789ABCDEF";

inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Splits host[:port]; validates both. `host_out` excludes the port.
bool split_host(std::string_view in, std::string_view& host_out) {
  if (in.empty()) return false;
  std::string_view host;
  std::string_view rest;
  if (in[0] == '[') {
    const size_t close = in.find(']');
    if (close == std::string_view::npos || close < 3 || close - 1 > 45) return false;
    char buf[64];
    std::memcpy(buf, in.data() + 1, close - 1);
    buf[close - 1] = '\0';
    unsigned char addr[16];
    if (inet_pton(AF_INET6, buf, addr) != 1) return false;
    host = in.substr(0, close + 1);
    rest = in.substr(close + 1);
  } else {
    const size_t colon = in.find(':');
    host = in.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view{} : in.substr(colon);
    std::string_view name = host;
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    if (name.empty() || name.size() > 253) return false;
    size_t label = 0;
    for (char c : name) {
      if (c == '.') {
        if (label == 0) return false;
        label = 0;
        continue;
      }
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_';
      if (!ok || ++label > 63) return false;
    }
    if (label == 0) return false;
  }
  if (!rest.empty()) {
    if (rest[0] != ':' || rest.size() > 6) return false;
    unsigned port = 0;
    for (char c : rest.substr(1)) {
      if (c < '0' || c > '9') return false;
      port = port * 10 + static_cast<unsigned>(c - '0');
    }
    if (port > 65535) return false;
  }
  host_out = host;
  return true;
}

// Appends the normalised form of `path` (origin-form path, starts with '/') to `out`.
Result<Ok> normalize_path(std::string_view path, std::string& out) {
  out.reserve(path.size() + 1);
  size_t i = 0;
  while (i < path.size()) {  // path[i] == '/'
    const size_t seg_start = out.size();
    out.push_back('/');
    size_t j = i + 1;
    while (j < path.size() && path[j] != '/') {
      const char c = path[j];
      if (c == '%') {
        if (j + 2 >= path.size()) return Error{"bad percent-encoding"};
        const int hi = chars::hex_value(path[j + 1]);
        const int lo = chars::hex_value(path[j + 2]);
        if (hi < 0 || lo < 0) return Error{"bad percent-encoding"};
        const auto byte = static_cast<unsigned char>(hi * 16 + lo);
        if (byte == 0) return Error{"NUL in request path"};
        if (chars::is_unreserved(byte)) {
          out.push_back(static_cast<char>(byte));
        } else {
          out.push_back('%');
          out.push_back(kHex[hi]);
          out.push_back(kHex[lo]);
        }
        j += 3;
      } else if (kPathChar[static_cast<unsigned char>(c)]) {
        out.push_back(c);
        ++j;
      } else {
        return Error{"bad character in request path"};
      }
    }
    const bool last = j >= path.size();
    const std::string_view seg(out.data() + seg_start + 1, out.size() - seg_start - 1);
    if (seg == ".") {
      out.resize(seg_start);
      if (last) out.push_back('/');
    } else if (seg == "..") {
      out.resize(seg_start);
      if (out.empty()) return Error{"request path climbs above the root"};
      out.resize(out.rfind('/'));
      if (last) out.push_back('/');
    }
    i = j;
  }
  if (out.empty()) out.push_back('/');
  return Ok{};
}

}  // namespace

bool is_valid_host(std::string_view host) {
  std::string_view h;
  return split_host(host, h);
}

Result<std::string> normalize_host(std::string_view host) {
  std::string_view h;
  if (!split_host(host, h)) return Error{"invalid host"};
  if (h.size() > 1 && h.back() == '.') h.remove_suffix(1);
  std::string out(h);
  for (char& c : out) c = lower(c);
  return out;
}

Result<Target> parse_target(std::string_view method, std::string_view target) {
  if (target.empty()) return Error{"empty request target"};
  if (target.find('#') != std::string_view::npos) return Error{"fragment in request target"};
  Target t;
  std::string_view rest;
  if (target[0] == '/') {
    rest = target;
  } else if (target == "*") {
    if (method != "OPTIONS") return Error{"asterisk-form target is only allowed for OPTIONS"};
    t.path = "*";
    return t;
  } else {
    const size_t sep = target.find("://");
    if (sep == std::string_view::npos)
      return Error{"request target is not origin-form or absolute-form"};
    const std::string_view scheme = target.substr(0, sep);
    if (!iequals(scheme, "http") && !iequals(scheme, "https")) {
      return Error{"unsupported scheme in absolute-form target"};
    }
    const size_t a0 = sep + 3;
    size_t a1 = target.find_first_of("/?", a0);
    if (a1 == std::string_view::npos) a1 = target.size();
    const std::string_view authority = target.substr(a0, a1 - a0);
    if (authority.find('@') != std::string_view::npos) return Error{"userinfo in request target"};
    if (!is_valid_host(authority)) return Error{"invalid authority in request target"};
    t.authority.assign(authority);
    for (char& c : t.authority) c = lower(c);
    if (!t.authority.empty() && t.authority.back() == ':') t.authority.pop_back();
    rest = target.substr(a1);
  }
  const size_t q = rest.find('?');
  std::string_view path = rest.substr(0, q);
  if (q != std::string_view::npos) {
    t.query = rest.substr(q + 1);
    for (char c : t.query) {
      if (!is_query_char(c)) return Error{"bad character in request query"};
    }
  }
  if (path.empty()) path = "/";  // absolute-form without a path
  auto st = normalize_path(path, t.path);
  if (!st.ok()) return st.error();
  return t;
}

}  // namespace gantry::http
