// libFuzzer target: the ClientHello SNI parser of TLS passthrough. A hello
// that parses names a lower-case DNS name, and every prefix of it is either
// still arriving or the same hello (the verdict never depends on bytes not yet
// received).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "proxy/tls/client_hello.h"

using namespace gantry::tls;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  ClientHello h = parse_client_hello(in);
  if (h.status != HelloStatus::kDone) return 0;
  if (h.server_name.size() > 253) std::abort();
  for (char c : h.server_name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) std::abort();
  for (size_t n : {size / 2, size - 1}) {
    ClientHello p = parse_client_hello(in.substr(0, n));
    if (p.status == HelloStatus::kNotHello) std::abort();
    if (p.status == HelloStatus::kDone && p.server_name != h.server_name) std::abort();
  }
  return 0;
}
