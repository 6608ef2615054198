// Fuzzes parse_target and normalize_host. An accepted target's path is "*" or
// starts with '/', holds no "." or ".." segment, and is a fixed point of
// parse_target (normalisation is idempotent). A normalised host is accepted again
// unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/http/path.h"

using namespace gantry::http;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

bool has_dot_segment(std::string_view p) {
  size_t i = 0;
  while (i < p.size()) {
    size_t j = p.find('/', i + 1);
    if (j == std::string_view::npos) j = p.size();
    const std::string_view seg = p.substr(i + 1, j - i - 1);
    if (seg == "." || seg == "..") return true;
    i = j;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string_view method = (data[0] & 1) ? "OPTIONS" : "GET";
  const std::string_view target(reinterpret_cast<const char*>(data) + 1, size - 1);

  auto t = parse_target(method, target);
  if (t.ok()) {
    const std::string& p = t->path;
    check(p == "*" || (!p.empty() && p[0] == '/'));
    if (p != "*") {
      check(!has_dot_segment(p));
      check(p.find('\0') == std::string::npos && p.find('?') == std::string::npos);
    }
    check(t->query.empty() || (t->query.data() >= target.data() &&
                               t->query.data() + t->query.size() <= target.data() + target.size()));
    auto again = parse_target(method, p);
    check(again.ok());
    check(again->path == p);
    if (!t->authority.empty()) check(normalize_host(t->authority).ok());
  }

  auto h = normalize_host(target);
  check(h.ok() == is_valid_host(target));
  if (h.ok()) {
    auto again = normalize_host(*h);
    check(again.ok() && *again == *h);
  }
  return 0;
}
