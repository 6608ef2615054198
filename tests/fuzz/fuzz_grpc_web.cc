// Fuzzes gRPC-Web framing (filters/grpc_web.h), the code that reads a
// client's gRPC-Web body and content-type:
// - the first byte picks split points; the rest is fed to the streaming
//   base64 decoder in those pieces: the result (bytes, failure, completeness)
//   equals feeding it whole, and what decodes re-encodes to the same text
//   when the input was canonical (one stream padded only at its end);
// - parse_frames / parse_trailers never read past their input; a body made
//   by append_trailer_frame parses back to the same fields;
// - the encoder in pieces equals the encoder whole, and the decoder inverts it;
// - parse_content_type never reads past its input, and the content types it
//   builds parse back.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/filters/grpc_web.h"

using namespace gantry::filters::grpc_web;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = static_cast<size_t>(data[0] % 7) + 1;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);

  // decoder: pieces == whole
  Base64Decoder whole, split;
  std::string a, b;
  const bool ok_whole = whole.feed(in, a);
  bool ok_split = true;
  for (size_t i = 0; i < in.size() && ok_split; i += piece) ok_split = split.feed(in.substr(i, piece), b);
  check(ok_whole == ok_split);
  if (ok_whole) {
    check(a == b);
    check(whole.complete() == split.complete());
    check(a.size() <= in.size() / 4 * 3);
  }

  // encoder: pieces == whole, and decodes back
  Base64Encoder e1, e2;
  std::string t1, t2;
  e1.feed(in, t1);
  e1.finish(t1);
  for (size_t i = 0; i < in.size(); i += piece) e2.feed(in.substr(i, piece), t2);
  e2.finish(t2);
  check(t1 == t2);
  check(t1.size() == (in.size() + 2) / 3 * 4);
  Base64Decoder back;
  std::string plain;
  check(back.feed(t1, plain) && back.complete());
  check(plain == in);

  // frames and trailer blocks
  if (auto frames = parse_frames(in)) {
    size_t total = 0;
    for (const Frame& f : *frames) total += 5 + f.payload.size();
    check(total == in.size());
    for (const Frame& f : *frames)
      if (f.trailer) (void)parse_trailers(f.payload);
  }
  if (auto fields = parse_trailers(in)) {
    // Values without CR/LF and names without ':' survive a round trip.
    std::vector<gantry::http::Header> hs;
    bool clean = true;
    for (const auto& [n, v] : *fields) {
      clean = clean && n.find_first_of(":\r\n") == std::string::npos && v.find_first_of("\r\n") == std::string::npos;
      hs.push_back({n, v});
    }
    if (clean) {
      std::string body;
      append_trailer_frame(hs, body);
      auto frames = parse_frames(body);
      check(frames && frames->size() == 1 && (*frames)[0].trailer);
      auto again = parse_trailers((*frames)[0].payload);
      check(again && again->size() == fields->size());
      for (size_t i = 0; i < fields->size(); ++i) check((*again)[i] == (*fields)[i]);
    }
  }

  // content types
  if (auto t = parse_content_type(in)) {
    const std::string built = web_content_type(*t);
    auto again = parse_content_type(built);
    check(again && again->text == t->text && again->suffix == t->suffix);
  }
  return 0;
}
