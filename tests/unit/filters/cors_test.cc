// Tests of the CORS policy (proxy/filters/cors.h): a table of requests
// against a few policies, each row naming the action and the exact headers.
#include "proxy/filters/cors.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace gantry::filters {
namespace {

using std::chrono::milliseconds;
using Headers = std::map<std::string, std::string>;

snapshot::Cors shop() {
  snapshot::Cors c;
  c.allow_origins = {"https://shop.example.com", "https://*.example.org", "*.example.net",
                     "partner.example.io:8443"};
  c.allow_methods = {"GET", "POST", "PUT"};
  c.allow_headers = {"Content-Type", "X-Request-Id"};
  c.expose_headers = {"X-Total-Count"};
  c.allow_credentials = true;
  c.max_age = milliseconds(600000);
  return c;
}

snapshot::Cors open_any() {
  snapshot::Cors c;
  c.allow_origins = {"*"};
  return c;
}

snapshot::Cors any_with_credentials() {
  snapshot::Cors c;
  c.allow_origins = {"*"};
  c.allow_methods = {"*"};
  c.allow_headers = {"*"};
  c.allow_credentials = true;
  return c;
}

struct CorsCase {
  std::string name;
  snapshot::Cors policy;
  CorsRequest request;
  CorsAction action;
  Headers headers;
};

class CorsTable : public ::testing::TestWithParam<CorsCase> {};

TEST_P(CorsTable, Decides) {
  const auto& c = GetParam();
  auto p = CorsPolicy::create(c.policy);
  ASSERT_TRUE(p.ok()) << p.error().message;
  CorsDecision d = p->evaluate(c.request);
  EXPECT_EQ(static_cast<int>(d.action), static_cast<int>(c.action));
  Headers got;
  for (const auto& h : d.headers()) {
    EXPECT_TRUE(got.emplace(std::string(h.name), std::string(h.value)).second)
        << "duplicate " << h.name;
  }
  EXPECT_EQ(got, c.headers);
}

const std::string kAO = "Access-Control-Allow-Origin";
const std::string kAC = "Access-Control-Allow-Credentials";
const std::string kAM = "Access-Control-Allow-Methods";
const std::string kAH = "Access-Control-Allow-Headers";
const std::string kMA = "Access-Control-Max-Age";
const std::string kEH = "Access-Control-Expose-Headers";

CorsRequest get(std::string_view origin) { return {"GET", origin, std::nullopt, std::nullopt}; }
CorsRequest preflight(std::string_view origin, std::string_view method,
                      std::optional<std::string_view> headers = std::nullopt) {
  return {"OPTIONS", origin, method, headers};
}

Headers shop_preflight(const std::string& origin) {
  return {{kAO, origin},
          {kAC, "true"},
          {kAM, "GET, POST, PUT"},
          {kAH, "Content-Type, X-Request-Id"},
          {kMA, "600"},
          {kEH, "X-Total-Count"},  // on the preflight too (Gateway API conformance)
          {"Vary", "Origin"}};
}
Headers shop_simple(const std::string& origin) {
  return {{kAO, origin}, {kAC, "true"}, {kEH, "X-Total-Count"}, {"Vary", "Origin"}};
}
const Headers kVaryOnly = {{"Vary", "Origin"}};

INSTANTIATE_TEST_SUITE_P(
    Cors, CorsTable,
    ::testing::Values(
        CorsCase{"NoOriginIsNotCors",
                 shop(),
                 {"GET", std::nullopt, std::nullopt, std::nullopt},
                 CorsAction::kNotCors,
                 {}},
        CorsCase{"ExactOriginSimple", shop(), get("https://shop.example.com"), CorsAction::kForward,
                 shop_simple("https://shop.example.com")},
        CorsCase{"ExactOriginIsCaseInsensitive", shop(), get("HTTPS://Shop.Example.com"),
                 CorsAction::kForward, shop_simple("HTTPS://Shop.Example.com")},
        CorsCase{"ExactOriginWrongScheme", shop(), get("http://shop.example.com"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"ExactOriginWithPortDiffers", shop(), get("https://shop.example.com:8443"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"UnknownOrigin", shop(), get("https://evil.example"), CorsAction::kForward,
                 kVaryOnly},
        CorsCase{"SchemedWildcardSubdomain", shop(), get("https://api.example.org"),
                 CorsAction::kForward, shop_simple("https://api.example.org")},
        CorsCase{"SchemedWildcardDeepSubdomain", shop(), get("https://a.b.example.org"),
                 CorsAction::kForward, shop_simple("https://a.b.example.org")},
        CorsCase{"SchemedWildcardOtherScheme", shop(), get("http://api.example.org"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"WildcardNeverMatchesApex", shop(), get("https://example.org"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"WildcardSuffixMustBeALabel", shop(), get("https://evilexample.org"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"WildcardRejectsSuffixInPath", shop(), get("https://evil.com/.example.org"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"WildcardRejectsPortUnlessListed", shop(), get("https://api.example.org:444"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"BareWildcardAnyHttpScheme", shop(), get("http://x.example.net"),
                 CorsAction::kForward, shop_simple("http://x.example.net")},
        CorsCase{"BareWildcardNotOtherSchemes", shop(), get("ftp://x.example.net"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"HostEntryWithPort", shop(), get("http://partner.example.io:8443"),
                 CorsAction::kForward, shop_simple("http://partner.example.io:8443")},
        CorsCase{"HostEntryWithoutThePort", shop(), get("https://partner.example.io"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"NullOriginNotListed", shop(), get("null"), CorsAction::kForward, kVaryOnly},
        CorsCase{"MalformedOrigin", shop(), get("https://shop.example.com\"x"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"PreflightAllowed", shop(),
                 preflight("https://shop.example.com", "PUT", "content-type, x-request-id"),
                 CorsAction::kPreflight, shop_preflight("https://shop.example.com")},
        CorsCase{"PreflightNoRequestHeaders", shop(), preflight("https://api.example.org", "POST"),
                 CorsAction::kPreflight, shop_preflight("https://api.example.org")},
        CorsCase{"PreflightDisallowedOrigin", shop(), preflight("https://evil.example", "GET"),
                 CorsAction::kRejectPreflight, kVaryOnly},
        CorsCase{"PreflightDisallowedMethod", shop(),
                 preflight("https://shop.example.com", "DELETE"), CorsAction::kRejectPreflight,
                 kVaryOnly},
        CorsCase{"PreflightMethodIsCaseSensitive", shop(),
                 preflight("https://shop.example.com", "put"), CorsAction::kRejectPreflight,
                 kVaryOnly},
        CorsCase{"PreflightDisallowedHeader", shop(),
                 preflight("https://shop.example.com", "GET", "Content-Type, X-Secret"),
                 CorsAction::kRejectPreflight, kVaryOnly},
        CorsCase{"OptionsWithoutRequestMethodIsNotPreflight",
                 shop(),
                 {"OPTIONS", "https://shop.example.com", std::nullopt, std::nullopt},
                 CorsAction::kForward,
                 shop_simple("https://shop.example.com")},
        CorsCase{"StarWithoutCredentialsSendsStar",
                 open_any(),
                 get("https://anyone.test"),
                 CorsAction::kForward,
                 {{kAO, "*"}}},
        CorsCase{"StarDefaultMethodsPreflight",
                 open_any(),
                 preflight("https://anyone.test", "HEAD"),
                 CorsAction::kPreflight,
                 {{kAO, "*"}, {kAM, "GET, HEAD, POST"}}},
        CorsCase{"StarDefaultMethodsRejectPut",
                 open_any(),
                 preflight("https://anyone.test", "PUT"),
                 CorsAction::kRejectPreflight,
                 {}},
        CorsCase{"StarAllowsNullWithoutCredentials",
                 open_any(),
                 get("null"),
                 CorsAction::kForward,
                 {{kAO, "*"}}},
        CorsCase{"StarWithCredentialsEchoesNeverStar",
                 any_with_credentials(),
                 get("https://anyone.test"),
                 CorsAction::kForward,
                 {{kAO, "https://anyone.test"}, {kAC, "true"}, {"Vary", "Origin"}}},
        CorsCase{"StarWithCredentialsRefusesNull", any_with_credentials(), get("null"),
                 CorsAction::kForward, kVaryOnly},
        CorsCase{"StarMethodsAndHeadersAreEchoed",
                 any_with_credentials(),
                 preflight("https://anyone.test", "PATCH", "X-A, X-B"),
                 CorsAction::kPreflight,
                 {{kAO, "https://anyone.test"},
                  {kAC, "true"},
                  {kAM, "PATCH"},
                  {kAH, "X-A, X-B"},
                  {"Vary", "Origin"}}}),
    [](const auto& info) { return info.param.name; });

TEST(CorsPolicy, CreateRejectsBadOrigins) {
  for (const char* bad :
       {"", "https://*.a.*.com", "https://a*.example.com", "a b", "x,y", "https://", "://x"}) {
    snapshot::Cors c;
    c.allow_origins = {bad};
    EXPECT_FALSE(CorsPolicy::create(c).ok()) << "\"" << bad << "\"";
  }
  snapshot::Cors c;
  c.allow_origins = {"null", "*.x.com", "https://*.x.com:8443", "http://[::1]:8080"};
  auto p = CorsPolicy::create(c);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->origin_allowed("http://[::1]:8080"));
  EXPECT_TRUE(p->origin_allowed("https://a.x.com:8443"));
  EXPECT_TRUE(p->origin_allowed("null"));
}

}  // namespace
}  // namespace gantry::filters
