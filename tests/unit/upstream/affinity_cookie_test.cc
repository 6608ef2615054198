// The affinity cookie's attributes (proxy/upstream/affinity_cookie.h): the
// defaults gantry always sent, each snapshot attribute, Secure over TLS, and
// SameSite=None left out for the user agents ingress-nginx knows reject it.
#include "proxy/upstream/affinity_cookie.h"

#include <gtest/gtest.h>

namespace gantry::upstream {
namespace {

namespace sn = gantry::snapshot;

sn::LoadBalancer cookie_lb() {
  sn::LoadBalancer lb;
  lb.type = sn::LoadBalancerType::kConsistentHash;
  lb.hash_on = sn::HashOn::kCookie;
  lb.hash_key = "route";
  return lb;
}

constexpr const char* kChrome120 =
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
constexpr const char* kChrome62 =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/62.0.3202.94 Safari/537.36";
constexpr const char* kIos12 =
    "Mozilla/5.0 (iPhone; CPU iPhone OS 12_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148";
constexpr const char* kMojaveSafari =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Safari/605.1.15";
constexpr const char* kMojaveChrome =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/90.0 Safari/537.36";

TEST(AffinityCookie, DefaultsArePathSlashAndHttpOnly) {
  sn::LoadBalancer lb = cookie_lb();
  EXPECT_EQ(affinity_cookie_attributes(lb, false, ""), "; Path=/; HttpOnly");
  EXPECT_EQ(affinity_cookie_attributes(lb, true, kChrome120), "; Path=/; HttpOnly");
  lb.cookie_ttl = sn::Millis(600000);
  EXPECT_EQ(affinity_cookie_attributes(lb, false, ""), "; Path=/; HttpOnly; Max-Age=600");
  lb.cookie_ttl = sn::Millis(10);  // never 0: that would delete the cookie at once
  EXPECT_EQ(affinity_cookie_attributes(lb, false, ""), "; Path=/; HttpOnly; Max-Age=1");
}

TEST(AffinityCookie, EveryAttribute) {
  sn::LoadBalancer lb = cookie_lb();
  lb.cookie_path = "/app";
  lb.cookie_domain = ".example.com";
  lb.cookie_ttl = sn::Millis(3600000);
  lb.cookie_secure = sn::CookieSecure::kAlways;
  lb.cookie_same_site = "Strict";
  EXPECT_EQ(affinity_cookie_attributes(lb, false, ""),
            "; Path=/app; Domain=.example.com; HttpOnly; Max-Age=3600; Secure; SameSite=Strict");
}

TEST(AffinityCookie, SecureOverTlsOnlyWhenTheRequestCameOverTls) {
  sn::LoadBalancer lb = cookie_lb();
  lb.cookie_secure = sn::CookieSecure::kOverTls;
  EXPECT_EQ(affinity_cookie_attributes(lb, false, ""), "; Path=/; HttpOnly");
  EXPECT_EQ(affinity_cookie_attributes(lb, true, ""), "; Path=/; HttpOnly; Secure");
}

TEST(AffinityCookie, SameSiteNoneLeftOutForIncompatibleClientsOnlyWhenAsked) {
  sn::LoadBalancer lb = cookie_lb();
  lb.cookie_same_site = "None";
  EXPECT_EQ(affinity_cookie_attributes(lb, true, kChrome62), "; Path=/; HttpOnly; SameSite=None");
  lb.cookie_same_site_none_if_compatible = true;
  for (const char* ua : {kChrome62, kIos12, kMojaveSafari})
    EXPECT_EQ(affinity_cookie_attributes(lb, true, ua), "; Path=/; HttpOnly") << ua;
  for (const char* ua : {kChrome120, kMojaveChrome, ""})
    EXPECT_EQ(affinity_cookie_attributes(lb, true, ua), "; Path=/; HttpOnly; SameSite=None") << ua;
  lb.cookie_same_site = "Lax";  // only None is conditional
  EXPECT_EQ(affinity_cookie_attributes(lb, true, kChrome62), "; Path=/; HttpOnly; SameSite=Lax");
}

TEST(AffinityCookie, IncompatibleUserAgents) {
  EXPECT_FALSE(same_site_none_compatible(kChrome62));
  EXPECT_FALSE(same_site_none_compatible("Mozilla/5.0 (iPad; CPU OS 12_0 like Mac OS X)"));
  EXPECT_TRUE(same_site_none_compatible(kChrome120));
  EXPECT_TRUE(same_site_none_compatible("curl/8.5.0"));
}

}  // namespace
}  // namespace gantry::upstream
