// The affinity cookie (ConsistentHash on a cookie): what follows its value in
// the Set-Cookie field the proxy adds when it picks an endpoint for a client
// that had none. Pure, so that the attributes are tested without sockets.
//
// Always `Path` (cookiePath, default "/") and `HttpOnly`; `Max-Age` for a
// cookieTtlMs (at least 1 s); `Domain`, `Secure` (always, or on answers over
// TLS) and `SameSite` as the snapshot's LoadBalancer says. With
// cookieSameSiteNoneIfCompatible, `SameSite=None` is left out for the user
// agents known to reject a cookie carrying it (ingress-nginx's
// same_site_none_compatible: Chrome 40-69, iOS 12, macOS 10.14 Safari).
#pragma once

#include <string>
#include <string_view>

#include "proxy/snapshot/model.h"

namespace gantry::upstream {

std::string affinity_cookie_attributes(const snapshot::LoadBalancer& lb, bool tls, std::string_view user_agent);

// False for a user agent known to reject cookies with SameSite=None.
bool same_site_none_compatible(std::string_view user_agent);

}  // namespace gantry::upstream
