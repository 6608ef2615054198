#include "proxy/filters/cors.h"

#include <algorithm>

namespace gantry::filters {

namespace {

constexpr std::string_view kAllowOrigin = "Access-Control-Allow-Origin";
constexpr std::string_view kAllowCredentials = "Access-Control-Allow-Credentials";
constexpr std::string_view kAllowMethods = "Access-Control-Allow-Methods";
constexpr std::string_view kAllowHeaders = "Access-Control-Allow-Headers";
constexpr std::string_view kExposeHeaders = "Access-Control-Expose-Headers";
constexpr std::string_view kMaxAge = "Access-Control-Max-Age";
constexpr std::string_view kVary = "Vary";

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool ends_with_icase(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && http::iequals(s.substr(s.size() - suffix.size()), suffix);
}

// scheme "://" host [":" port], host a DNS name, IPv4 or [IPv6].
bool well_formed_origin(std::string_view o, std::string_view& scheme, std::string_view& rest) {
  const size_t sep = o.find("://");
  if (sep == std::string_view::npos || sep == 0 || !is_alpha(o[0])) return false;
  scheme = o.substr(0, sep);
  for (char c : scheme) {
    if (!is_alpha(c) && !is_digit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  rest = o.substr(sep + 3);
  if (rest.empty()) return false;
  size_t i = 0;
  if (rest[0] == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    for (char c : rest.substr(1, close - 1)) {
      if (!is_digit(c) && !((c | 0x20) >= 'a' && (c | 0x20) <= 'f') && c != ':' && c != '.') {
        return false;
      }
    }
    i = close + 1;
  } else {
    while (i < rest.size() &&
           (is_alpha(rest[i]) || is_digit(rest[i]) || rest[i] == '-' || rest[i] == '.')) {
      ++i;
    }
    if (i == 0) return false;
  }
  if (i == rest.size()) return true;
  if (rest[i] != ':' || i + 1 == rest.size() || rest.size() - i - 1 > 5) return false;
  for (char c : rest.substr(i + 1)) {
    if (!is_digit(c)) return false;
  }
  return true;
}

bool http_or_https(std::string_view scheme) {
  return http::iequals(scheme, "http") || http::iequals(scheme, "https");
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

}  // namespace

Result<CorsPolicy> CorsPolicy::create(const snapshot::Cors& c) {
  CorsPolicy p;
  for (const std::string& o : c.allow_origins) {
    if (o.empty() || o.find_first_of(" \t\r\n,") != std::string::npos) {
      return Error{"cors: invalid origin \"" + o + "\""};
    }
    OriginPattern pat;
    std::string_view v = o;
    if (v == "*") {
      p.any_origin_ = true;
      pat.kind = OriginPattern::Kind::kAny;
      p.origins_.push_back(pat);
      continue;
    }
    if (const size_t sep = v.find("://"); sep != std::string_view::npos) {
      pat.scheme = std::string(v.substr(0, sep));
      v = v.substr(sep + 3);
      if (pat.scheme.empty() || v.empty()) return Error{"cors: invalid origin \"" + o + "\""};
    }
    if (v.starts_with("*.")) {
      if (v.size() < 3 || v.find('*', 1) != std::string_view::npos) {
        return Error{"cors: invalid wildcard origin \"" + o + "\""};
      }
      pat.kind = OriginPattern::Kind::kWildcard;
      pat.value = std::string(v.substr(1));  // ".example.com[:port]"
    } else if (v.find('*') != std::string_view::npos) {
      return Error{"cors: \"*\" must be the whole origin or its first label in \"" + o + "\""};
    } else if (!pat.scheme.empty() || o == "null") {
      pat.kind = OriginPattern::Kind::kExact;
      pat.value = o;
      pat.scheme.clear();
    } else {
      pat.kind = OriginPattern::Kind::kHost;
      pat.value = std::string(v);
    }
    p.origins_.push_back(std::move(pat));
  }
  p.methods_ =
      c.allow_methods.empty() ? std::vector<std::string>{"GET", "HEAD", "POST"} : c.allow_methods;
  p.any_method_ = std::find(p.methods_.begin(), p.methods_.end(), "*") != p.methods_.end();
  p.allow_headers_ = c.allow_headers;
  p.any_header_ =
      std::find(p.allow_headers_.begin(), p.allow_headers_.end(), "*") != p.allow_headers_.end();
  p.credentials_ = c.allow_credentials;
  p.methods_joined_ = join(p.methods_);
  p.headers_joined_ = join(p.allow_headers_);
  p.expose_joined_ = join(c.expose_headers);
  if (c.max_age) {
    if (c.max_age->count() < 0) return Error{"cors: maxAge must not be negative"};
    p.max_age_ = std::to_string(c.max_age->count() / 1000);
  }
  return p;
}

bool CorsPolicy::origin_allowed(std::string_view origin) const {
  if (origin == "null") {
    for (const auto& p : origins_) {
      if (p.kind == OriginPattern::Kind::kExact && p.value == "null") return true;
    }
    return any_origin_ && !credentials_;
  }
  std::string_view scheme, rest;
  if (!well_formed_origin(origin, scheme, rest)) return false;
  for (const auto& p : origins_) {
    switch (p.kind) {
      case OriginPattern::Kind::kAny:
        return true;
      case OriginPattern::Kind::kExact:
        if (http::iequals(origin, p.value)) return true;
        break;
      case OriginPattern::Kind::kHost:
        if (http_or_https(scheme) && http::iequals(rest, p.value)) return true;
        break;
      case OriginPattern::Kind::kWildcard:
        if ((p.scheme.empty() ? http_or_https(scheme) : http::iequals(scheme, p.scheme)) &&
            rest.size() > p.value.size() && rest[0] != '.' && rest[0] != '[' &&
            ends_with_icase(rest, p.value) &&
            rest.substr(0, rest.size() - p.value.size()).find(':') == std::string_view::npos) {
          return true;
        }
        break;
    }
  }
  return false;
}

bool CorsPolicy::method_allowed(std::string_view method) const {
  if (any_method_) return true;
  for (const auto& m : methods_) {
    if (m == method) return true;
  }
  return false;
}

bool CorsPolicy::headers_allowed(std::string_view list) const {
  if (any_header_) return true;
  bool ok = true;
  http::for_each_list_element(list, [&](std::string_view name) {
    if (!ok) return;
    ok = std::any_of(allow_headers_.begin(), allow_headers_.end(),
                     [&](const std::string& h) { return http::iequals(h, name); });
  });
  return ok;
}

CorsDecision CorsPolicy::evaluate(const CorsRequest& r) const {
  CorsDecision d;
  if (!r.origin) return d;
  const std::string_view origin = *r.origin;
  const bool preflight = r.method == "OPTIONS" && r.request_method.has_value();
  const bool allowed = origin_allowed(origin);
  const bool star = any_origin_ && !credentials_;
  if (!allowed || (preflight && (!method_allowed(*r.request_method) ||
                                 (r.request_headers && !headers_allowed(*r.request_headers))))) {
    d.action = preflight ? CorsAction::kRejectPreflight : CorsAction::kForward;
    if (!star) d.add(kVary, "Origin");
    return d;
  }
  d.action = preflight ? CorsAction::kPreflight : CorsAction::kForward;
  d.add(kAllowOrigin, star ? std::string_view("*") : origin);
  if (credentials_) d.add(kAllowCredentials, "true");
  if (preflight) {
    d.add(kAllowMethods, any_method_ ? *r.request_method : std::string_view(methods_joined_));
    if (any_header_) {
      if (r.request_headers && !r.request_headers->empty())
        d.add(kAllowHeaders, *r.request_headers);
    } else if (!headers_joined_.empty()) {
      d.add(kAllowHeaders, headers_joined_);
    }
    if (!max_age_.empty()) d.add(kMaxAge, max_age_);
  }
  // On the actual response (Fetch), and on the preflight too, as Gateway
  // API's conformance suite expects (browsers ignore it there).
  if (!expose_joined_.empty()) d.add(kExposeHeaders, expose_joined_);
  if (!star) d.add(kVary, "Origin");
  return d;
}

}  // namespace gantry::filters
