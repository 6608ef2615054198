// RegularExpression paths matched in one pass (RE2::Set) must give exactly
// the answer of the one-by-one walk: the reference here is the same snapshot
// compiled with sets off (RouteTableOptions::regex_set_min = max), which is
// the walk route_table_test.cc pins down. Compared over generated snapshots
// (seeded, so every run checks the same ones) and over hand-written cases
// for the places where the two could part: a best-ranked hit that fails its
// method / header / query checks, hits spread over several sets, duplicate
// patterns, budgets too small for any set.
#include <gtest/gtest.h>

#include <limits>
#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "proxy/router/route_table.h"

namespace gantry::router {
namespace {

using snapshot::PathMatchType;
using snapshot::Route;
using snapshot::RouteMatch;
using snapshot::Rule;
using snapshot::ValueMatchType;

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

// Everything of a Match that identifies it across two tables.
std::string describe(const Match& m) {
  if (m.rule == nullptr) return "404";
  return m.rule->route_label + " match " + std::to_string(m.match_index) + " prefix " +
         std::to_string(m.matched_prefix_len);
}

RouteTableOptions linear_options() {
  RouteTableOptions o;
  o.regex_set_min = std::numeric_limits<size_t>::max();
  return o;
}

// Set configurations under test: production, and budgets that force several
// sets per level, splits down to single patterns, and no set at all.
std::vector<std::pair<std::string, RouteTableOptions>> set_variants() {
  std::vector<std::pair<std::string, RouteTableOptions>> v;
  v.emplace_back("production", RouteTableOptions{});
  RouteTableOptions o;
  o.regex_set_max_patterns = 1;
  v.emplace_back("one_pattern_per_set", o);
  o = {};
  o.regex_set_max_patterns = 3;
  v.emplace_back("three_patterns_per_set", o);
  o = {};
  o.regex_set_max_mem = 2048;  // RE2 cannot compile any set: split down to one by one
  v.emplace_back("no_memory", o);
  o = {};
  o.regex_set_max_mem = 12 << 10;  // some runs compile, bigger ones split
  o.regex_set_max_patterns = 7;
  v.emplace_back("small_memory", o);
  return v;
}

std::shared_ptr<const RouteTable> build(const std::vector<Route>& routes,
                                        const RouteTableOptions& options) {
  auto snap = std::make_shared<snapshot::Snapshot>();
  snap->version = 1;
  snap->routes = routes;
  auto table = RouteTable::create(snap, options);
  EXPECT_TRUE(table.ok()) << (table.ok() ? "" : table.error().message);
  return table.ok() ? *table : nullptr;
}

// Every request against every variant, compared with the linear table.
void expect_same_as_linear(const std::vector<Route>& routes, const std::vector<Req>& requests,
                           const std::string& what) {
  auto reference = build(routes, linear_options());
  ASSERT_NE(reference, nullptr);
  EXPECT_EQ(reference->regex_set_stats().sets, 0u);
  for (const auto& [name, options] : set_variants()) {
    auto table = build(routes, options);
    ASSERT_NE(table, nullptr);
    for (const Req& r : requests) {
      ASSERT_EQ(describe(table->match(view(r))), describe(reference->match(view(r))))
          << what << ", options " << name << ": host '" << r.host << "' path '" << r.path
          << "' query '" << r.query << "' method " << r.method;
    }
  }
}

// ---------------------------------------------------------------- hand-written

Rule rule(std::vector<RouteMatch> matches) {
  Rule r;
  r.matches = std::move(matches);
  r.backends = {{"default/svc:80", 1, ""}};
  return r;
}

RouteMatch regex(std::string v) {
  RouteMatch m;
  m.path = {PathMatchType::kRegularExpression, std::move(v)};
  return m;
}

Route route(std::string name, std::vector<std::string> hosts, std::vector<Rule> rules,
            int64_t created) {
  Route r;
  r.namespace_ = "default";
  r.name = std::move(name);
  r.creation_timestamp = created;
  r.hostnames = std::move(hosts);
  r.rules = std::move(rules);
  return r;
}

struct Case {
  std::string name;
  std::vector<Route> routes;
  Req req;
  std::string want;  // describe() of the expected match
};

std::vector<Case> cases() {
  std::vector<Case> c;
  RouteMatch get = regex("/a/.*");
  get.method = "POST";
  RouteMatch header = regex("/a/[0-9]+");
  header.headers = {{ValueMatchType::kRegularExpression, "x-tenant", "t[0-9]+"}};
  RouteMatch query = regex("/a/.+");
  query.query_params = {{ValueMatchType::kExact, "v", "2"}};
  // Ranked: method first, then headers, then query, then the plain ones by age.
  std::vector<Route> ranked = {
      route("plain-old", {}, {rule({regex("/a/[0-9]+")})}, 1),
      route("plain-new", {}, {rule({regex("/a/.*")})}, 2),
      route("method", {}, {rule({get})}, 3),
      route("header", {}, {rule({header})}, 4),
      route("query", {}, {rule({query})}, 5),
  };
  c.push_back({"best_fails_method_next_wins",
               ranked,
               {.path = "/a/42"},
               "default/plain-old#0 match 0 prefix 0"});
  c.push_back({"method_holds",
               ranked,
               {.path = "/a/42", .method = "POST"},
               "default/method#0 match 0 prefix 0"});
  c.push_back({"header_holds",
               ranked,
               {.path = "/a/42", .headers = {{"x-tenant", "t7"}}},
               "default/header#0 match 0 prefix 0"});
  c.push_back({"header_regex_fails",
               ranked,
               {.path = "/a/42", .headers = {{"x-tenant", "t7x"}}},
               "default/plain-old#0 match 0 prefix 0"});
  c.push_back({"query_holds_path_not_digits",
               ranked,
               {.path = "/a/x", .query = "v=2"},
               "default/query#0 match 0 prefix 0"});
  c.push_back({"only_the_catch_all_regex",
               ranked,
               {.path = "/a/x"},
               "default/plain-new#0 match 0 prefix 0"});
  c.push_back({"no_regex_matches", ranked, {.path = "/b/x"}, "404"});

  // The same pattern many times, told apart only by their conditions: the
  // hit that passes is the last one.
  std::vector<Route> same;
  for (int i = 0; i < 9; ++i) {
    RouteMatch m = regex("/s/[a-z]+");
    m.headers = {{ValueMatchType::kExact, "x-n", std::to_string(i)}};
    same.push_back(route("same" + std::to_string(i), {}, {rule({m})}, i));
  }
  c.push_back({"duplicate_patterns_last_passes",
               same,
               {.path = "/s/abc", .headers = {{"x-n", "8"}}},
               "default/same8#0 match 0 prefix 0"});

  // A host level whose regexes all miss falls through to the catch-all one.
  c.push_back({"fall_through_levels",
               {route("host", {"a.example.com"}, {rule({regex("/x"), regex("/y")})}, 1),
                route("any", {}, {rule({regex("/z"), regex("/.*")})}, 2)},
               {.host = "a.example.com", .path = "/q"},
               "default/any#0 match 1 prefix 0"});
  // Anchored at both ends, like FullMatch.
  c.push_back({"anchored_both_ends",
               {route("r", {}, {rule({regex("b"), regex("/a"), regex("/a/b"), regex("a/b")})}, 1)},
               {.path = "/a/b/c"},
               "404"});
  // Alternation at the top level stays anchored as a whole.
  c.push_back({"alternation_anchored",
               {route("r", {}, {rule({regex("/x|/y"), regex("/yz")})}, 1)},
               {.path = "/yz"},
               "default/r#0 match 1 prefix 0"});
  return c;
}

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

class HandWritten : public ::testing::TestWithParam<Case> {};

TEST_P(HandWritten, EveryVariantGivesTheWalksAnswer) {
  const Case& tc = GetParam();
  auto reference = build(tc.routes, linear_options());
  ASSERT_NE(reference, nullptr);
  EXPECT_EQ(describe(reference->match(view(tc.req))), tc.want);
  expect_same_as_linear(tc.routes, {tc.req}, tc.name);
}

INSTANTIATE_TEST_SUITE_P(Cases, HandWritten, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------- generated

// Pieces that overlap on purpose, so one path hits several patterns.
const std::vector<std::string> kPatterns = {
    "/a/.*",
    "/a/[0-9]+",
    "/a/b",
    ".*",
    "/[a-z]/[a-z]+",
    "/a/(b|c)/.*",
    ".*/c",
    "/a/b/c",
    "/a?/b?/?",
    "(?i)/A/B.*",
    "/x/[^/]+/y",
    "/p[0-9]+/[a-z]+",
    "/é/.*",
    "/a/b|/a/c",
    "/[ab]+(/[0-9])*",
    "",
    "/",
    "/a/\\d{2,3}",
    "/a/.{0,3}",
    ".+/b/.+",
    "^/a/b$",
    "(?m)^/a$",
    "\\A/a.*\\z",
    ".*c\\b",
    "\\C+",
    "(?s).*/",
    "/a/(?U)b*",
};
const std::vector<std::string> kPaths = {
    "/",         "/a",   "/a/",    "/a/b",   "/a/b/c",   "/a/c",    "/a/42",   "/a/123",
    "/a/1234",   "/A/B", "/A/bx",  "/x/1/y", "/x//y",    "/p7/abc", "/p7/",    "/é/z",
    "/abab/1/2", "/b/c", "/q/b/r", "",       "/a/b/c/d", "/a/xyz",  "/\xff/a", "/a/\xc3",
};
const std::vector<std::string> kHosts = {"", "a.example.com", "b.example.com", "x.w.example.com"};

struct Generated {
  std::vector<Route> routes;
  std::vector<Req> requests;
};

Generated generate(uint32_t seed, size_t route_count) {
  std::mt19937 rng(seed);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  Generated g;
  for (size_t i = 0; i < route_count; ++i) {
    std::vector<std::string> hosts;
    switch (pick(4)) {
      case 0:
        break;
      case 1:
        hosts = {"a.example.com"};
        break;
      case 2:
        hosts = {"*.w.example.com", "b.example.com"};
        break;
      default:
        hosts = {"a.example.com", "*.example.com"};
        break;
    }
    std::vector<Rule> rules;
    for (size_t k = 0, nk = 1 + pick(3); k < nk; ++k) {
      std::vector<RouteMatch> matches;
      for (size_t mi = 0, nm = pick(4); mi < nm; ++mi) {
        RouteMatch m;
        size_t kind = pick(10);
        if (kind < 7) {
          m.path = {PathMatchType::kRegularExpression, kPatterns[pick(kPatterns.size())]};
        } else if (kind < 9) {
          m.path = {PathMatchType::kPathPrefix, chance(50) ? "/a" : "/"};
        } else {
          m.path = {PathMatchType::kExact, kPaths[pick(kPaths.size())]};
          if (m.path.value.empty() || m.path.value[0] != '/') m.path.value = "/a/b";
        }
        if (chance(20)) m.method = chance(50) ? "GET" : "POST";
        if (chance(25)) {
          if (chance(50)) {
            m.headers.push_back({ValueMatchType::kExact, "x-h", chance(50) ? "1" : "2"});
          } else {
            m.headers.push_back({ValueMatchType::kRegularExpression, "x-h", "[12]"});
          }
        }
        if (chance(15)) m.query_params.push_back({ValueMatchType::kExact, "v", "1"});
        if (chance(10))
          m.query_params.push_back({ValueMatchType::kRegularExpression, "id", "[0-9]+"});
        matches.push_back(std::move(m));
      }
      rules.push_back(rule(std::move(matches)));
    }
    g.routes.push_back(
        route("r" + std::to_string(i), hosts, std::move(rules), static_cast<int64_t>(pick(5))));
  }
  for (const std::string& host : kHosts) {
    for (const std::string& path : kPaths) {
      Req r{.host = host, .path = path};
      if (chance(30)) r.method = "POST";
      if (chance(40)) r.headers.push_back({"x-h", chance(50) ? "1" : "2"});
      if (chance(30)) r.query = chance(50) ? "v=1&id=7" : "id=x&v=2";
      g.requests.push_back(std::move(r));
      g.requests.push_back(Req{.host = host, .path = path});
    }
  }
  return g;
}

TEST(RegexSets, GeneratedSnapshotsMatchTheWalk) {
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    Generated g = generate(seed, 2 + seed % 25);
    expect_same_as_linear(g.routes, g.requests, "seed " + std::to_string(seed));
    if (HasFatalFailure()) return;
  }
}

// ---------------------------------------------------------------- budgets

std::vector<Route> numbered(size_t n) {
  std::vector<Rule> rules;
  for (size_t k = 0; k < n; ++k)
    rules.push_back(rule({regex("/p" + std::to_string(k) + "/[a-z]+")}));
  return {route("many", {}, std::move(rules), 1)};
}

TEST(RegexSets, ProductionOptionsUseOneSetForTwoThousand) {
  auto table = build(numbered(2000), {});
  ASSERT_NE(table, nullptr);
  const RegexSetStats& st = table->regex_set_stats();
  EXPECT_EQ(st.sets, 1u);
  EXPECT_EQ(st.set_patterns, 2000u);
  EXPECT_EQ(st.linear_entries, 0u);
  for (size_t k : {size_t{0}, size_t{999}, size_t{1999}}) {
    Req r{.path = "/p" + std::to_string(k) + "/abc"};
    EXPECT_EQ(describe(table->match(view(r))),
              "default/many#" + std::to_string(k) + " match 0 prefix 0");
  }
  EXPECT_EQ(describe(table->match(view(Req{.path = "/p2000/abc"}))), "404");
}

TEST(RegexSets, PatternCapSplitsIntoRuns) {
  RouteTableOptions o;
  o.regex_set_max_patterns = 300;
  auto table = build(numbered(1000), o);
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->regex_set_stats().sets, 4u);  // 300 + 300 + 300 + 100
  EXPECT_EQ(table->regex_set_stats().set_patterns, 1000u);
  EXPECT_EQ(describe(table->match(view(Req{.path = "/p999/z"}))),
            "default/many#999 match 0 prefix 0");
}

// A budget RE2 cannot compile a run within: the run is split, down to single
// patterns tried on their own; the snapshot is never rejected.
TEST(RegexSets, TooSmallBudgetSplitsNeverRejects) {
  RouteTableOptions o;
  o.regex_set_max_mem = 64 << 10;
  auto table = build(numbered(500), o);
  ASSERT_NE(table, nullptr);
  const RegexSetStats& st = table->regex_set_stats();
  EXPECT_GT(st.splits, 0u);
  EXPECT_GT(st.sets, 1u);
  EXPECT_EQ(st.set_patterns + st.linear_entries, 500u);
  o.regex_set_max_mem = 1;
  auto none = build(numbered(500), o);
  ASSERT_NE(none, nullptr);
  EXPECT_EQ(none->regex_set_stats().sets, 0u);
  EXPECT_EQ(none->regex_set_stats().linear_entries, 500u);
  for (size_t k = 0; k < 500; k += 37) {
    Req r{.path = "/p" + std::to_string(k) + "/abc"};
    std::string want = "default/many#" + std::to_string(k) + " match 0 prefix 0";
    EXPECT_EQ(describe(table->match(view(r))), want);
    EXPECT_EQ(describe(none->match(view(r))), want);
  }
}

// A route with many hostnames puts the same regex list on every host level:
// one set is compiled and shared, not one per hostname.
TEST(RegexSets, LevelsWithTheSameRunsShareOneSet) {
  std::vector<std::string> hosts;
  for (int i = 0; i < 50; ++i) hosts.push_back("h" + std::to_string(i) + ".example.com");
  std::vector<Route> routes = numbered(300);
  routes[0].hostnames = hosts;
  routes.push_back(route("other", {"h7.example.com"}, {rule({regex("/p1/[a-z]+")})}, 0));
  auto table = build(routes, {});
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->regex_set_stats().sets, 2u);  // h7's level has one more pattern
  EXPECT_EQ(table->regex_set_stats().set_patterns, 50u * 300u + 1u);
  EXPECT_EQ(describe(table->match(view(Req{.host = "h3.example.com", .path = "/p299/a"}))),
            "default/many#299 match 0 prefix 0");
  EXPECT_EQ(describe(table->match(view(Req{.host = "h7.example.com", .path = "/p1/a"}))),
            "default/other#0 match 0 prefix 0");
  EXPECT_EQ(describe(table->match(view(Req{.host = "h8.example.com", .path = "/p1/a"}))),
            "default/many#1 match 0 prefix 0");
  EXPECT_EQ(describe(table->match(view(Req{.host = "x.example.com", .path = "/p1/a"}))), "404");
}

TEST(RegexSets, BelowTheMinimumEachIsTriedInTurn) {
  auto table = build(numbered(1), {});
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(table->regex_set_stats().sets, 0u);
  EXPECT_EQ(table->regex_set_stats().linear_entries, 1u);
}

}  // namespace
}  // namespace gantry::router
