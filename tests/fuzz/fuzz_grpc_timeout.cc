// Fuzzes parse_grpc_timeout and format_grpc_timeout (exchange/grpc.h). An
// accepted value is 2 to 9 bytes of digits and one unit, its duration is never
// negative, and formatting it gives a value that parses back to at most that
// duration. is_grpc_content_type never reads past its input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/exchange/grpc.h"

using namespace gantry::exchange;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  (void)is_grpc_content_type(in);
  auto d = parse_grpc_timeout(in);
  if (!d) return 0;
  check(in.size() >= 2 && in.size() <= 9);
  check(d->count() >= 0);
  auto back = parse_grpc_timeout(format_grpc_timeout(*d));
  check(back.has_value() && *back <= *d);
  return 0;
}
