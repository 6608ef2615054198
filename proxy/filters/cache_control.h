// Cache-Control parsing (RFC 9111 section 5.2) and the response cache's
// storage policy, for a shared cache.
//
// Parsing is tolerant: directive names are case-insensitive, unknown
// directives are ignored, quoted values are accepted, the first occurrence of
// a repeated delta-seconds directive wins, and an invalid delta-seconds
// (not digits) counts as 0 (stale). Values clamp at 2^31 (RFC 9111 1.2.2).
// Policy:
//  - request_policy: only GET and HEAD use the cache; request no-store
//    bypasses it (no lookup, no store); no-cache, max-age=0 and (without
//    Cache-Control) Pragma: no-cache skip the lookup but may store.
//  - response_ttl: never for no-store, private, no-cache, Set-Cookie,
//    Vary: *, 206 or 304; never for a request that carried Authorization
//    unless the response says public, s-maxage or must-revalidate; statuses
//    200 203 204 300 301 404 405 410 414 501 are cacheable by default, any
//    other final status only with an explicit s-maxage/max-age. TTL =
//    s-maxage, else max-age, else the route's ttl; 0 is not cacheable.
//    Expires is not consulted.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "proxy/http/message.h"
#include "proxy/snapshot/model.h"

namespace gantry::filters {

struct CacheControl {
  bool no_store = false;
  bool no_cache = false;
  bool private_ = false;
  bool public_ = false;
  bool must_revalidate = false;
  bool only_if_cached = false;
  std::optional<uint32_t> max_age;   // seconds
  std::optional<uint32_t> s_maxage;  // seconds
  bool operator==(const CacheControl&) const = default;
};

inline constexpr uint32_t kMaxDeltaSeconds = 2147483648u;

// Adds the directives of one Cache-Control field value to `cc`.
void parse_cache_control(std::string_view value, CacheControl& cc);
// All Cache-Control fields of a header list.
CacheControl cache_control_of(std::span<const http::Header> headers);

struct RequestCachePolicy {
  bool lookup = false;  // a stored response may answer
  bool store = false;   // the response may be stored
};
RequestCachePolicy request_policy(std::string_view method, std::span<const http::Header> headers);

// How long a response may be served from the cache, or nullopt when it must
// not be stored.
std::optional<std::chrono::milliseconds> response_ttl(
    const snapshot::Cache& config, bool request_had_authorization, int status,
    std::span<const http::Header> response_headers);

}  // namespace gantry::filters
