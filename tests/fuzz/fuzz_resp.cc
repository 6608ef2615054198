// Fuzzes the reply handling of the global rate limit store (proxy/ratelimit/
// resp.h): RESP bytes from a server, as one buffer and split into pieces at
// the points the input's first byte chooses. Invariants: the split never
// changes the replies nor whether the stream is a protocol error; a key's
// state the store may have answered (global_state_valid) gives decisions
// that hold together (the first `admitted` allowed with retry-after 0,
// remaining within the limit and counting down, the rest refused with
// retry-after >= 1); a command we encode (append_command) is read back as
// exactly one reply.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/ratelimit/resp.h"

using gantry::ratelimit::RespParser;
using gantry::ratelimit::StoreReply;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

struct Seen {
  uint8_t kind;
  size_t count;
  uint64_t admitted, tokens, prev, curr, elapsed;  // the batch's last key
  std::string text;
  bool operator==(const Seen&) const = default;
};

// The decisions global_decision derives from `s` for up to n + 2 requests on
// one key of a small token bucket and a small sliding window.
void check_decisions(const gantry::filters::GlobalKeyState& s) {
  using gantry::filters::GlobalCheck;
  const GlobalCheck limits[] = {
      {"k", /*sliding_window=*/false, /*requests=*/3, /*interval_us=*/1000000, /*capacity=*/5},
      {"k", /*sliding_window=*/true, /*requests=*/3, /*interval_us=*/1000000, /*capacity=*/3},
  };
  for (const GlobalCheck& c : limits)
    for (uint64_t n = s.admitted; n <= s.admitted + 2; ++n) {
      if (!gantry::filters::global_state_valid(c, s, n)) continue;
      uint64_t last_remaining = UINT64_MAX;
      for (uint64_t i = 0; i < n; ++i) {
        const auto d = gantry::filters::global_decision(c, s, i);
        check(d.allowed == (i < s.admitted));
        check(d.remaining <= d.limit && d.limit == c.capacity);
        if (d.allowed) {
          check(d.retry_after_seconds == 0 && d.remaining < last_remaining);
          last_remaining = d.remaining;
        } else {
          check(d.retry_after_seconds >= 1);
        }
      }
    }
}

// Replies until the first error (then `error` is set) or the end.
std::vector<Seen> parse(std::string_view in, size_t step, bool& error) {
  RespParser p;
  std::vector<Seen> out;
  error = false;
  size_t at = 0;
  while (at < in.size() && !error) {
    const size_t n = std::min(step, in.size() - at);
    if (!p.feed(in.data() + at, n).ok()) {
      error = true;
      break;
    }
    at += n;
    StoreReply r;
    while (true) {
      auto more = p.next(r);
      if (!more.ok()) {
        error = true;
        break;
      }
      if (!*more) break;
      gantry::filters::GlobalKeyState last{};
      if (r.kind == StoreReply::kDecision) {
        check(r.count >= 1 && r.count <= gantry::ratelimit::kMaxBatch);
        for (size_t i = 0; i < r.count; ++i) check_decisions(r.keys[i]);
        last = r.keys[r.count - 1];
      } else {
        check(r.count == 0);
      }
      out.push_back({r.kind, r.count, last.admitted, last.tokens, last.prev, last.curr, last.elapsed, r.text});
      if (out.size() > 100000) return out;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 17;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  bool err_whole = false, err_split = false;
  auto whole = parse(in, in.size() + 1, err_whole);
  auto split = parse(in, step, err_split);
  check(err_whole == err_split);
  if (!err_whole) check(whole == split);

  // Our own encoding of arguments taken from the input: one reply back.
  std::string cmd;
  std::string_view a = in.substr(0, in.size() / 2), b = in.substr(in.size() / 2);
  gantry::ratelimit::append_command(cmd, {"EVALSHA", a, "1", b});
  bool err = false;
  auto back = parse(cmd, cmd.size(), err);
  check(!err && back.size() == 1 && back[0].kind == StoreReply::kOther);
  return 0;
}
