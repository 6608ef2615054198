// parse_target and normalize_host tables: dot segments (plain and encoded),
// percent-encoding normalisation, climbing above the root, query, absolute-form,
// asterisk-form, fragments and bad characters. Every accepted path must be a
// fixed point of parse_target.
#include "proxy/http/path.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

namespace gantry::http {
namespace {

struct TargetRow {
  const char* name;
  std::string method;
  std::string target;
  bool ok;
  std::string path = "";
  std::string query = "";
  std::string authority = "";
};
void PrintTo(const TargetRow& r, std::ostream* os) { *os << r.name; }

std::vector<TargetRow> target_rows() {
  return {
      {"root", "GET", "/", true, "/"},
      {"plain", "GET", "/a/b", true, "/a/b"},
      {"trailing_slash_kept", "GET", "/a/b/", true, "/a/b/"},
      {"dot_segment", "GET", "/a/./b", true, "/a/b"},
      {"dotdot_segment", "GET", "/a/../b", true, "/b"},
      {"trailing_dotdot", "GET", "/a/b/..", true, "/a/"},
      {"trailing_dot", "GET", "/a/b/.", true, "/a/b/"},
      {"dotdot_to_root", "GET", "/a/..", true, "/"},
      {"only_dot", "GET", "/.", true, "/"},
      {"deep_dotdot", "GET", "/a/b/c/../../d", true, "/a/d"},
      {"encoded_dotdot", "GET", "/a/%2e%2e/b", true, "/b"},
      {"mixed_encoded_dotdot", "GET", "/a/%2E./b", true, "/b"},
      {"encoded_dot", "GET", "/a/%2e/b", true, "/a/b"},
      {"dots_in_names_kept", "GET", "/a/..b/.c/...", true, "/a/..b/.c/..."},
      {"encoded_slash_kept", "GET", "/a%2Fb", true, "/a%2Fb"},
      {"encoded_slash_uppercased", "GET", "/a%2fb/%2f..", true, "/a%2Fb/%2F.."},
      {"unreserved_decoded", "GET", "/%7Euser/%41%62%2D%5F%2E", true, "/~user/Ab-_."},
      {"reserved_escape_kept", "GET", "/a%20b%3f%25", true, "/a%20b%3F%25"},
      {"utf8_escapes_kept", "GET", "/caf%c3%a9", true, "/caf%C3%A9"},
      {"sub_delims_raw", "GET", "/a;b=c,d:e@f!$&'()*+", true, "/a;b=c,d:e@f!$&'()*+"},
      {"empty_segments_kept", "GET", "/a//b", true, "/a//b"},
      {"dotdot_pops_empty_segment", "GET", "/a//../b", true, "/a/b"},
      {"double_slash_dotdot", "GET", "//..", true, "/"},
      {"query_kept", "GET", "/a?x=1&y=/../%zz", true, "/a", "x=1&y=/../%zz"},
      {"empty_query", "GET", "/a?", true, "/a", ""},
      {"dotdot_before_query", "GET", "/a/b/..?q", true, "/a/", "q"},
      {"absolute_form", "GET", "http://Example.COM:8080/x/./y?z", true, "/x/y", "z",
       "example.com:8080"},
      {"absolute_form_no_path", "GET", "http://example.com", true, "/", "", "example.com"},
      {"absolute_form_https_query_only", "GET", "HTTPS://A.b?q=1", true, "/", "q=1", "a.b"},
      {"absolute_form_ipv6", "GET", "http://[::1]:80/p", true, "/p", "", "[::1]:80"},
      {"absolute_form_empty_port", "GET", "http://h:/p", true, "/p", "", "h"},
      {"asterisk_options", "OPTIONS", "*", true, "*"},
      // Errors.
      {"empty", "GET", "", false},
      {"asterisk_not_options", "GET", "*", false},
      {"asterisk_with_more", "OPTIONS", "*x", false},
      {"climb_from_root", "GET", "/../x", false},
      {"climb_after_pop", "GET", "/a/../../x", false},
      {"climb_encoded", "GET", "/%2e%2e/x", false},
      {"climb_trailing", "GET", "/..", false},
      {"climb_in_absolute_form", "GET", "http://h/a/../..", false},
      {"fragment", "GET", "/a#frag", false},
      {"fragment_in_query", "GET", "/a?b#c", false},
      {"truncated_escape", "GET", "/a%2", false},
      {"truncated_escape_end", "GET", "/a%", false},
      {"non_hex_escape", "GET", "/a%zz", false},
      {"encoded_nul", "GET", "/a%00b", false},
      {"space", "GET", "/a b", false},
      {"control_char", "GET", "/a\x01", false},
      {"del", "GET", "/a\x7f", false},
      {"non_ascii", "GET", "/caf\xc3\xa9", false},
      {"backslash", "GET", "/a\\..\\b", false},
      {"space_in_query", "GET", "/a?b c", false},
      {"relative", "GET", "a/b", false},
      {"authority_form", "CONNECT", "example.com:443", false},
      {"other_scheme", "GET", "ftp://h/x", false},
      {"userinfo", "GET", "http://user@h/x", false},
      {"empty_authority", "GET", "http:///x", false},
      {"bad_authority", "GET", "http://a b/x", false},
  };
}

class ParseTarget : public ::testing::TestWithParam<TargetRow> {};

TEST_P(ParseTarget, Table) {
  const TargetRow& r = GetParam();
  auto t = parse_target(r.method, r.target);
  ASSERT_EQ(t.ok(), r.ok) << (t.ok() ? t->path : t.error().message);
  if (!r.ok) {
    EXPECT_FALSE(t.error().message.empty());
    return;
  }
  EXPECT_EQ(t->path, r.path);
  EXPECT_EQ(t->query, r.query);
  EXPECT_EQ(t->authority, r.authority);
  if (!t->query.empty()) {  // a view into the original target
    EXPECT_GE(t->query.data(), r.target.data());
    EXPECT_LE(t->query.data() + t->query.size(), r.target.data() + r.target.size());
  }
  // Idempotence: the normalised path is its own normal form.
  auto again = parse_target(r.method, t->path);
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->path, t->path);
}

INSTANTIATE_TEST_SUITE_P(Rows, ParseTarget, ::testing::ValuesIn(target_rows()),
                         [](const auto& info) { return std::string(info.param.name); });

struct HostRow {
  const char* name;
  std::string in;
  bool ok;
  std::string host = "";
};
void PrintTo(const HostRow& r, std::ostream* os) { *os << r.name; }

std::string repeat(const std::string& s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

std::vector<HostRow> host_rows() {
  return {
      {"lower_cased", "Shop.Example.COM", true, "shop.example.com"},
      {"port_stripped", "example.com:8080", true, "example.com"},
      {"empty_port", "example.com:", true, "example.com"},
      {"trailing_dot", "a.example.:80", true, "a.example"},
      {"ipv4", "127.0.0.1:80", true, "127.0.0.1"},
      {"ipv6", "[::1]:443", true, "[::1]"},
      {"ipv6_lower_cased", "[2001:DB8::1]", true, "[2001:db8::1]"},
      {"underscore", "my_host", true, "my_host"},
      {"single_label", "localhost", true, "localhost"},
      {"max_label", std::string(63, 'a') + ".b", true, std::string(63, 'a') + ".b"},
      {"empty", "", false},
      {"port_only", ":80", false},
      {"empty_label", "a..b", false},
      {"leading_dot", ".a", false},
      {"only_dot", ".", false},
      {"space", "a b", false},
      {"slash", "a/b", false},
      {"userinfo", "u@a", false},
      {"label_too_long", std::string(64, 'a') + ".b", false},
      {"name_too_long", repeat(std::string(49, 'a') + ".", 5) + "abcd", false},  // 254 chars
      {"port_too_big", "a:65536", false},
      {"port_not_digits", "a:8x", false},
      {"port_sign", "a:+80", false},
      {"two_colons", "a:80:90", false},
      {"unclosed_ipv6", "[::1", false},
      {"bad_ipv6", "[zz::1]", false},
      {"ipv6_zone", "[fe80::1%25eth0]", false},
      {"garbage_after_ipv6", "[::1]x", false},
  };
}

class NormalizeHost : public ::testing::TestWithParam<HostRow> {};

TEST_P(NormalizeHost, Table) {
  const HostRow& r = GetParam();
  auto h = normalize_host(r.in);
  ASSERT_EQ(h.ok(), r.ok) << (h.ok() ? *h : h.error().message);
  EXPECT_EQ(is_valid_host(r.in), r.ok);
  if (r.ok) {
    EXPECT_EQ(*h, r.host);
    auto again = normalize_host(*h);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(*again, *h);
  }
}

INSTANTIATE_TEST_SUITE_P(Rows, NormalizeHost, ::testing::ValuesIn(host_rows()),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace gantry::http
