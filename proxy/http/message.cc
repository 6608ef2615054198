// Helpers over message heads: case-insensitive names, header lookup, and the
// hop-by-hop set a proxy must not forward.
#include "proxy/http/message.h"

namespace gantry::http {

namespace {
inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
}  // namespace

void RequestHead::clear() {
  method = {};
  target = {};
  version = Version::kHttp11;
  headers.clear();
  body = BodyKind::kNone;
  content_length = 0;
  keep_alive = true;
  expect_continue = false;
  upgrade_websocket = false;
  host = {};
}

void ResponseHead::clear() {
  status = 0;
  reason = {};
  version = Version::kHttp11;
  headers.clear();
  body = BodyKind::kNone;
  content_length = 0;
  keep_alive = true;
}

bool detail::iequals_short(const char* a, const char* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::optional<std::string_view> find_header(const std::vector<Header>& h, std::string_view name) {
  for (const Header& x : h) {
    if (iequals(x.name, name)) return x.value;
  }
  return std::nullopt;
}

bool is_hop_by_hop(std::string_view name) {
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 7:
      return iequals(name, "upgrade") || iequals(name, "trailer");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16:
      return iequals(name, "proxy-connection");
    case 17:
      return iequals(name, "transfer-encoding");
    case 18:
      return iequals(name, "proxy-authenticate");
    case 19:
      return iequals(name, "proxy-authorization");
    default:
      return false;
  }
}

}  // namespace gantry::http
