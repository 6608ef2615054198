// The affinity cookie's attributes; see affinity_cookie.h.
#include "proxy/upstream/affinity_cookie.h"

#include <algorithm>
#include <cstdint>

namespace gantry::upstream {

bool same_site_none_compatible(std::string_view ua) {
  auto has = [&](std::string_view s) { return ua.find(s) != std::string_view::npos; };
  // ingress-nginx's util/same_site.lua (after Chromium's list of incompatible clients).
  if (has("Chrome/4") || has("Chrome/5") || has("Chrome/6")) return false;
  if (has("CPU iPhone OS 12") || has("iPad; CPU OS 12")) return false;
  if (has("Macintosh") && has("Intel Mac OS X 10_14") && has("Safari") && !has("Chrome")) return false;
  return true;
}

std::string affinity_cookie_attributes(const snapshot::LoadBalancer& lb, bool tls, std::string_view user_agent) {
  std::string out("; Path=");
  out.append(lb.cookie_path.empty() ? std::string_view("/") : std::string_view(lb.cookie_path));
  if (!lb.cookie_domain.empty()) out.append("; Domain=").append(lb.cookie_domain);
  out.append("; HttpOnly");
  if (lb.cookie_ttl.count() > 0)
    out.append("; Max-Age=").append(std::to_string(std::max<int64_t>(1, lb.cookie_ttl.count() / 1000)));
  if (lb.cookie_secure == snapshot::CookieSecure::kAlways || (lb.cookie_secure == snapshot::CookieSecure::kOverTls && tls))
    out.append("; Secure");
  if (!lb.cookie_same_site.empty() &&
      !(lb.cookie_same_site == "None" && lb.cookie_same_site_none_if_compatible && !same_site_none_compatible(user_agent)))
    out.append("; SameSite=").append(lb.cookie_same_site);
  return out;
}

}  // namespace gantry::upstream
