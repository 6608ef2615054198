// Fuzzes the snapshot codec: any bytes must decode or fail cleanly (no crash,
// no exception), validation of whatever decodes must not crash, and a decoded
// snapshot must survive encode -> decode unchanged (aborts otherwise).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/snapshot/codec.h"
#include "proxy/snapshot/validate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gantry::snapshot;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto s = decode_snapshot(text);
  if (s.ok()) {
    (void)validate(*s);
    auto again = decode_snapshot(encode(*s));
    if (!again.ok() || !(*again == *s)) abort();
    auto pretty = decode_snapshot(to_pretty_json(*s));
    if (!pretty.ok() || !(*pretty == *s)) abort();
  }

  auto d = decode_delta(text);
  if (d.ok()) {
    auto again = decode_delta(encode(*d));
    if (!again.ok() || !(*again == *d)) abort();
    if (s.ok()) {
      if (validate(*d, *s).empty()) (void)apply(*d, *s);
    }
  }
  return 0;
}
