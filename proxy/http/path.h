// Request-target parsing and normalisation for routing (RFC 9112 3.2, RFC 3986).
// Invariants of a parsed Target: path is "*" (OPTIONS only) or starts with '/',
// holds no "." / ".." segments, no percent-escape of an unreserved character, no
// lower-case hex in escapes, and parse_target(method, path) returns the same path
// (normalisation is idempotent). A path that would climb above "/" is an error,
// never clamped. Errors answer 400.
#pragma once

#include <string>
#include <string_view>

#include "proxy/base/result.h"

namespace gantry::http {

struct Target {
  std::string path;        // normalised: unreserved percent-escapes decoded, dot-segments removed
                           // (RFC 3986 5.2.4), other escapes kept as-is with hex upper-cased
  std::string_view query;  // after '?', without it (view into the original target); '#' fragment
                           // never allowed
  std::string authority;   // from absolute-form targets ("http://Host:8080/x" -> "host:8080"
                           // lower-cased), else empty
};

// Errors (answer 400): empty target, not origin-form / absolute-form (asterisk-form only
// allowed for OPTIONS: path "*"), bad percent-encoding, control chars/spaces, a path that
// would climb above "/" (e.g. "/../x", "/a/../../x"), NUL in decoded bytes. Absolute-form
// accepts the schemes http and https only, and no userinfo. A backslash in the path is
// rejected (some backends treat it as '/', which would bypass prefix routing).
Result<Target> parse_target(std::string_view method, std::string_view target);

// Host header (or authority) -> lower-case host without port; IPv6 literals keep brackets.
// One trailing dot of a DNS name is dropped ("a.example." -> "a.example"). Error for an
// invalid host: empty, bad characters, empty labels, labels over 63 or names over 253
// characters, a bad IPv6 literal, a port that is not 0-65535.
Result<std::string> normalize_host(std::string_view host);

// The syntax check of normalize_host without allocating (used by the request parser).
bool is_valid_host(std::string_view host);

}  // namespace gantry::http
