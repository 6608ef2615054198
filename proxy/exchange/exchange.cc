#include "proxy/exchange/exchange.h"

namespace gantry::exchange {

bool HeaderEdits::drops(std::string_view name) const {
  for (auto n : remove)
    if (http::iequals(n, name)) return true;
  for (const auto& h : set)
    if (http::iequals(h.name, name)) return true;
  return false;
}

}  // namespace gantry::exchange
