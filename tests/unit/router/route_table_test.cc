// Tests of RouteTable: the matching contract of GATEWAYROUTE.md ("Matching").
//
// Most cases are one table: routes in, one request, the winning rule's label
// out ("" for 404). Every case runs twice, with the snapshot's routes in the
// given and in the reversed order, since precedence must never depend on it;
// each precedence tie-break is also given in both creation orders where age
// is not the point of the case.
#include "proxy/router/route_table.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace gantry::router {
namespace {

using snapshot::PathMatchType;
using snapshot::Route;
using snapshot::RouteMatch;
using snapshot::Rule;
using snapshot::ValueMatch;
using snapshot::ValueMatchType;

// ---------------------------------------------------------------- builders

struct M {
  RouteMatch m;
  M& method(std::string v) {
    m.method = std::move(v);
    return *this;
  }
  M& header(std::string n, std::string v) {
    m.headers.push_back({ValueMatchType::kExact, std::move(n), std::move(v)});
    return *this;
  }
  M& header_re(std::string n, std::string v) {
    m.headers.push_back({ValueMatchType::kRegularExpression, std::move(n), std::move(v)});
    return *this;
  }
  M& query(std::string n, std::string v) {
    m.query_params.push_back({ValueMatchType::kExact, std::move(n), std::move(v)});
    return *this;
  }
  M& query_re(std::string n, std::string v) {
    m.query_params.push_back({ValueMatchType::kRegularExpression, std::move(n), std::move(v)});
    return *this;
  }
  operator RouteMatch() const { return m; }  // NOLINT: builder
};

M path(PathMatchType t, std::string v) {
  M b;
  b.m.path = {t, std::move(v)};
  return b;
}
M prefix(std::string v) { return path(PathMatchType::kPathPrefix, std::move(v)); }
M exact(std::string v) { return path(PathMatchType::kExact, std::move(v)); }
M regex(std::string v) { return path(PathMatchType::kRegularExpression, std::move(v)); }

Rule rule(std::vector<RouteMatch> matches) {
  Rule r;
  r.matches = std::move(matches);
  r.backends = {{"default/svc:80", 1, ""}};
  return r;
}
Rule any_rule() { return rule({}); }

Route route(std::string name, std::vector<std::string> hosts, std::vector<Rule> rules,
            int64_t created = 100, std::string ns = "default") {
  Route r;
  r.namespace_ = std::move(ns);
  r.name = std::move(name);
  r.creation_timestamp = created;
  r.hostnames = std::move(hosts);
  r.rules = std::move(rules);
  return r;
}

struct Req {
  std::string host;
  std::string path = "/";
  std::string query;
  std::string method = "GET";
  std::vector<std::pair<std::string, std::string>> headers;  // lower-case names
};

std::optional<std::string_view> lookup_header(const void* ctx, std::string_view name) {
  const auto& headers = *static_cast<const std::vector<std::pair<std::string, std::string>>*>(ctx);
  for (const auto& [n, v] : headers) {
    if (n == name) return std::string_view(v);
  }
  return std::nullopt;
}

RequestView view(const Req& r) {
  RequestView v;
  v.host = r.host;
  v.path = r.path;
  v.query = r.query;
  v.method = r.method;
  v.headers_ctx = &r.headers;
  v.header = &lookup_header;
  return v;
}

std::shared_ptr<const RouteTable> build(std::vector<Route> routes) {
  auto snap = std::make_shared<snapshot::Snapshot>();
  snap->version = 1;
  snap->routes = std::move(routes);
  auto table = RouteTable::create(snap);
  EXPECT_TRUE(table.ok()) << (table.ok() ? "" : table.error().message);
  return table.ok() ? *table : nullptr;
}

std::string label(const Match& m) { return m.rule ? m.rule->route_label : ""; }

// ---------------------------------------------------------------- the table

struct Case {
  std::string name;
  std::vector<Route> routes;
  Req req;
  std::string want;  // route label of the winner; "" = 404
  std::optional<size_t> want_prefix_len = std::nullopt;
  std::optional<size_t> want_match_index = std::nullopt;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// A precedence tie-break: `winner` and `loser` differ only in the aspect under
// test. Two cases: winner older, and winner newer.
void both_ages(std::vector<Case>& cases, const std::string& name, Route winner, Route loser,
               Req req) {
  winner.name = "win";
  loser.name = "lose";
  for (bool winner_older : {true, false}) {
    winner.creation_timestamp = winner_older ? 100 : 200;
    loser.creation_timestamp = winner_older ? 200 : 100;
    cases.push_back({name + (winner_older ? "_winner_older" : "_winner_newer"),
                     {winner, loser},
                     req,
                     "default/win#0"});
  }
}

std::vector<Case> cases() {
  std::vector<Case> c;
  const std::vector<std::string> any;

  // ------------------------------------------------------------ hosts
  c.push_back({"host_exact",
               {route("a", {"shop.example.com"}, {any_rule()})},
               {.host = "shop.example.com"},
               "default/a#0"});
  c.push_back({"host_exact_other_host_404",
               {route("a", {"shop.example.com"}, {any_rule()})},
               {.host = "shop.example.org"},
               ""});
  c.push_back({"host_wildcard_one_label",
               {route("w", {"*.example.com"}, {any_rule()})},
               {.host = "a.example.com"},
               "default/w#0"});
  c.push_back({"host_wildcard_two_labels",
               {route("w", {"*.example.com"}, {any_rule()})},
               {.host = "a.b.example.com"},
               "default/w#0"});
  c.push_back({"host_wildcard_never_apex",
               {route("w", {"*.example.com"}, {any_rule()})},
               {.host = "example.com"},
               ""});
  c.push_back({"host_wildcard_not_partial_label",
               {route("w", {"*.example.com"}, {any_rule()})},
               {.host = "aexample.com"},
               ""});
  c.push_back({"host_no_hostnames_any_host",
               {route("c", any, {any_rule()})},
               {.host = "whatever.test"},
               "default/c#0"});
  c.push_back({"host_no_hostnames_empty_host",
               {route("c", any, {any_rule()})},
               {.host = ""},
               "default/c#0"});
  c.push_back({"host_with_hostnames_empty_host_404",
               {route("a", {"a.test"}, {any_rule()})},
               {.host = ""},
               ""});
  c.push_back({"host_second_of_several",
               {route("a", {"x.test", "*.y.test"}, {any_rule()})},
               {.host = "q.y.test"},
               "default/a#0"});
  c.push_back({"host_route_hostname_upper_case",
               {route("a", {"Shop.Example.COM"}, {any_rule()})},
               {.host = "shop.example.com"},
               "default/a#0"});
  both_ages(c, "host_longest_wildcard_first", route("", {"*.b.example.com"}, {any_rule()}),
            route("", {"*.example.com"}, {any_rule()}), {.host = "a.b.example.com"});
  both_ages(c, "host_exact_beats_wildcard", route("", {"a.example.com"}, {any_rule()}),
            route("", {"*.example.com"}, {any_rule()}), {.host = "a.example.com"});
  // Host specificity comes before path precedence.
  both_ages(c, "host_wildcard_beats_catch_all_with_better_path",
            route("", {"*.example.com"}, {rule({prefix("/")})}),
            route("", any, {rule({exact("/x")})}), {.host = "a.example.com", .path = "/x"});
  both_ages(c, "host_exact_beats_catch_all", route("", {"a.test"}, {any_rule()}),
            route("", any, {any_rule()}), {.host = "a.test"});

  // ------------------------------------------------------------ fall-through
  both_ages(c, "fallthrough_exact_to_wildcard",
            route("", {"*.example.com"}, {rule({prefix("/other")})}),
            route("", {"a.example.com"}, {rule({prefix("/api")})}),
            {.host = "a.example.com", .path = "/other/x"});
  both_ages(c, "fallthrough_longer_to_shorter_wildcard",
            route("", {"*.example.com"}, {rule({prefix("/other")})}),
            route("", {"*.b.example.com"}, {rule({prefix("/api")})}),
            {.host = "a.b.example.com", .path = "/other"});
  both_ages(c, "fallthrough_to_catch_all", route("", any, {rule({prefix("/other")})}),
            route("", {"a.test", "*.test"}, {rule({prefix("/api")})}),
            {.host = "a.test", .path = "/other"});
  c.push_back({"fallthrough_nothing_anywhere_404",
               {route("a", {"a.test"}, {rule({prefix("/api")})}),
                route("c", any, {rule({prefix("/web")})})},
               {.host = "a.test", .path = "/other"},
               ""});

  // ------------------------------------------------------------ paths
  c.push_back({"exact_identical",
               {route("a", any, {rule({exact("/foo")})})},
               {.path = "/foo"},
               "default/a#0",
               0});
  c.push_back({"exact_not_trailing_slash",
               {route("a", any, {rule({exact("/foo")})})},
               {.path = "/foo/"},
               ""});
  c.push_back(
      {"exact_not_longer", {route("a", any, {rule({exact("/foo")})})}, {.path = "/foo/bar"}, ""});
  c.push_back({"prefix_itself",
               {route("a", any, {rule({prefix("/foo")})})},
               {.path = "/foo"},
               "default/a#0",
               4});
  c.push_back({"prefix_trailing_slash_path",
               {route("a", any, {rule({prefix("/foo")})})},
               {.path = "/foo/"},
               "default/a#0",
               4});
  c.push_back({"prefix_deeper",
               {route("a", any, {rule({prefix("/foo")})})},
               {.path = "/foo/bar/baz"},
               "default/a#0",
               4});
  c.push_back({"prefix_segment_boundary",
               {route("a", any, {rule({prefix("/foo")})})},
               {.path = "/foobar"},
               ""});
  c.push_back({"prefix_value_trailing_slash_ignored",
               {route("a", any, {rule({prefix("/foo/")})})},
               {.path = "/foo"},
               "default/a#0",
               4});
  c.push_back({"prefix_value_trailing_slash_deeper",
               {route("a", any, {rule({prefix("/foo/")})})},
               {.path = "/foo/bar"},
               "default/a#0",
               4});
  c.push_back({"prefix_value_trailing_slash_boundary",
               {route("a", any, {rule({prefix("/foo/")})})},
               {.path = "/foobar"},
               ""});
  c.push_back({"prefix_multi_segment",
               {route("a", any, {rule({prefix("/a/b")})})},
               {.path = "/a/b/c"},
               "default/a#0",
               4});
  c.push_back({"prefix_multi_segment_boundary",
               {route("a", any, {rule({prefix("/a/b")})})},
               {.path = "/a/bc"},
               ""});
  c.push_back({"prefix_root_everything",
               {route("a", any, {rule({prefix("/")})})},
               {.path = "/any/thing/at/all"},
               "default/a#0",
               0});
  c.push_back({"no_matches_is_root_prefix",
               {route("a", any, {any_rule()})},
               {.path = "/x/y", .method = "DELETE"},
               "default/a#0",
               0});
  c.push_back(
      {"path_case_sensitive", {route("a", any, {rule({prefix("/Foo")})})}, {.path = "/foo"}, ""});
  c.push_back({"regex_full_match",
               {route("a", any, {rule({regex("/api/v[0-9]+")})})},
               {.path = "/api/v2"},
               "default/a#0",
               0});
  c.push_back({"regex_not_partial_suffix",
               {route("a", any, {rule({regex("/api/v[0-9]+")})})},
               {.path = "/api/v2/users"},
               ""});
  c.push_back({"regex_not_partial_infix",
               {route("a", any, {rule({regex("v[0-9]")})})},
               {.path = "/v1"},
               ""});

  // ------------------------------------------------------------ method
  c.push_back({"method_matches",
               {route("a", any, {rule({prefix("/").method("GET")})})},
               {.method = "GET"},
               "default/a#0"});
  c.push_back({"method_case_sensitive",
               {route("a", any, {rule({prefix("/").method("GET")})})},
               {.method = "get"},
               ""});
  c.push_back({"method_mismatch_next_rule",
               {route("a", any, {rule({prefix("/").method("POST")}), any_rule()})},
               {.method = "GET"},
               "default/a#1"});

  // ------------------------------------------------------------ headers
  c.push_back({"header_name_case_insensitive",
               {route("a", any, {rule({prefix("/").header("X-Canary", "true")})})},
               {.headers = {{"x-canary", "true"}}},
               "default/a#0"});
  c.push_back({"header_value_case_sensitive",
               {route("a", any, {rule({prefix("/").header("x-canary", "true")})})},
               {.headers = {{"x-canary", "True"}}},
               ""});
  c.push_back(
      {"header_absent", {route("a", any, {rule({prefix("/").header("x-a", "1")})})}, {}, ""});
  c.push_back({"header_regex_full",
               {route("a", any, {rule({prefix("/").header_re("x-v", "v[0-9]+")})})},
               {.headers = {{"x-v", "v12"}}},
               "default/a#0"});
  c.push_back({"header_regex_not_partial",
               {route("a", any, {rule({prefix("/").header_re("x-v", "v[0-9]+")})})},
               {.headers = {{"x-v", "v12x"}}},
               ""});
  c.push_back({"headers_all_must_hold",
               {route("a", any, {rule({prefix("/").header("x-a", "1").header("x-b", "2")})})},
               {.headers = {{"x-a", "1"}, {"x-b", "3"}}},
               ""});
  c.push_back({"headers_all_hold",
               {route("a", any, {rule({prefix("/").header("x-a", "1").header("x-b", "2")})})},
               {.headers = {{"x-b", "2"}, {"x-a", "1"}}},
               "default/a#0"});

  // ------------------------------------------------------------ query
  c.push_back({"query_exact",
               {route("a", any, {rule({prefix("/").query("v", "2")})})},
               {.query = "a=1&v=2"},
               "default/a#0"});
  c.push_back({"query_percent_decoded",
               {route("a", any, {rule({prefix("/").query("name", "a b&c")})})},
               {.query = "x&na%6De=a%20b%26c"},
               "default/a#0"});
  c.push_back({"query_plus_is_not_space",
               {route("a", any, {rule({prefix("/").query("q", "a b")})})},
               {.query = "q=a+b"},
               ""});
  c.push_back({"query_plus_literal",
               {route("a", any, {rule({prefix("/").query("q", "a+b")})})},
               {.query = "q=a+b"},
               "default/a#0"});
  c.push_back({"query_first_occurrence",
               {route("a", any, {rule({prefix("/").query("v", "2")})})},
               {.query = "v=1&v=2"},
               ""});
  c.push_back({"query_name_case_sensitive",
               {route("a", any, {rule({prefix("/").query("v", "2")})})},
               {.query = "V=2"},
               ""});
  c.push_back({"query_bad_escape_literal",
               {route("a", any, {rule({prefix("/").query("p", "%zz%4")})})},
               {.query = "p=%zz%4"},
               "default/a#0"});
  c.push_back({"query_regex_decoded",
               {route("a", any, {rule({prefix("/").query_re("id", "[0-9]+ [a-z]+")})})},
               {.query = "id=42%20abc"},
               "default/a#0"});
  c.push_back({"query_all_must_hold",
               {route("a", any, {rule({prefix("/").query("a", "1").query("b", "2")})})},
               {.query = "a=1"},
               ""});
  c.push_back({"query_empty_value",
               {route("a", any, {rule({prefix("/").query("flag", "")})})},
               {.query = "flag"},
               "default/a#0"});

  // ------------------------------------------------------------ OR across matches
  c.push_back({"rule_matches_are_ored",
               {route("a", any, {rule({exact("/one"), prefix("/two").method("GET")})})},
               {.path = "/two/x"},
               "default/a#0",
               4,
               1});

  // ------------------------------------------------------------ precedence
  both_ages(c, "prec_exact_beats_regex", route("", any, {rule({exact("/x")})}),
            route("", any, {rule({regex("/.*")})}), {.path = "/x"});
  both_ages(c, "prec_regex_beats_prefix", route("", any, {rule({regex("/x/.*")})}),
            route("", any, {rule({prefix("/x/y")})}), {.path = "/x/y"});
  both_ages(c, "prec_exact_beats_prefix", route("", any, {rule({exact("/x/y")})}),
            route("", any, {rule({prefix("/x/y")})}), {.path = "/x/y"});
  both_ages(c, "prec_longer_prefix", route("", any, {rule({prefix("/api/v1")})}),
            route("", any, {rule({prefix("/api")})}), {.path = "/api/v1/users"});
  both_ages(c, "prec_longer_prefix_beats_method", route("", any, {rule({prefix("/api/v1")})}),
            route("", any, {rule({prefix("/api").method("GET").header("x", "1")})}),
            {.path = "/api/v1", .headers = {{"x", "1"}}});
  both_ages(c, "prec_path_beats_method", route("", any, {rule({exact("/x")})}),
            route("", any, {rule({prefix("/x").method("GET")})}), {.path = "/x"});
  both_ages(c, "prec_method_beats_none", route("", any, {rule({prefix("/").method("GET")})}),
            route("", any, {rule({prefix("/")})}), {});
  both_ages(c, "prec_method_beats_headers", route("", any, {rule({prefix("/").method("GET")})}),
            route("", any, {rule({prefix("/").header("x", "1").header("y", "2")})}),
            {.headers = {{"x", "1"}, {"y", "2"}}});
  both_ages(c, "prec_more_headers",
            route("", any, {rule({prefix("/").header("x", "1").header("y", "2")})}),
            route("", any, {rule({prefix("/").header("x", "1")})}),
            {.headers = {{"x", "1"}, {"y", "2"}}});
  both_ages(c, "prec_headers_beat_query", route("", any, {rule({prefix("/").header("x", "1")})}),
            route("", any, {rule({prefix("/").query("a", "1").query("b", "2")})}),
            {.query = "a=1&b=2", .headers = {{"x", "1"}}});
  both_ages(c, "prec_more_query",
            route("", any, {rule({prefix("/").query("a", "1").query("b", "2")})}),
            route("", any, {rule({prefix("/").query("a", "1")})}), {.query = "a=1&b=2"});
  // Trailing '/' is ignored, so these prefixes tie on length and age decides.
  c.push_back({"prec_trailing_slash_same_length",
               {route("old", any, {rule({prefix("/foo/")})}, 100),
                route("new", any, {rule({prefix("/foo")})}, 200)},
               {.path = "/foo/x"},
               "default/old#0"});
  c.push_back({"prec_older_route",
               {route("zzz", any, {any_rule()}, 100), route("aaa", any, {any_rule()}, 200)},
               {},
               "default/zzz#0"});
  c.push_back({"prec_same_age_name_alphabetical",
               {route("b", any, {any_rule()}, 100), route("a", any, {any_rule()}, 100)},
               {},
               "default/a#0"});
  c.push_back(
      {"prec_same_age_namespace_alphabetical",
       {route("a", any, {any_rule()}, 100, "prod"), route("z", any, {any_rule()}, 100, "dev")},
       {},
       "dev/z#0"});
  // "namespace/name" compared as one string: '-' sorts before '/'.
  c.push_back({"prec_id_compared_as_one_string",
               {route("x", any, {any_rule()}, 100, "a"), route("x", any, {any_rule()}, 100, "a-b")},
               {},
               "a-b/x#0"});
  c.push_back({"prec_rule_order_within_route",
               {route("a", any, {rule({prefix("/x")}), rule({prefix("/x")})})},
               {.path = "/x"},
               "default/a#0"});
  c.push_back({"prec_rule_order_only_among_equals",
               {route("a", any, {rule({prefix("/")}), rule({prefix("/x")})})},
               {.path = "/x"},
               "default/a#1"});
  c.push_back({"prec_match_order_within_rule",
               {route("a", any, {rule({prefix("/x"), prefix("/x/")})})},
               {.path = "/x/y"},
               "default/a#0",
               2,
               0});
  // PathMatch.priority (ingress-nginx mode: regexes longest first) ranks
  // matches of one path kind before age, methods and headers.
  {
    M longer = regex("(?i)(?:/api/v1).*");
    longer.m.path.priority = 7;
    M shorter = regex("(?i)(?:/api).*").header("x", "1");
    shorter.m.path.priority = 4;
    c.push_back({"prec_priority_before_age_and_headers",
                 {route("old", any, {rule({shorter})}, 1), route("new", any, {rule({longer})}, 200)},
                 {.path = "/API/v1/x", .headers = {{"x", "1"}}},
                 "default/new#0"});
    c.push_back({"prec_priority_only_where_it_matches",
                 {route("old", any, {rule({shorter})}, 1), route("new", any, {rule({longer})}, 200)},
                 {.path = "/api/v2", .headers = {{"x", "1"}}},
                 "default/old#0"});
    M exact_low = exact("/api/v1");
    c.push_back({"prec_priority_never_beats_path_kind",
                 {route("new", any, {rule({longer})}, 200), route("ex", any, {rule({exact_low})}, 300)},
                 {.path = "/api/v1"},
                 "default/ex#0"});
  }
  // Precedence is per RouteMatch: a rule's strong match beats an older route's
  // weaker one even though the same rule also has a weak match.
  both_ages(c, "prec_per_route_match", route("", any, {rule({prefix("/"), exact("/x")})}),
            route("", any, {rule({prefix("/x")})}), {.path = "/x"});
  return c;
}

class Matching : public ::testing::TestWithParam<Case> {};

TEST_P(Matching, WinnerInEitherSnapshotOrder) {
  const Case& c = GetParam();
  for (bool reversed : {false, true}) {
    std::vector<Route> routes = c.routes;
    if (reversed) std::reverse(routes.begin(), routes.end());
    auto table = build(routes);
    ASSERT_NE(table, nullptr);
    Match m = table->match(view(c.req));
    const char* order = reversed ? "reversed" : "forward";
    EXPECT_EQ(label(m), c.want) << order;
    if (c.want_prefix_len) {
      EXPECT_EQ(m.matched_prefix_len, *c.want_prefix_len) << order;
    }
    if (c.want_match_index) {
      EXPECT_EQ(m.match_index, *c.want_match_index) << order;
    }
    // Stable: the same request gives the same rule.
    EXPECT_EQ(table->match(view(c.req)).rule, m.rule) << order;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, Matching, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

TEST(RouteTable, CountsLabelsAndPointers) {
  auto table = build({route("a", {}, {any_rule(), rule({exact("/x"), prefix("/y")})}, 1, "ns")});
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->rule_count(), 2u);
  EXPECT_EQ(table->rules()[1].route_label, "ns/a#1");
  Match m = table->match(view({.path = "/y/z"}));
  ASSERT_NE(m.rule, nullptr);
  EXPECT_EQ(m.rule->route, &table->snapshot().routes[0]);
  EXPECT_EQ(m.rule->rule, &table->snapshot().routes[0].rules[1]);
  EXPECT_EQ(m.rule->rule_index, 1u);
  EXPECT_EQ(m.route_match, &table->snapshot().routes[0].rules[1].matches[1]);
  EXPECT_EQ(m.match_index, 1u);
  Match any = table->match(view({.path = "/q"}));
  EXPECT_EQ(any.route_match, nullptr);
}

TEST(RouteTable, EmptySnapshotIs404) {
  auto table = build({});
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->match(view({.host = "a", .path = "/"})).rule, nullptr);
  EXPECT_EQ(table->rule_count(), 0u);
}

TEST(RouteTable, NoHeaderCallbackMeansNoHeaders) {
  auto table = build({route("a", {}, {rule({prefix("/").header("x", "1")}), any_rule()})});
  RequestView v;
  v.path = "/";
  v.method = "GET";
  EXPECT_EQ(label(table->match(v)), "default/a#1");
}

// Routes that list listeners (Gateway API: the Gateways' addresses) match only
// on those; routes that list none only on the proxy's own listeners. A miss on
// a more specific host falls through to the next level, as any condition does.
TEST(RouteTable, ListenersIsolateRoutes) {
  Route a = route("a", {"shop.example.com"}, {any_rule()});
  a.listeners = {"10.0.0.1:80"};
  Route b = route("b", {"shop.example.com"}, {any_rule()});
  b.listeners = {"10.0.0.2:80", "10.0.0.1:8080"};
  Route both = route("both", {}, {rule({prefix("/shared")})});
  both.listeners = {"10.0.0.1:80", "10.0.0.2:80"};
  Route own = route("own", {}, {any_rule()});
  auto table = build({a, b, both, own});
  ASSERT_NE(table, nullptr);
  struct Case {
    const char* listener;
    bool own;
    const char* host;
    const char* path;
    const char* want;
  } cases[] = {
      {"10.0.0.1:80", false, "shop.example.com", "/", "default/a#0"},
      {"10.0.0.2:80", false, "shop.example.com", "/", "default/b#0"},
      {"10.0.0.1:8080", false, "shop.example.com", "/", "default/b#0"},
      {"10.0.0.1:80", false, "other.example.com", "/shared/x", "default/both#0"},
      {"10.0.0.2:80", false, "other.example.com", "/shared", "default/both#0"},
      {"10.0.0.1:80", false, "other.example.com", "/", ""},
      {"10.0.0.3:80", false, "shop.example.com", "/", ""},
      {"127.0.0.1:8080", true, "shop.example.com", "/", "default/own#0"},
      {"127.0.0.1:8080", true, "x", "/shared", "default/own#0"},
      // An own listener that a route lists serves both kinds.
      {"10.0.0.1:80", true, "shop.example.com", "/", "default/a#0"},
      {"10.0.0.1:80", true, "x", "/", "default/own#0"},
  };
  for (const auto& c : cases) {
    Req req{.host = c.host, .path = c.path};  // outlives the view
    RequestView v = view(req);
    v.listener = c.listener;
    v.own_listener = c.own;
    EXPECT_EQ(label(table->match(v)), c.want) << c.listener << " " << c.host << c.path;
  }
}

struct BadRegexCase {
  std::string name;
  RouteMatch match;
  std::string field;
};

void PrintTo(const BadRegexCase& c, std::ostream* os) { *os << c.name; }

class BadRegex : public ::testing::TestWithParam<BadRegexCase> {};

TEST_P(BadRegex, ErrorNamesRouteAndField) {
  auto snap = std::make_shared<snapshot::Snapshot>();
  snap->routes = {
      route("good", {}, {any_rule()}),
      route("shop", {}, {any_rule(), rule({prefix("/"), GetParam().match})}, 1, "team")};
  auto table = RouteTable::create(snap);
  ASSERT_FALSE(table.ok());
  EXPECT_NE(table.error().message.find("route team/shop rules[1].matches[1]." + GetParam().field),
            std::string::npos)
      << table.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Cases, BadRegex,
    ::testing::Values(BadRegexCase{"path", regex("/a(b"), "path"},
                      BadRegexCase{"header", prefix("/").header("x", "1").header_re("y", "[z"),
                                   "headers[1]"},
                      BadRegexCase{"query", prefix("/").query_re("q", "*"), "queryParams[0]"}),
    [](const auto& info) { return info.param.name; });

TEST(RouteTable, NullSnapshotIsAnError) { EXPECT_FALSE(RouteTable::create(nullptr).ok()); }

TEST(RouteTable, PickBackendSmoothSequence) {
  Rule r = any_rule();
  r.backends = {{"default/v1:80", 90, ""}, {"default/v2:80", 10, ""}};
  auto table = build({route("a", {}, {r})});
  const CompiledRule& cr = table->rules()[0];
  std::vector<int> got;
  for (int i = 0; i < 20; ++i) got.push_back(cr.pick_backend());
  // 90/10 reduces to 9/1; nginx's smooth order puts the 1 in the middle.
  std::vector<int> period = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  std::vector<int> want = period;
  want.insert(want.end(), period.begin(), period.end());
  EXPECT_EQ(got, want);
}

TEST(RouteTable, PickBackendWeightZero) {
  Rule some = any_rule(), none = any_rule(), empty = any_rule();
  some.backends = {{"default/a:80", 0, ""}, {"default/b:80", 3, ""}};
  none.backends = {{"default/a:80", 0, ""}, {"default/b:80", 0, ""}};
  empty.backends.clear();
  auto table = build({route("a", {}, {some, none, empty})});
  for (int i = 0; i < 10; ++i) EXPECT_EQ(table->rules()[0].pick_backend(), 1);
  EXPECT_EQ(table->rules()[1].pick_backend(), -1);
  EXPECT_EQ(table->rules()[2].pick_backend(), -1);
}

// "/svc" + std::to_string(i) written as an append: GCC 12 at -O3 reports a
// false -Wrestrict for "literal" + std::string&& (GCC PR 105329).
std::string numbered(std::string_view prefix, int i) { return std::string(prefix).append(std::to_string(i)); }

// 1,000 routes x 3 rules over 100 hostnames (half exact, half wildcard) plus
// a catch-all: every route answers its own requests and no one else's.
TEST(RouteTable, LargeTable) {
  constexpr int kRoutes = 1000;
  std::vector<Route> routes;
  auto host_of = [](int i) {
    return i % 2 == 0 ? numbered("h", i % 100) + ".example.com"
                      : numbered("*.w", i % 100) + ".example.com";
  };
  auto request_host = [](int i) {
    return i % 2 == 0 ? numbered("h", i % 100) + ".example.com"
                      : numbered("x.y.w", i % 100) + ".example.com";
  };
  for (int i = 0; i < kRoutes; ++i) {
    std::string base = numbered("/svc", i);
    routes.push_back(route(
        numbered("r", i), {host_of(i)},
        {rule({exact(base + "/exact")}), rule({regex(base + "/re/[0-9]+")}), rule({prefix(base)})},
        i));
  }
  routes.push_back(route("catchall", {}, {rule({prefix("/fallback")})}));
  auto table = build(routes);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->rule_count(), 3u * kRoutes + 1);
  for (int i = 0; i < kRoutes; i += 7) {
    std::string base = numbered("/svc", i);
    std::string id = numbered("default/r", i);
    std::string host = request_host(i);
    EXPECT_EQ(label(table->match(view({.host = host, .path = base + "/exact"}))), id + "#0");
    EXPECT_EQ(label(table->match(view({.host = host, .path = base + "/re/42"}))), id + "#1");
    EXPECT_EQ(label(table->match(view({.host = host, .path = base + "/re/x"}))), id + "#2");
    EXPECT_EQ(label(table->match(view({.host = host, .path = base + "/a/b/c/d"}))), id + "#2");
    EXPECT_EQ(label(table->match(view({.host = host, .path = base + "x"}))), "");
    EXPECT_EQ(label(table->match(view({.host = host, .path = "/fallback/1"}))),
              "default/catchall#0");
    // The same path under another route's host is not this route's.
    EXPECT_EQ(label(table->match(view({.host = request_host(i + 1), .path = base}))), "");
  }
  std::string long_path(4000, 'a');
  for (size_t i = 0; i < long_path.size(); i += 10) long_path[i] = '/';
  EXPECT_EQ(label(table->match(view({.host = "h0.example.com", .path = long_path}))), "");
}

}  // namespace
}  // namespace gantry::router
