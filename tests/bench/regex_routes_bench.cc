// Regular-expression routes, inside the router: for N rules on one host
// level, the time and heap RouteTable::create() takes, what it made of them
// (sets, splits), the heap after the DFA caches warmed up, and the time of
// one match() for the first, middle and last rule, a path no regex matches
// (falls to the PathPrefix route) and the PathPrefix route's own path:
// one-pass sets (the production options) against the one-by-one walk (sets
// off) in the same run.
//
//   regex_routes_bench [N ...]            default: 100 1000 10000
// GANTRY_REGEX_SET_MAX_PATTERNS and GANTRY_REGEX_SET_MAX_MEM (bytes) override
// the production RouteTableOptions of the "sets" rows, to compare budgets.
// Two pattern families: "issue" is /pK/[a-z]+ (a distinct literal head, as
// in issue 22), "wild" is .*/kK/[^/]+ (every pattern stays alive to the end
// of the path: the DFA's worst case for state size).
#include <malloc.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "proxy/router/route_table.h"

namespace {

using namespace gantry;
using Clock = std::chrono::steady_clock;

size_t heap_in_use() { return mallinfo2().uordblks + mallinfo2().hblkhd; }

std::shared_ptr<const snapshot::Snapshot> make_snapshot(size_t n, bool wild) {
  auto snap = std::make_shared<snapshot::Snapshot>();
  snap->version = 1;
  snapshot::Route route;
  route.namespace_ = "bench";
  route.name = "regex";
  route.creation_timestamp = 1;
  for (size_t k = 0; k < n; ++k) {
    snapshot::Rule rule;
    snapshot::RouteMatch m;
    std::string id = std::to_string(k);
    m.path = {snapshot::PathMatchType::kRegularExpression,
              wild ? ".*/k" + id + "/[^/]+" : "/p" + id + "/[a-z]+"};
    rule.matches.push_back(m);
    rule.backends = {{"bench/echo:80", 1, ""}};
    route.rules.push_back(std::move(rule));
  }
  snap->routes.push_back(std::move(route));
  snapshot::Route prefix;
  prefix.namespace_ = "bench";
  prefix.name = "prefix";
  prefix.creation_timestamp = 2;
  snapshot::Rule rule;
  snapshot::RouteMatch m;
  m.path = {snapshot::PathMatchType::kPathPrefix, "/static"};
  rule.matches.push_back(m);
  rule.backends = {{"bench/echo:80", 1, ""}};
  prefix.rules.push_back(std::move(rule));
  snap->routes.push_back(std::move(prefix));
  return snap;
}

std::string path_for(size_t k, bool wild) {
  return wild ? "/x/y/k" + std::to_string(k) + "/abc" : "/p" + std::to_string(k) + "/abc";
}

// Nanoseconds per match() of `path`; aborts if the winner is not `want`.
double time_match(const router::RouteTable& table, const std::string& path,
                  const std::string& want) {
  router::RequestView req;
  req.host = "bench.example.com";
  req.path = path;
  req.method = "GET";
  router::Match first = table.match(req);
  std::string got = first.rule ? first.rule->route_label : "";
  if (got != want) {
    std::fprintf(stderr, "bench: %s matched %s, want %s\n", path.c_str(), got.c_str(),
                 want.c_str());
    std::abort();
  }
  size_t iters = 16;
  while (true) {
    auto t0 = Clock::now();
    size_t sink = 0;
    for (size_t i = 0; i < iters; ++i) sink += table.match(req).match_index;
    double ns = std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
    if (sink == 12345678) std::puts("");
    if (ns > 2e8 || iters >= (size_t{1} << 24)) return ns / static_cast<double>(iters);
    iters *= 4;
  }
}

void run(size_t n, bool wild) {
  auto snap = make_snapshot(n, wild);
  router::RouteTableOptions sets;
  if (const char* v = std::getenv("GANTRY_REGEX_SET_MAX_PATTERNS")) {
    sets.regex_set_max_patterns = std::strtoull(v, nullptr, 10);
  }
  if (const char* v = std::getenv("GANTRY_REGEX_SET_MAX_MEM")) {
    sets.regex_set_max_mem = std::strtoll(v, nullptr, 10);
  }
  router::RouteTableOptions linear;
  linear.regex_set_min = static_cast<size_t>(-1);
  struct Variant {
    const char* name;
    router::RouteTableOptions options;
  };
  for (const Variant& v : {Variant{"sets", sets}, Variant{"linear", linear}}) {
    if (std::getenv("GANTRY_REGEX_SETS_ONLY") && v.options.regex_set_min != sets.regex_set_min)
      continue;
    malloc_trim(0);
    size_t heap0 = heap_in_use();
    auto t0 = Clock::now();
    auto table = router::RouteTable::create(snap, v.options);
    double compile_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (!table.ok()) {
      std::fprintf(stderr, "bench: %s\n", table.error().message.c_str());
      std::abort();
    }
    size_t heap1 = heap_in_use();
    const router::RegexSetStats& st = (*table)->regex_set_stats();
    std::vector<size_t> picks = {0, n / 2, n - 1};
    double ns[5];
    for (size_t i = 0; i < 3; ++i) {
      ns[i] =
          time_match(**table, path_for(picks[i], wild), "bench/regex#" + std::to_string(picks[i]));
    }
    ns[3] = time_match(**table, "/static/app.js", "bench/prefix#0");
    ns[4] = time_match(**table, "/nothing/here", "");
    size_t heap2 = heap_in_use();
    std::printf("%-5s %6zu %-6s %10.1f %9.1f %9.1f %5zu %6zu %8.0f %8.0f %8.0f %8.0f %8.0f\n",
                wild ? "wild" : "issue", n, v.name, compile_ms, (heap1 - heap0) / 1048576.0,
                (heap2 - heap0) / 1048576.0, st.sets, st.splits, ns[0], ns[1], ns[2], ns[3], ns[4]);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<size_t> sizes;
  for (int i = 1; i < argc; ++i) sizes.push_back(std::strtoull(argv[i], nullptr, 10));
  if (sizes.empty()) sizes = {100, 1000, 10000};
  std::printf("%-5s %6s %-6s %10s %9s %9s %5s %6s %8s %8s %8s %8s %8s\n", "kind", "N", "mode",
              "compile ms", "heap MiB", "warm MiB", "sets", "splits", "first ns", "mid ns",
              "last ns", "prefix", "404 ns");
  for (bool wild : {false, true}) {
    for (size_t n : sizes) run(n, wild);
  }
  return 0;
}
