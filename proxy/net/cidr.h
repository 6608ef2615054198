// CIDR ranges for --trusted-proxies: a client address inside one of them may
// tell us the original client through X-Forwarded-For.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"

namespace gantry::net {

struct Cidr {
  bool v6 = false;
  std::array<uint8_t, 16> addr{};
  int prefix = 0;
};

// "10.0.0.0/8", "127.0.0.1" (a /32), "::1/128". IPv4-mapped IPv6 addresses
// are compared as IPv4.
Result<Cidr> parse_cidr(std::string_view s);
Result<std::vector<Cidr>> parse_cidr_list(std::string_view comma_separated);
bool contains(const std::vector<Cidr>& set, std::string_view ip);

// The client a trusted proxy `peer` forwarded for: the right-most entry of
// its X-Forwarded-For value `xff` that is not trusted itself (the left-most
// when all are), or `peer` without one. A view into `peer` or `xff`. The
// caller has checked that `peer` is in `trusted` (the HTTP/1.1 session and
// the HTTP/2 streams use the same rule).
std::string_view forwarded_client(std::string_view peer, std::optional<std::string_view> xff,
                                  const std::vector<Cidr>& trusted);

}  // namespace gantry::net
