// Fuzzes the frame decoder: the input is split into feeds at points taken from
// its first bytes; the frames taken out must not depend on how the bytes were
// split (compared with one feed of everything), and the decoder must never
// crash. The ACK / NACK / HELLO payload decoders run on every payload.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/snapshot/frame.h"

namespace {

using gantry::snapshot::Frame;
using gantry::snapshot::FrameDecoder;

struct Outcome {
  std::vector<Frame> frames;
  bool failed = false;
};

Outcome run(std::string_view stream, const std::vector<size_t>& cuts) {
  Outcome out;
  FrameDecoder d;
  size_t at = 0;
  for (size_t i = 0; at < stream.size(); ++i) {
    size_t n = cuts.empty() ? stream.size() : cuts[i % cuts.size()];
    n = std::min(n, stream.size() - at);
    if (!d.feed(stream.substr(at, n)).ok()) {
      out.failed = true;
      break;
    }
    at += n;
    while (auto f = d.next()) out.frames.push_back(std::move(*f));
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gantry::snapshot;
  if (size < 1) return 0;
  // First byte: how many split sizes follow (0..7); each is one byte (1..256).
  size_t ncuts = data[0] % 8;
  if (size < 1 + ncuts) return 0;
  std::vector<size_t> cuts;
  for (size_t i = 0; i < ncuts; ++i) cuts.push_back(size_t(data[1 + i]) + 1);
  std::string_view stream(reinterpret_cast<const char*>(data) + 1 + ncuts, size - 1 - ncuts);

  Outcome whole = run(stream, {});
  Outcome split = run(stream, cuts);
  // A split feed may stop at the error before taking frames the whole feed
  // never returned (the whole feed checks every header first), so compare
  // frames only when neither failed, and the failure flag always.
  if (whole.failed != split.failed) abort();
  if (!whole.failed) {
    if (whole.frames.size() != split.frames.size()) abort();
    for (size_t i = 0; i < whole.frames.size(); ++i) {
      if (whole.frames[i].type != split.frames[i].type ||
          whole.frames[i].payload != split.frames[i].payload) {
        abort();
      }
    }
  }
  for (const auto& f : whole.frames) {
    if (encode_frame(f.type, f.payload).size() != kFrameHeaderSize + f.payload.size()) abort();
    (void)decode_ack(f.payload);
    (void)decode_nack(f.payload);
    (void)decode_hello(f.payload);
  }
  return 0;
}
