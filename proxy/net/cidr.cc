#include "proxy/net/cidr.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

namespace gantry::net {

namespace {

bool parse_ip(std::string_view s, bool& v6, std::array<uint8_t, 16>& out) {
  std::string z(s);
  in_addr a4{};
  in6_addr a6{};
  out.fill(0);
  if (inet_pton(AF_INET, z.c_str(), &a4) == 1) {
    v6 = false;
    std::memcpy(out.data(), &a4, 4);
    return true;
  }
  if (inet_pton(AF_INET6, z.c_str(), &a6) == 1) {
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(&a6, mapped, 12) == 0) {
      v6 = false;
      std::memcpy(out.data(), reinterpret_cast<uint8_t*>(&a6) + 12, 4);
      return true;
    }
    v6 = true;
    std::memcpy(out.data(), &a6, 16);
    return true;
  }
  return false;
}

bool prefix_equal(const std::array<uint8_t, 16>& a, const std::array<uint8_t, 16>& b, int bits) {
  int bytes = bits / 8;
  if (std::memcmp(a.data(), b.data(), bytes) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[bytes] & mask) == (b[bytes] & mask);
}

}  // namespace

Result<Cidr> parse_cidr(std::string_view s) {
  Cidr c;
  auto slash = s.find('/');
  std::string_view ip = s.substr(0, slash);
  // Appended, not "literal" + std::string&&: GCC 12 at -O3 reports a false -Wrestrict there (GCC PR 105329).
  if (!parse_ip(ip, c.v6, c.addr)) return Error{std::string("\"").append(s).append("\" is not an IP address or CIDR")};
  int max = c.v6 ? 128 : 32;
  c.prefix = max;
  if (slash != std::string_view::npos) {
    std::string_view p = s.substr(slash + 1);
    int v = -1;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (p.empty() || ec != std::errc() || end != p.data() + p.size() || v < 0 || v > max)
      return Error{"bad prefix length in \"" + std::string(s) + "\""};
    c.prefix = v;
  }
  return c;
}

Result<std::vector<Cidr>> parse_cidr_list(std::string_view list) {
  std::vector<Cidr> out;
  while (!list.empty()) {
    auto comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty()) {
      auto c = parse_cidr(item);
      if (!c.ok()) return c.error();
      out.push_back(*c);
    }
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

bool contains(const std::vector<Cidr>& set, std::string_view ip) {
  if (set.empty()) return false;
  bool v6 = false;
  std::array<uint8_t, 16> a{};
  if (!parse_ip(ip, v6, a)) return false;
  for (const auto& c : set)
    if (c.v6 == v6 && prefix_equal(a, c.addr, c.prefix)) return true;
  return false;
}

std::string_view forwarded_client(std::string_view peer, std::optional<std::string_view> xff,
                                  const std::vector<Cidr>& trusted) {
  if (!xff) return peer;
  std::string_view list = *xff;
  while (!list.empty()) {
    auto comma = list.rfind(',');
    std::string_view item = comma == std::string_view::npos ? list : list.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (!item.empty() && !contains(trusted, item)) return item;
    if (comma == std::string_view::npos) return item.empty() ? peer : item;
    list = list.substr(0, comma);
  }
  return peer;
}

}  // namespace gantry::net
