// Fuzzes ResponseParser: one-shot and incremental feeds must agree; on kComplete
// views lie inside the head and the framing is consistent with RFC 9112 6.3;
// every error answers 502.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/http/parser.h"

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
  const bool head = seed & 2;
  const Limits limits = (seed & 1) ? Limits{} : Limits{256, 8};
  const std::string_view buf(reinterpret_cast<const char*>(data) + 2, size - 2);

  ResponseParser once(limits);
  ResponseHead h1;
  const ParseState s1 = once.parse(buf, h1, head);

  ResponseParser inc(limits);
  ResponseHead h2;
  ParseState s2 = ParseState::kIncomplete;
  size_t n = 0;
  while (true) {
    s2 = inc.parse(buf.substr(0, n), h2, head);
    if (s2 != ParseState::kIncomplete || n == buf.size()) break;
    seed = seed * 1103515245u + 12345u;
    n += 1 + (seed >> 16) % 17;
    if (n > buf.size()) n = buf.size();
  }
  check(s1 == s2);
  if (s1 == ParseState::kError) {
    check(once.error().status == 502 && inc.error().status == 502);
  }
  if (s1 == ParseState::kComplete) {
    check(once.head_size() == inc.head_size());
    check(once.head_size() <= buf.size() && once.head_size() <= limits.max_head_bytes);
    check(h1.status >= 100 && h1.status <= 599 && h1.status == h2.status);
    check(h1.body == h2.body && h1.keep_alive == h2.keep_alive);
    const char* lo = buf.data();
    const char* hi = lo + once.head_size();
    check_inside(h1.reason, lo, hi);
    for (const Header& x : h1.headers) {
      check_inside(x.name, lo, hi);
      check_inside(x.value, lo, hi);
    }
    if (head || h1.status < 200 || h1.status == 204 || h1.status == 304) {
      check(h1.body == BodyKind::kNone);
    }
    if (h1.body == BodyKind::kUntilClose) check(!h1.keep_alive);
  }
  return 0;
}
