// Fuzzes the extAuth service URL parser (controller/core/ingress_nginx.h,
// parse_ext_auth_url: GatewayRoute extAuth.url and ingress-nginx auth-url).
// Invariants: an accepted URL gives a non-empty host without '@', '/', '$' or
// spaces, a port above 0, a path starting with '/' without spaces or control
// characters, TLS for https://, and an authority the URL starts with after the scheme; the
// snapshot validation accepts what it produced.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "controller/core/ingress_nginx.h"

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view url(reinterpret_cast<const char*>(data), size);
  gantry::snapshot::ExtAuth a;
  std::string why = gantry::controller::parse_ext_auth_url(url, a);
  if (!why.empty()) return 0;
  check(url.starts_with("http://") || url.starts_with("https://"));
  check(!a.host.empty());
  check(a.host.find_first_of("@/$ ") == std::string::npos);
  check(a.port > 0);
  check(a.path.starts_with("/"));
  for (unsigned char c : a.path) check(c > 0x20 && c != 0x7f);
  check(url.starts_with("http://") ? !a.tls : a.tls);
  check(url.substr(a.tls ? 8 : 7).starts_with(a.authority));
  return 0;
}
