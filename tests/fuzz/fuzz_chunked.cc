// Fuzzes ChunkedDecoder: feeding the input in one shot and at pseudo-random
// split points must give the same outcome (ok/error, done, bytes consumed,
// payload bytes, and the de-chunked payload itself); consumed never exceeds
// what was offered, and the payload sink receives exactly the data bytes.
// The trailer sink gets the same section whatever the splits, within the
// trailer limit, and parse_trailer_fields() finds named fields without CR or
// LF in it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/parser.h"

using namespace gantry::http;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

struct Outcome {
  bool ok = true;
  bool done = false;
  size_t consumed = 0;
  uint64_t data = 0;
  std::string payload;
  std::string trailers;
};

Outcome run(std::string_view in, uint32_t seed, bool split) {
  ChunkedDecoder d;
  Outcome o;
  size_t pos = 0;
  while (true) {
    size_t take = in.size() - pos;
    if (split) {
      seed = seed * 1103515245u + 12345u;
      take = std::min<size_t>(take, (seed >> 16) % 9);
    }
    auto r = d.feed(in.substr(pos, take), &o.payload, &o.trailers);
    if (!r.ok()) {
      o.ok = false;
      return o;
    }
    check(r->consumed <= take);
    if (!r->done) check(r->consumed == take);
    o.consumed += r->consumed;
    pos += take;
    if (r->done) {
      o.done = true;
      break;
    }
    if (pos == in.size()) break;
  }
  o.data = d.data_bytes();
  check(o.data <= o.consumed);
  check(o.payload.size() == o.data);
  check(o.trailers.size() <= ChunkedDecoder::kMaxTrailerBytes);
  if (o.done) {
    std::vector<Header> fields;
    parse_trailer_fields(o.trailers, fields);
    for (const Header& f : fields) {
      check(!f.name.empty());
      check(f.name.find_first_of("\r\n:") == std::string_view::npos);
      check(f.value.find_first_of("\r\n") == std::string_view::npos);
    }
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint32_t seed = data[0] | (uint32_t{data[1]} << 8);
  const std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);
  const Outcome a = run(in, seed, false);
  const Outcome b = run(in, seed, true);
  check(a.ok == b.ok);
  if (a.ok) {
    check(a.done == b.done);
    check(a.consumed == b.consumed);
    check(a.data == b.data);
    check(a.payload == b.payload);
    check(a.trailers == b.trailers);
  }
  return 0;
}
