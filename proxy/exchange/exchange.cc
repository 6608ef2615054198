#include "proxy/exchange/exchange.h"

namespace gantry::exchange {

int grpc_status_for(int status) {
  switch (status) {
    case 400: return 13;  // INTERNAL
    case 401: return 16;  // UNAUTHENTICATED
    case 403: return 7;   // PERMISSION_DENIED
    case 404: return 12;  // UNIMPLEMENTED
    case 429:
    case 502:
    case 503:
    case 504: return 14;  // UNAVAILABLE
    default: return 2;    // UNKNOWN
  }
}

bool HeaderEdits::drops(std::string_view name) const {
  for (auto n : remove)
    if (http::iequals(n, name)) return true;
  for (const auto& h : set)
    if (http::iequals(h.name, name)) return true;
  return false;
}

}  // namespace gantry::exchange
