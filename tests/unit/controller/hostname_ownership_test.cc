// Table-driven tests of hostname ownership: decide_hostname_ownership() on
// claims, parse_hostname_owners() on ConfigMap text, and translate() with
// routes of several namespaces.
#include "controller/core/hostname_ownership.h"

#include <gtest/gtest.h>

#include "controller/core/translate.h"
#include "tests/unit/controller/test_util.h"

namespace gantry::controller {
namespace {

// "ns/name@ts:host,host" per claim; verdict "kept|refused" per claim.
struct Case {
  const char* name;
  std::vector<HostnameClaim> claims;
  std::map<std::string, std::vector<std::string>> allowed;
  std::vector<std::string> want;  // per claim: "kept=a,b refused=c"
  std::vector<std::string> want_owner_in_message = {};  // per claim: a word each refusal must name
};

HostnameClaim gr(const std::string& ns, const std::string& name, int64_t ts,
                 std::vector<std::string> hosts) {
  return {"GatewayRoute", ns, name, ts, std::move(hosts)};
}
HostnameClaim ing(const std::string& ns, const std::string& name, int64_t ts,
                  std::vector<std::string> hosts) {
  return {"Ingress", ns, name, ts, std::move(hosts)};
}

std::string render(const HostnameVerdict& v) {
  std::string out = "kept=";
  for (size_t i = 0; i < v.kept.size(); ++i) out += (i ? "," : "") + (v.kept[i].empty() ? "*" : v.kept[i]);
  out += " refused=";
  for (size_t i = 0; i < v.refused.size(); ++i)
    out += (i ? "," : "") + (v.refused[i].hostname.empty() ? "*" : v.refused[i].hostname);
  return out;
}

class Ownership : public ::testing::TestWithParam<Case> {};

TEST_P(Ownership, Verdicts) {
  const Case& c = GetParam();
  HostnameOwners owners{c.allowed, "ConfigMap gantry-system/gantry-hostname-owners"};
  auto verdicts = decide_hostname_ownership(c.claims, owners);
  ASSERT_EQ(verdicts.size(), c.claims.size());
  for (size_t i = 0; i < verdicts.size(); ++i) {
    EXPECT_EQ(render(verdicts[i]), c.want[i]) << "claim " << i << " (" << c.claims[i].namespace_ << "/"
                                              << c.claims[i].name << ")";
    if (i < c.want_owner_in_message.size()) {
      for (const auto& r : verdicts[i].refused) {
        EXPECT_NE(r.message.find(c.want_owner_in_message[i]), std::string::npos) << r.message;
      }
    }
  }
  // The verdicts do not depend on the order the claims come in.
  std::vector<HostnameClaim> reversed(c.claims.rbegin(), c.claims.rend());
  auto again = decide_hostname_ownership(reversed, owners);
  for (size_t i = 0; i < again.size(); ++i)
    EXPECT_EQ(render(again[i]), c.want[c.claims.size() - 1 - i]) << "reversed claim " << i;
}

const Case kCases[] = {
    {"older_namespace_owns_exact_host",
     {gr("a", "shop", 100, {"shop.example.com"}), gr("b", "login", 200, {"shop.example.com"})},
     {},
     {"kept=shop.example.com refused=", "kept= refused=shop.example.com"},
     {"", "namespace a (GatewayRoute a/shop"}},
    {"newer_more_specific_route_never_wins",  // precedence plays no part: age decides
     {gr("b", "login", 200, {"shop.example.com"}), gr("a", "shop", 100, {"shop.example.com"})},
     {},
     {"kept= refused=shop.example.com", "kept=shop.example.com refused="}},
    {"same_namespace_shares",
     {gr("a", "shop", 100, {"shop.example.com"}), gr("a", "api", 200, {"shop.example.com"}),
      ing("a", "legacy", 300, {"shop.example.com"})},
     {},
     {"kept=shop.example.com refused=", "kept=shop.example.com refused=", "kept=shop.example.com refused="}},
    {"other_hostnames_keep_working",
     {gr("a", "shop", 100, {"shop.example.com"}), gr("b", "both", 200, {"b.example.com", "shop.example.com"})},
     {},
     {"kept=shop.example.com refused=", "kept=b.example.com refused=shop.example.com"}},
    {"tie_on_timestamp_broken_by_namespace_then_name",
     {gr("b", "a", 100, {"x.example.com"}), gr("a", "z", 100, {"x.example.com"})},
     {},
     {"kept= refused=x.example.com", "kept=x.example.com refused="},
     {"namespace a (GatewayRoute a/z"}},
    {"ingress_and_gatewayroute_compete",
     {ing("a", "web", 100, {"shop.example.com"}), gr("b", "shop", 200, {"shop.example.com"})},
     {},
     {"kept=shop.example.com refused=", "kept= refused=shop.example.com"},
     {"", "Ingress a/web"}},
    {"wildcard_covers_names_below_it",
     {gr("a", "wild", 100, {"*.example.com"}), gr("b", "x", 200, {"x.example.com"}),
      gr("b", "deep", 300, {"x.y.example.com"}), gr("b", "sub", 400, {"*.y.example.com"})},
     {},
     {"kept=*.example.com refused=", "kept= refused=x.example.com", "kept= refused=x.y.example.com",
      "kept= refused=*.y.example.com"},
     {"", "under its wildcard *.example.com", "*.example.com", "*.example.com"}},
    {"older_exact_name_survives_a_newer_wildcard",
     {gr("b", "x", 100, {"x.example.com"}), gr("a", "wild", 200, {"*.example.com"})},
     {},
     {"kept=x.example.com refused=", "kept=*.example.com refused="}},
    {"most_specific_covering_wildcard_decides",
     {gr("b", "y", 100, {"*.y.example.com"}), gr("a", "wild", 200, {"*.example.com"}),
      gr("b", "x", 300, {"x.y.example.com"}), gr("a", "x", 400, {"x.y.example.com"})},
     {},
     {"kept=*.y.example.com refused=", "kept=*.example.com refused=", "kept=x.y.example.com refused=",
      "kept= refused=x.y.example.com"}},
    {"wildcard_does_not_cover_its_parent",
     {gr("a", "wild", 100, {"*.example.com"}), gr("b", "apex", 200, {"example.com"})},
     {},
     {"kept=*.example.com refused=", "kept=example.com refused="}},
    {"catch_all_belongs_to_one_namespace",
     {gr("a", "default", 100, {""}), gr("b", "default", 200, {""}), gr("b", "host", 300, {"b.example.com"})},
     {},
     {"kept=* refused=", "kept= refused=*", "kept=b.example.com refused="},
     {"", "the catch-all"}},
    {"operator_assignment_wins_over_age",
     {gr("b", "early", 100, {"shop.example.com"}), gr("a", "late", 200, {"shop.example.com"})},
     {{"shop.example.com", {"a"}}},
     {"kept= refused=shop.example.com", "kept=shop.example.com refused="},
     {"ConfigMap gantry-system/gantry-hostname-owners"}},
    {"operator_assigns_several_namespaces_and_wildcards",
     {gr("a", "one", 100, {"x.shared.example"}), gr("c", "two", 200, {"y.shared.example"}),
      gr("b", "three", 300, {"z.shared.example"}), gr("b", "other", 50, {"other.example"})},
     {{"*.shared.example", {"a", "c"}}},
     {"kept=x.shared.example refused=", "kept=y.shared.example refused=", "kept= refused=z.shared.example",
      "kept=other.example refused="},
     {"", "", "namespaces a, c"}},
    {"a_listed_exact_entry_beats_a_listed_wildcard",
     {gr("b", "x", 100, {"x.shared.example"}), gr("a", "y", 200, {"y.shared.example"})},
     {{"*.shared.example", {"a"}}, {"x.shared.example", {"b"}}},
     {"kept=x.shared.example refused=", "kept=y.shared.example refused="}},
    {"a_refused_claim_owns_nothing",  // b is refused x; c's later claim meets a, not b
     {gr("a", "x", 100, {"x.example.com"}), gr("b", "x", 200, {"x.example.com"}),
      gr("c", "x", 300, {"x.example.com"})},
     {},
     {"kept=x.example.com refused=", "kept= refused=x.example.com", "kept= refused=x.example.com"},
     {"", "namespace a", "namespace a"}},
    {"duplicates_in_one_route_count_once",
     {gr("a", "x", 100, {"x.example.com", "x.example.com"})},
     {},
     {"kept=x.example.com refused="}},
};

INSTANTIATE_TEST_SUITE_P(Table, Ownership, ::testing::ValuesIn(kCases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Ownership, OwnershipMovesWhenTheOwnersRoutesAreDeleted) {
  std::vector<HostnameClaim> claims = {gr("a", "one", 100, {"x.example.com"}),
                                       gr("a", "two", 150, {"x.example.com"}),
                                       gr("b", "x", 200, {"x.example.com"})};
  EXPECT_EQ(render(decide_hostname_ownership(claims, {})[2]), "kept= refused=x.example.com");
  claims.erase(claims.begin());  // a's oldest route goes; its other one still holds x
  EXPECT_EQ(render(decide_hostname_ownership(claims, {})[1]), "kept= refused=x.example.com");
  claims.erase(claims.begin());  // a has no route left naming x
  EXPECT_EQ(render(decide_hostname_ownership(claims, {})[0]), "kept=x.example.com refused=");
}

struct ParseCase {
  const char* text;
  std::map<std::string, std::vector<std::string>> want;  // empty with error
  const char* error;                                     // substring, or nullptr
};

class ParseOwners : public ::testing::TestWithParam<ParseCase> {};

TEST_P(ParseOwners, Text) {
  const ParseCase& c = GetParam();
  auto r = parse_hostname_owners(c.text);
  if (c.error) {
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_NE(r.error().message.find(c.error), std::string::npos) << r.error().message;
  } else {
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->allowed, c.want);
  }
}

const ParseCase kParseCases[] = {
    {"", {}, nullptr},
    {"# only a comment\n\n", {}, nullptr},
    {"shop.example.com team-a\n", {{"shop.example.com", {"team-a"}}}, nullptr},
    {"Shop.Example.COM  team-a, team-b  # two\r\n*.int.example\tplat\n",
     {{"shop.example.com", {"team-a", "team-b"}}, {"*.int.example", {"plat"}}},
     nullptr},
    {"x.example a,a\n", {{"x.example", {"a"}}}, nullptr},
    {"x.example\n", {}, "line 1: x.example names no namespace"},
    {"ok.example a\nbad_host a\n", {}, "line 2"},
    {"a.*.example a\n", {}, "not a hostname"},
    {"x.example Team_A\n", {}, "not a namespace name"},
    {"x.example a\nX.example b\n", {}, "listed twice"},
    {"* a\n", {}, "not a hostname"},
};

INSTANTIATE_TEST_SUITE_P(Table, ParseOwners, ::testing::ValuesIn(kParseCases));

// Through translate(): statuses, served hostnames, certificates.
constexpr std::string_view kTwoTeams = R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: team-a}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: team-b}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: gantry.dev/v1alpha1
kind: GatewayRoute
metadata: {name: shop, namespace: team-a, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  hostnames: [shop.example.com]
  rules: [{backendRefs: [{name: web, port: 80}]}]
---
apiVersion: gantry.dev/v1alpha1
kind: GatewayRoute
metadata: {name: steal, namespace: team-b, creationTimestamp: "2024-02-01T00:00:00Z"}
spec:
  hostnames: [shop.example.com, b.example.com]
  rules:
  - matches: [{path: {type: Exact, value: /login}}]
    backendRefs: [{name: web, port: 80}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: steal-too, namespace: team-b, creationTimestamp: "2024-03-01T00:00:00Z"}
spec:
  ingressClassName: gantry
  rules:
  - host: shop.example.com
    http: {paths: [{path: /admin, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}
)";

TEST(OwnershipTranslate, ForeignClaimsAreRefusedAndOtherHostnamesServed) {
  Cache cache = testing::load(kTwoTeams);
  TranslateResult r = translate(cache, TranslateOptions{});
  EXPECT_EQ(testing::dump(r.statuses),
            "GatewayRoute team-a/shop Accepted=True ResolvedRefs=True\n"
            "GatewayRoute team-b/steal Accepted=False(HostnameConflict) ResolvedRefs=True\n"
            "Ingress team-b/steal-too Accepted=False(HostnameConflict) ResolvedRefs=True\n");
  std::string snap = testing::dump(r.snapshot);
  EXPECT_NE(snap.find("route team-a/shop (GatewayRoute) hosts=shop.example.com\n"), std::string::npos) << snap;
  EXPECT_NE(snap.find("route team-b/steal (GatewayRoute) hosts=b.example.com\n"), std::string::npos) << snap;
  EXPECT_EQ(snap.find("steal-too"), std::string::npos) << snap;  // its only host is refused: not served
  std::string msgs = testing::all_messages(r.statuses);
  EXPECT_NE(msgs.find("hostname shop.example.com belongs to namespace team-a (GatewayRoute team-a/shop"),
            std::string::npos)
      << msgs;

  // Off: every route is served, the newer exact /login included.
  TranslateOptions off;
  off.hostname_ownership = false;
  TranslateResult all = translate(cache, off);
  EXPECT_EQ(testing::dump(all.statuses),
            "GatewayRoute team-a/shop Accepted=True ResolvedRefs=True\n"
            "GatewayRoute team-b/steal Accepted=True ResolvedRefs=True\n"
            "Ingress team-b/steal-too Accepted=True ResolvedRefs=True\n");

  // The operator hands the hostname to team-b: now team-a is refused.
  TranslateOptions assigned;
  assigned.hostname_owners.allowed["shop.example.com"] = {"team-b"};
  TranslateResult moved = translate(cache, assigned);
  EXPECT_EQ(testing::dump(moved.statuses),
            "GatewayRoute team-a/shop Accepted=False(HostnameConflict) ResolvedRefs=True\n"
            "GatewayRoute team-b/steal Accepted=True ResolvedRefs=True\n"
            "Ingress team-b/steal-too Accepted=True ResolvedRefs=True\n");
  EXPECT_EQ(testing::dump(moved.snapshot).find("route team-a/shop"), std::string::npos);

  // Team a's route is deleted: the hostname is handed over.
  cache.erase("GatewayRoute", "team-a/shop");
  TranslateResult handed = translate(cache, TranslateOptions{});
  EXPECT_EQ(testing::dump(handed.statuses),
            "GatewayRoute team-b/steal Accepted=True ResolvedRefs=True\n"
            "Ingress team-b/steal-too Accepted=True ResolvedRefs=True\n");
}

TEST(OwnershipTranslate, AnInvalidOwnerRouteKeepsItsHostname) {
  std::string yaml(kTwoTeams);
  // Team a's route breaks (an unknown filter): it is not served, but team b
  // still may not take its hostname.
  auto at = yaml.find("rules: [{backendRefs: [{name: web, port: 80}]}]");
  yaml.replace(at, std::string("rules: [{backendRefs: [{name: web, port: 80}]}]").size(),
               "rules: [{filters: {noSuchFilter: {}}, backendRefs: [{name: web, port: 80}]}]");
  TranslateResult r = translate(testing::load(yaml), TranslateOptions{});
  std::string statuses = testing::dump(r.statuses);
  EXPECT_NE(statuses.find("GatewayRoute team-a/shop Accepted=False(UnsupportedValue)"), std::string::npos) << statuses;
  EXPECT_NE(statuses.find("GatewayRoute team-b/steal Accepted=False(HostnameConflict)"), std::string::npos)
      << statuses;
  EXPECT_EQ(testing::dump(r.snapshot).find("shop.example.com"), std::string::npos);
}

}  // namespace
}  // namespace gantry::controller
