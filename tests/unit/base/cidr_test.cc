// --trusted-proxies ranges.
#include "proxy/net/cidr.h"

#include <gtest/gtest.h>

#include <optional>

namespace gantry::net {
namespace {

TEST(Cidr, Contains) {
  auto set = parse_cidr_list("10.0.0.0/8, 127.0.0.1,::1/128,192.168.1.0/25");
  ASSERT_TRUE(set.ok()) << set.error().message;
  struct Case {
    const char* ip;
    bool in;
  } cases[] = {
      {"10.1.2.3", true},      {"11.0.0.1", false},     {"127.0.0.1", true},
      {"127.0.0.2", false},    {"::1", true},           {"::2", false},
      {"::ffff:10.9.9.9", true}, {"192.168.1.127", true}, {"192.168.1.128", false},
      {"not-an-ip", false},
  };
  for (const auto& c : cases) EXPECT_EQ(contains(*set, c.ip), c.in) << c.ip;
}

TEST(Cidr, Errors) {
  EXPECT_FALSE(parse_cidr("10.0.0.0/33").ok());
  EXPECT_FALSE(parse_cidr("::1/129").ok());
  EXPECT_FALSE(parse_cidr("10.0.0/8").ok());
  EXPECT_FALSE(parse_cidr("10.0.0.0/").ok());
  EXPECT_FALSE(parse_cidr_list("10.0.0.0/8,bogus").ok());
  EXPECT_TRUE(parse_cidr_list("").ok());
  EXPECT_FALSE(contains({}, "127.0.0.1"));
}

TEST(Cidr, ForwardedClient) {
  auto trusted = parse_cidr_list("10.0.0.0/8");
  ASSERT_TRUE(trusted.ok());
  struct Case {
    std::optional<std::string_view> xff;
    std::string_view want;
  } cases[] = {
      {std::nullopt, "10.0.0.1"},                      // no X-Forwarded-For: the peer
      {"203.0.113.7", "203.0.113.7"},                  // one entry
      {"198.51.100.1, 203.0.113.7", "203.0.113.7"},    // the right-most
      {"203.0.113.7, 10.1.1.1", "203.0.113.7"},        // trusted entries are skipped
      {"10.2.2.2 ,10.1.1.1", "10.2.2.2"},              // all trusted: the left-most
      {"", "10.0.0.1"},                                // empty: the peer
      {" , ", "10.0.0.1"},                             // only blanks: the peer
  };
  for (const auto& c : cases)
    EXPECT_EQ(forwarded_client("10.0.0.1", c.xff, *trusted), c.want) << (c.xff ? *c.xff : "(none)");
}

}  // namespace
}  // namespace gantry::net
