// message.h helpers: case-insensitive compare, header lookup, the hop-by-hop
// set, list splitting, and clear() keeping capacity.
#include "proxy/http/message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gantry::http {
namespace {

TEST(Message, Iequals) {
  struct Row {
    std::string a, b;
    bool eq;
  };
  const std::vector<Row> rows = {
      {"Content-Length", "content-length", true},
      {"HOST", "host", true},
      {"", "", true},
      {"host", "hosts", false},
      {"a-b", "a_b", false},
      {"[", "{", false},
      {"\xc3\xa9", "\xc3\x89", false},
  };
  for (const Row& r : rows) EXPECT_EQ(iequals(r.a, r.b), r.eq) << r.a << " vs " << r.b;
}

// Lengths 8 and up go eight octets at a time (the last word overlapping):
// every position of every length from 1 to 40 is checked against the octet
// by octet answer, with a letter in the other case (equal), a different
// letter, and the octets whose 0x20 bit differs but are not letters ('@'
// and '`', '[' and '{', '\r' and '-', 0xC3 and 0xE3).
TEST(Message, IequalsEveryPositionAndLength) {
  auto reference = [](const std::string& a, const std::string& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      auto low = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; };
      if (low(a[i]) != low(b[i])) return false;
    }
    return true;
  };
  const std::string base = "content-length-transfer-encoding-x-forwa";
  const std::vector<std::pair<char, char>> swaps = {{'a', 'A'}, {'a', 'b'},  {'@', '`'},      {'[', '{'},
                                                    {'\r', '-'}, {'Z', 'z'}, {'\xc3', '\xe3'}, {'0', 0x10}};
  for (size_t n = 1; n <= base.size(); ++n) {
    const std::string a = base.substr(0, n);
    EXPECT_TRUE(iequals(a, a));
    for (size_t i = 0; i < n; ++i) {
      for (const auto& [x, y] : swaps) {
        std::string l = a, r = a;
        l[i] = x;
        r[i] = y;
        EXPECT_EQ(iequals(l, r), reference(l, r)) << n << " at " << i << ": " << int(x) << " vs " << int(y);
        EXPECT_EQ(iequals(r, l), reference(r, l)) << n << " at " << i;
      }
    }
    EXPECT_FALSE(iequals(a, a + "x"));
  }
}

TEST(Message, FindHeaderReturnsFirstMatch) {
  const std::vector<Header> h = {{"Host", "a"}, {"X-A", "1"}, {"x-a", "2"}};
  EXPECT_EQ(find_header(h, "x-A").value_or("none"), "1");
  EXPECT_EQ(find_header(h, "HOST").value_or("none"), "a");
  EXPECT_FALSE(find_header(h, "x-b").has_value());
}

TEST(Message, HopByHop) {
  const std::vector<std::pair<std::string, bool>> rows = {
      {"Connection", true},
      {"keep-alive", true},
      {"Proxy-Connection", true},
      {"TE", true},
      {"Trailer", true},
      {"transfer-encoding", true},
      {"Upgrade", true},
      {"Proxy-Authenticate", true},
      {"proxy-authorization", true},
      {"Trailers", false},
      {"Host", false},
      {"Content-Length", false},
      {"X-Forwarded-For", false},
      {"Authorization", false},
      {"Te-X", false},
  };
  for (const auto& [name, hop] : rows) EXPECT_EQ(is_hop_by_hop(name), hop) << name;
}

TEST(Message, ListElements) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> rows = {
      {"close", {"close"}},
      {" keep-alive ,\tUpgrade ", {"keep-alive", "Upgrade"}},
      {",, a ,,b,", {"a", "b"}},
      {"", {}},
      {" , ", {}},
  };
  for (const auto& [in, want] : rows) {
    std::vector<std::string> got;
    for_each_list_element(in, [&got](std::string_view e) { got.emplace_back(e); });
    EXPECT_EQ(got, want) << in;
  }
}

TEST(Message, ClearResetsFieldsAndKeepsCapacity) {
  RequestHead r;
  r.method = "POST";
  r.headers.resize(10);
  r.body = BodyKind::kChunked;
  r.keep_alive = false;
  r.expect_continue = true;
  r.upgrade_websocket = true;
  r.content_length = 9;
  r.host = "h";
  const size_t cap = r.headers.capacity();
  r.clear();
  EXPECT_TRUE(r.method.empty());
  EXPECT_TRUE(r.headers.empty());
  EXPECT_EQ(r.headers.capacity(), cap);
  EXPECT_EQ(r.body, BodyKind::kNone);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_FALSE(r.expect_continue);
  EXPECT_FALSE(r.upgrade_websocket);
  EXPECT_EQ(r.content_length, 0u);
  EXPECT_TRUE(r.host.empty());

  ResponseHead s;
  s.status = 200;
  s.headers.resize(3);
  s.body = BodyKind::kUntilClose;
  s.keep_alive = false;
  s.clear();
  EXPECT_EQ(s.status, 0);
  EXPECT_TRUE(s.headers.empty());
  EXPECT_EQ(s.body, BodyKind::kNone);
  EXPECT_TRUE(s.keep_alive);
}

}  // namespace
}  // namespace gantry::http
