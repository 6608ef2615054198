// The htpasswd parser and the Basic verifier (proxy/filters/htpasswd.h,
// basic_auth.h). The hashes were written by Apache's htpasswd(1)
// (apache2-utils 2.4, its own bcrypt and SHA-2 crypt code), so crypt_rn(3)
// is checked against another implementation, not against itself.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <atomic>
#include <vector>

#include "proxy/filters/basic_auth.h"
#include "proxy/filters/htpasswd.h"

namespace gantry::filters {
namespace {

// htpasswd -nbB -C 4 alice 'open sesame'; -nb2 carol; -nb5 dave; -nbm; -nbp; -nbs
const std::string kAlice = "$2y$04$dD/xXdPDwE3/ZsXH8exTJOZz1xzNwPV7jUzkf1bVDqFZqZTG.ddze";
const std::string kCarol = "$5$YoH8TKhm4oxXP5yz$6wdHf0ttt4kiDOd31ebbVD6.CGTT3rZkML4fIHOn5tA";
const std::string kDave =
    "$6$iyBV5NJLiOgwsX0N$L1F8/TAn47VlxaL/7SRM7Cd2MJJDqzs3sTfz73sQGC9HZAtAFK.I4EisAiP6an.SkgDyaqgAuiCEpa5hc.aP01";

struct ParseRow {
  std::string name, text;
  std::vector<std::string> users;       // accepted names, in order
  std::vector<std::string> problems;    // each a prefix of the problem at that index
};

class HtpasswdTable : public ::testing::TestWithParam<ParseRow> {};

TEST_P(HtpasswdTable, Parses) {
  const ParseRow& row = GetParam();
  HtpasswdResult r = parse_htpasswd(row.text);
  std::vector<std::string> names;
  for (const auto& u : r.users) names.push_back(u.name);
  EXPECT_EQ(names, row.users);
  ASSERT_EQ(r.problems.size(), row.problems.size()) << ::testing::PrintToString(r.problems);
  for (size_t i = 0; i < row.problems.size(); ++i)
    EXPECT_EQ(r.problems[i].rfind(row.problems[i], 0), 0u) << r.problems[i];
}

INSTANTIATE_TEST_SUITE_P(
    Htpasswd, HtpasswdTable,
    ::testing::Values(
        ParseRow{"bcrypt_sha256_sha512", "alice:" + kAlice + "\ncarol:" + kCarol + "\ndave:" + kDave + "\n",
                 {"alice", "carol", "dave"}, {}},
        ParseRow{"crlf_blank_and_comments", "# users\r\n\r\n  \nalice:" + kAlice + "\r\n", {"alice"}, {}},
        ParseRow{"md5_refused", "mallory:$apr1$pEHspv1V$yTYoAx7LRDJLHOrIkKU5I/\nalice:" + kAlice,
                 {"alice"}, {"line 1: user \"mallory\": MD5 ($apr1$) hashes are refused"}},
        ParseRow{"md5_crypt_refused", "m:$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", {},
                 {"line 1: user \"m\": MD5 crypt ($1$) hashes are refused"}},
        ParseRow{"plain_refused", "plain:pw", {}, {"line 1: user \"plain\": plain-text or DES crypt"}},
        ParseRow{"sha1_refused", "s:{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=", {},
                 {"line 1: user \"s\": unsalted SHA-1 ({SHA}) hashes are refused"}},
        ParseRow{"yescrypt_refused", "y:$y$j9T$abc$def", {}, {"line 1: user \"y\": unsupported hash scheme"}},
        ParseRow{"truncated_bcrypt", "a:" + kAlice.substr(0, 50), {}, {"line 1: user \"a\": malformed hash"}},
        ParseRow{"bcrypt_cost_out_of_range", "a:$2y$03$dD/xXdPDwE3/ZsXH8exTJOZz1xzNwPV7jUzkf1bVDqFZqZTG.ddze", {},
                 {"line 1: user \"a\": malformed hash"}},
        ParseRow{"no_colon", "alice\n", {}, {"line 1: not user:hash"}},
        ParseRow{"empty_name", ":" + kAlice, {}, {"line 1: not user:hash"}},
        ParseRow{"duplicate_first_wins", "alice:" + kAlice + "\nalice:" + kCarol, {"alice"},
                 {"line 2: user \"alice\": listed again"}},
        ParseRow{"control_in_name", std::string("al\x01ice:") + kAlice, {},
                 {"line 1: the user name has control characters"}}),
    [](const ::testing::TestParamInfo<ParseRow>& i) { return i.param.name; });

TEST(BasicCredentials, DecodesUserAndPassword) {
  // "alice:open sesame", "carol:s3cret:with:colons" (the password keeps its colons)
  auto a = basic_credentials("Basic YWxpY2U6b3BlbiBzZXNhbWU=");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->first, "alice");
  EXPECT_EQ(a->second, "open sesame");
  auto c = basic_credentials("basic Y2Fyb2w6czNjcmV0OndpdGg6Y29sb25z");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->first, "carol");
  EXPECT_EQ(c->second, "s3cret:with:colons");
  EXPECT_FALSE(basic_credentials("Bearer YWxpY2U6b3BlbiBzZXNhbWU="));
  EXPECT_FALSE(basic_credentials("Basic YWxpY2U"));        // not base64 with padding
  EXPECT_FALSE(basic_credentials("Basic bm9jb2xvbg=="));    // "nocolon"
  EXPECT_FALSE(basic_credentials("Basic"));
}

std::vector<snapshot::BasicAuthUser> users() {
  return {{"alice", kAlice}, {"carol", kCarol}, {"dave", kDave}};
}

TEST(BasicAuthVerifier, VerifiesEachSchemeAndRefusesWrongPasswords) {
  BasicAuthVerifier v(users());
  EXPECT_EQ(v.verify("alice", "open sesame"), 0u);
  EXPECT_EQ(v.verify("carol", "s3cret:with:colons"), 1u);
  EXPECT_EQ(v.verify("dave", "pässword"), 2u);
  EXPECT_FALSE(v.verify("alice", "open sesame!"));
  EXPECT_FALSE(v.verify("alice", ""));
  EXPECT_FALSE(v.verify("carol", "s3cret"));
  EXPECT_FALSE(v.verify("dave", "password"));
  EXPECT_FALSE(v.verify("nobody", "open sesame"));
  EXPECT_FALSE(v.verify("alice", std::string("open sesame\0x", 13)));  // a NUL never verifies
  EXPECT_FALSE(v.verify("carol", "open sesame"));  // alice's password is not carol's
}

TEST(BasicAuthVerifier, RemembersSuccessesOnlyAndIsBounded) {
  BasicAuthVerifier v(users(), 32);
  ASSERT_TRUE(v.verify("alice", "open sesame"));
  auto s1 = v.stats();
  ASSERT_TRUE(v.verify("alice", "open sesame"));
  ASSERT_TRUE(v.verify("alice", "open sesame"));
  auto s2 = v.stats();
  EXPECT_EQ(s2.crypt_calls, s1.crypt_calls);  // hits cost no crypt
  EXPECT_EQ(s2.remembered_hits, s1.remembered_hits + 2);
  // A failure is never remembered: each one runs crypt again.
  EXPECT_FALSE(v.verify("alice", "nope"));
  EXPECT_FALSE(v.verify("alice", "nope"));
  EXPECT_EQ(v.stats().crypt_calls, s2.crypt_calls + 2);
  // An unknown user costs a crypt too (no user-name oracle by timing).
  EXPECT_FALSE(v.verify("eve", "x"));
  EXPECT_EQ(v.stats().crypt_calls, s2.crypt_calls + 3);
}

TEST(BasicAuthVerifier, ConcurrentVerificationsAgree) {
  BasicAuthVerifier v(users());
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, bad{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        if (v.verify("carol", "s3cret:with:colons")) ++ok;
        if (!v.verify("carol", "wrong")) ++bad;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 80);
  EXPECT_EQ(bad.load(), 80);
}

}  // namespace
}  // namespace gantry::filters
