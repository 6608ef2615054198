// CORS (Fetch standard) for one rule: answers preflights itself and tells the
// runtime which headers to add to an actual cross-origin response.
//
// Origin entries (allowOrigins):
//   "*"                      any origin ("null" only without credentials)
//   "https://app.example.com[:port]"   exact origin, case-insensitive
//   "app.example.com[:port]" that host over http or https
//   "*.example.com[:port]"   any subdomain (one or more labels; not the apex),
//                            over http or https
//   "https://*.example.com"  the same, with that scheme only
//   "null"                   the opaque origin, exactly
// An origin with a port matches only an entry with that port. Origins that are
// not well formed (scheme "://" host [":" port]) never match an entry.
// Methods: allowMethods, default GET, HEAD, POST; "*" allows any (echoed).
// Request headers of a preflight must all be in allowHeaders (case-
// insensitive) unless it holds "*" (then they are echoed); otherwise 403.
// Access-Control-Allow-Origin echoes the origin (with Vary: Origin), and is
// "*" only when "*" is allowed and credentials are not.
// The decision's header views point into the policy and into the request's
// header values: use them before either goes away. evaluate() never allocates.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/http/message.h"
#include "proxy/snapshot/model.h"

namespace gantry::filters {

struct CorsRequest {
  std::string_view method;
  std::optional<std::string_view> origin;           // Origin
  std::optional<std::string_view> request_method;   // Access-Control-Request-Method
  std::optional<std::string_view> request_headers;  // Access-Control-Request-Headers
};

enum class CorsAction : uint8_t {
  kNotCors,          // no Origin: forward untouched
  kPreflight,        // answer 204 with headers() and no body
  kRejectPreflight,  // answer 403 (with headers(): Vary)
  kForward,          // forward upstream; add headers() to the response
};

struct CorsDecision {
  static constexpr size_t kMaxHeaders = 8;
  CorsAction action = CorsAction::kNotCors;
  std::array<http::Header, kMaxHeaders> items{};
  size_t count = 0;
  std::span<const http::Header> headers() const { return {items.data(), count}; }
  void add(std::string_view name, std::string_view value) {
    if (count < kMaxHeaders) items[count++] = {name, value};
  }
};

class CorsPolicy {
 public:
  static Result<CorsPolicy> create(const snapshot::Cors& config);
  CorsDecision evaluate(const CorsRequest& request) const;
  bool origin_allowed(std::string_view origin) const;

 private:
  struct OriginPattern {
    enum class Kind : uint8_t { kAny, kExact, kHost, kWildcard } kind = Kind::kExact;
    std::string scheme;  // empty: http or https (kHost, kWildcard)
    std::string value;   // kExact: the origin; kHost: host[:port]; kWildcard: ".suffix[:port]"
  };
  bool method_allowed(std::string_view method) const;
  bool headers_allowed(std::string_view list) const;

  std::vector<OriginPattern> origins_;
  bool any_origin_ = false;
  std::vector<std::string> methods_;
  bool any_method_ = false;
  std::vector<std::string> allow_headers_;
  bool any_header_ = false;
  bool credentials_ = false;
  std::string methods_joined_;
  std::string headers_joined_;
  std::string expose_joined_;
  std::string max_age_;
};

}  // namespace gantry::filters
