// Tests of Cache-Control parsing and the cache's storage policy
// (proxy/filters/cache_control.h): parser rows, request policy rows, and a
// cacheability/TTL table of responses.
#include "proxy/filters/cache_control.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace gantry::filters {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

struct ParseCase {
  std::string in;
  CacheControl want;
};

CacheControl cc(std::function<void(CacheControl&)> f) {
  CacheControl c;
  f(c);
  return c;
}

TEST(CacheControl, Parse) {
  const std::vector<ParseCase> rows = {
      {"", {}},
      {"no-store", cc([](auto& c) { c.no_store = true; })},
      {"No-Cache, PRIVATE", cc([](auto& c) { c.no_cache = c.private_ = true; })},
      {"public, max-age=60", cc([](auto& c) {
         c.public_ = true;
         c.max_age = 60;
       })},
      {"s-maxage=30, max-age=10", cc([](auto& c) {
         c.s_maxage = 30;
         c.max_age = 10;
       })},
      {"max-age=\"15\"", cc([](auto& c) { c.max_age = 15; })},
      {"max-age=10, max-age=20", cc([](auto& c) { c.max_age = 10; })},  // first wins
      {"max-age=abc", cc([](auto& c) { c.max_age = 0; })},              // invalid: stale
      {"max-age=-1", cc([](auto& c) { c.max_age = 0; })},
      {"max-age", cc([](auto& c) { c.max_age = 0; })},
      {"max-age=99999999999999999999", cc([](auto& c) { c.max_age = kMaxDeltaSeconds; })},
      {"private=\"Set-Cookie, X-A\", max-age=5", cc([](auto& c) {
         c.private_ = true;
         c.max_age = 5;
       })},
      {"no-cache=\"a,b\"", cc([](auto& c) { c.no_cache = true; })},
      {"  must-revalidate ,,, only-if-cached ",
       cc([](auto& c) { c.must_revalidate = c.only_if_cached = true; })},
      {"proxy-revalidate", cc([](auto& c) { c.must_revalidate = true; })},
      {"x-unknown=1, immutable, stale-while-revalidate=30", {}},
      {"max-age = 7", cc([](auto& c) { c.max_age = 7; })},
  };
  for (const auto& r : rows) {
    CacheControl got;
    parse_cache_control(r.in, got);
    EXPECT_EQ(got, r.want) << "\"" << r.in << "\"";
  }
}

TEST(CacheControl, SeveralFieldsMerge) {
  std::vector<http::Header> h = {
      {"Cache-Control", "public"}, {"X", "y"}, {"cache-control", "max-age=9"}};
  CacheControl c = cache_control_of(h);
  EXPECT_TRUE(c.public_);
  EXPECT_EQ(c.max_age, 9u);
}

struct RequestCase {
  std::string method;
  std::vector<http::Header> headers;
  bool lookup, store;
};

TEST(CacheControl, RequestPolicy) {
  const std::vector<RequestCase> rows = {
      {"GET", {}, true, true},
      {"HEAD", {}, true, true},
      {"POST", {}, false, false},
      {"PUT", {}, false, false},
      {"GET", {{"Cache-Control", "no-store"}}, false, false},
      {"GET", {{"Cache-Control", "no-cache"}}, false, true},
      {"GET", {{"Cache-Control", "max-age=0"}}, false, true},
      {"GET", {{"Cache-Control", "max-age=5"}}, true, true},
      {"GET", {{"Pragma", "no-cache"}}, false, true},
      {"GET", {{"Pragma", "no-cache"}, {"Cache-Control", "max-age=5"}}, true, true},
      {"GET", {{"Authorization", "Bearer x"}}, true, true},
  };
  for (const auto& r : rows) {
    RequestCachePolicy p = request_policy(r.method, r.headers);
    EXPECT_EQ(p.lookup, r.lookup) << r.method << " "
                                  << (r.headers.empty() ? "" : r.headers[0].value);
    EXPECT_EQ(p.store, r.store) << r.method << " " << (r.headers.empty() ? "" : r.headers[0].value);
  }
}

struct TtlCase {
  std::string name;
  int status;
  std::vector<http::Header> headers;
  bool authorization;
  std::optional<milliseconds> want;
};

class Cacheability : public ::testing::TestWithParam<TtlCase> {};

TEST_P(Cacheability, Ttl) {
  const auto& c = GetParam();
  snapshot::Cache config;
  config.ttl = milliseconds(60000);
  auto got = response_ttl(config, c.authorization, c.status, c.headers);
  EXPECT_EQ(got.has_value(), c.want.has_value());
  if (got && c.want) {
    EXPECT_EQ(got->count(), c.want->count());
  }
}

const std::optional<milliseconds> kRouteTtl = milliseconds(60000);
const std::optional<milliseconds> kNever = std::nullopt;
std::optional<milliseconds> s(int n) { return milliseconds(n * 1000); }

INSTANTIATE_TEST_SUITE_P(
    Cache, Cacheability,
    ::testing::Values(
        TtlCase{"Plain200", 200, {}, false, kRouteTtl},
        TtlCase{"Plain203", 203, {}, false, kRouteTtl},
        TtlCase{"Plain204", 204, {}, false, kRouteTtl},
        TtlCase{"Plain300", 300, {}, false, kRouteTtl},
        TtlCase{"Plain301", 301, {}, false, kRouteTtl},
        TtlCase{"Plain404", 404, {}, false, kRouteTtl},
        TtlCase{"Plain410", 410, {}, false, kRouteTtl}, TtlCase{"Plain302", 302, {}, false, kNever},
        TtlCase{"Plain500", 500, {}, false, kNever}, TtlCase{"Plain503", 503, {}, false, kNever},
        TtlCase{"Explicit302", 302, {{"Cache-Control", "max-age=10"}}, false, s(10)},
        TtlCase{"Explicit500", 500, {{"Cache-Control", "s-maxage=5"}}, false, s(5)},
        TtlCase{"Partial206", 206, {{"Cache-Control", "max-age=10"}}, false, kNever},
        TtlCase{"NotModified304", 304, {{"Cache-Control", "max-age=10"}}, false, kNever},
        TtlCase{"Informational100", 100, {}, false, kNever},
        TtlCase{"MaxAge", 200, {{"Cache-Control", "max-age=30"}}, false, s(30)},
        TtlCase{"SMaxAgeBeatsMaxAge",
                200,
                {{"Cache-Control", "max-age=30, s-maxage=90"}},
                false,
                s(90)},
        TtlCase{"MaxAgeZero", 200, {{"Cache-Control", "max-age=0"}}, false, kNever},
        TtlCase{"NoStore", 200, {{"Cache-Control", "no-store, max-age=30"}}, false, kNever},
        TtlCase{"Private", 200, {{"Cache-Control", "private, max-age=30"}}, false, kNever},
        TtlCase{"NoCache", 200, {{"Cache-Control", "no-cache"}}, false, kNever},
        TtlCase{"SetCookie", 200, {{"Set-Cookie", "a=b"}}, false, kNever},
        TtlCase{"SetCookieEvenIfPublic",
                200,
                {{"Cache-Control", "public, max-age=9"}, {"set-cookie", "a=b"}},
                false,
                kNever},
        TtlCase{"VaryStar", 200, {{"Vary", "Accept, *"}}, false, kNever},
        TtlCase{"VaryAcceptIsFine", 200, {{"Vary", "Accept-Encoding"}}, false, kRouteTtl},
        TtlCase{"AuthorizationPlain", 200, {}, true, kNever},
        TtlCase{"AuthorizationMaxAgeOnly", 200, {{"Cache-Control", "max-age=30"}}, true, kNever},
        TtlCase{"AuthorizationPublic", 200, {{"Cache-Control", "public"}}, true, kRouteTtl},
        TtlCase{"AuthorizationSMaxAge", 200, {{"Cache-Control", "s-maxage=20"}}, true, s(20)},
        TtlCase{"AuthorizationMustRevalidate",
                200,
                {{"Cache-Control", "must-revalidate, max-age=7"}},
                true,
                s(7)},
        TtlCase{"CaseInsensitiveDirectives", 200, {{"cache-control", "NO-STORE"}}, false, kNever},
        TtlCase{"PublicUsesRouteTtl", 200, {{"Cache-Control", "public"}}, false, kRouteTtl}),
    [](const auto& info) { return info.param.name; });

TEST(CacheControl, RouteTtlBelowASecondIsKept) {
  snapshot::Cache config;
  config.ttl = milliseconds(500);
  auto got = response_ttl(config, false, 200, {});
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->count(), 500);
  config.ttl = milliseconds(0);
  EXPECT_FALSE(response_ttl(config, false, 200, {}).has_value());
}

}  // namespace
}  // namespace gantry::filters
