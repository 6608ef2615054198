// Fuzzes RequestParser: the input is parsed in one shot and again fed as growing
// prefixes cut at pseudo-random points; both must reach the same decision. On
// kComplete the head fits the buffer and the limits, and every view points
// inside the head; on kError the status is one the proxy can answer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/http/parser.h"
#include "proxy/http/path.h"

using namespace gantry::http;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

void check_inside(std::string_view v, const char* lo, const char* hi) {
  check(v.empty() || (v.data() >= lo && v.data() + v.size() <= hi));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint32_t seed = data[0] | (uint32_t{data[1]} << 8);
  const Limits limits = (seed & 1) ? Limits{} : Limits{256, 8};
  const std::string_view buf(reinterpret_cast<const char*>(data) + 2, size - 2);

  RequestParser once(limits);
  RequestHead h1;
  const ParseState s1 = once.parse(buf, h1);

  RequestParser inc(limits);
  RequestHead h2;
  ParseState s2 = ParseState::kIncomplete;
  size_t n = 0;
  while (true) {
    s2 = inc.parse(buf.substr(0, n), h2);
    if (s2 != ParseState::kIncomplete || n == buf.size()) break;
    seed = seed * 1103515245u + 12345u;
    n += 1 + (seed >> 16) % 17;
    if (n > buf.size()) n = buf.size();
  }
  check(s1 == s2);
  if (s1 == ParseState::kError) {
    const int st = once.error().status;
    check(st == 400 || st == 431 || st == 501 || st == 505);
    check(st == inc.error().status);
    check(!once.error().reason.empty());
  }
  if (s1 == ParseState::kComplete) {
    check(once.head_size() == inc.head_size());
    check(once.head_size() <= buf.size());
    check(once.head_size() <= limits.max_head_bytes);
    check(h1.headers.size() <= limits.max_headers);
    check(h1.headers.size() == h2.headers.size());
    const char* lo = buf.data();
    const char* hi = lo + once.head_size();
    check_inside(h1.method, lo, hi);
    check_inside(h1.target, lo, hi);
    check_inside(h1.host, lo, hi);
    check(!h1.method.empty() && !h1.target.empty());
    for (const Header& x : h1.headers) {
      check_inside(x.name, lo, hi);
      check_inside(x.value, lo, hi);
      check(!x.name.empty());
    }
    check(h1.body != BodyKind::kUntilClose);
    check(h1.body == BodyKind::kContentLength || h1.content_length == 0);
    if (h1.version == Version::kHttp11) check(!h1.host.empty());
    if (!h1.host.empty()) check(normalize_host(h1.host).ok());
    (void)parse_target(h1.method, h1.target);
  }
  return 0;
}
