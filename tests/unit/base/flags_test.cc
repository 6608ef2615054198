// Flag value parsers: the contract users and the chart rely on.
#include "proxy/base/flags.h"

#include <gtest/gtest.h>

namespace gantry {
namespace {

TEST(ParseDuration, Table) {
  struct Case {
    const char* in;
    int64_t ms;  // -1: error
  } cases[] = {
      {"10s", 10000}, {"250ms", 250}, {"1m", 60000}, {"2h", 7200000}, {"1.5s", 1500}, {"3", 3000},
      {"0s", 0},      {"", -1},       {"s", -1},     {"10x", -1},     {"-1s", -1},    {"1..2s", -1},
      {"10 s", -1},
  };
  for (const auto& c : cases) {
    auto d = parse_duration(c.in);
    if (c.ms < 0) {
      EXPECT_FALSE(d.ok()) << c.in;
    } else {
      ASSERT_TRUE(d.ok()) << c.in << ": " << d.error().message;
      EXPECT_EQ(d->count(), c.ms) << c.in;
    }
  }
}

TEST(ParseHostPort, Table) {
  struct Case {
    const char* in;
    const char* host;  // nullptr: error
    uint16_t port;
  } cases[] = {
      {"0.0.0.0:8080", "0.0.0.0", 8080}, {"127.0.0.1:0", "127.0.0.1", 0}, {":9901", "0.0.0.0", 9901},
      {"[::1]:80", "::1", 80},           {"localhost:80", "localhost", 80}, {"8080", nullptr, 0},
      {"1.2.3.4:65536", nullptr, 0},     {"1.2.3.4:-1", nullptr, 0},        {"::1:80", nullptr, 0},
      {"[::1]80", nullptr, 0},           {"1.2.3.4:", nullptr, 0},
  };
  for (const auto& c : cases) {
    auto hp = parse_host_port(c.in);
    if (c.host == nullptr) {
      EXPECT_FALSE(hp.ok()) << c.in;
    } else {
      ASSERT_TRUE(hp.ok()) << c.in << ": " << hp.error().message;
      EXPECT_EQ(hp->host, c.host) << c.in;
      EXPECT_EQ(hp->port, c.port) << c.in;
    }
  }
}

TEST(ParseUint, Bounds) {
  EXPECT_EQ(*parse_uint("5", 1, 10), 5u);
  EXPECT_FALSE(parse_uint("0", 1, 10).ok());
  EXPECT_FALSE(parse_uint("11", 1, 10).ok());
  EXPECT_FALSE(parse_uint("1x", 1, 10).ok());
  EXPECT_FALSE(parse_uint("", 1, 10).ok());
  EXPECT_FALSE(parse_uint("99999999999999999999999", 0, ~0ull).ok());
}

TEST(HostPort, StrBracketsIPv6) {
  EXPECT_EQ((HostPort{"::1", 80}).str(), "[::1]:80");
  EXPECT_EQ((HostPort{"127.0.0.1", 80}).str(), "127.0.0.1:80");
}

TEST(IsLoopbackHost, Table) {
  const std::pair<const char*, bool> cases[] = {
      {"127.0.0.1", true}, {"127.1.2.3", true}, {"::1", true},       {"localhost", true},
      {"0.0.0.0", false},  {"10.0.0.1", false}, {"::", false},       {"128.0.0.1", false},
      {"", false},         {"1.127.0.0", false}, {"::ffff:127.0.0.1", false},
  };
  for (const auto& [host, want] : cases) EXPECT_EQ(is_loopback_host(host), want) << host;
}

}  // namespace
}  // namespace gantry
