// Fuzz target for the router: one table compiled from a fixed snapshot that
// exercises every kind of host and match, then arbitrary requests. Input:
// newline-separated fields host, path, query, method, then "name:value"
// header lines. Checks: no crash, the same request gives the same rule, a
// prefix match ends on a segment boundary of the path, and the regular
// expressions matched in one pass (RE2::Set, production options and a budget
// of two patterns per set) give exactly the answer of the one-by-one walk.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/router/route_table.h"

namespace {

using namespace gantry;
using snapshot::PathMatchType;
using snapshot::ValueMatchType;

snapshot::RouteMatch match(PathMatchType t, std::string v) {
  snapshot::RouteMatch m;
  m.path = {t, std::move(v)};
  return m;
}

snapshot::Rule rule(std::vector<snapshot::RouteMatch> matches, std::vector<uint32_t> weights) {
  snapshot::Rule r;
  r.matches = std::move(matches);
  for (size_t i = 0; i < weights.size(); ++i) {
    r.backends.push_back({"default/svc" + std::to_string(i) + ":80", weights[i], ""});
  }
  return r;
}

std::shared_ptr<const router::RouteTable> make_table(const router::RouteTableOptions& options) {
  auto snap = std::make_shared<snapshot::Snapshot>();
  auto add = [&](std::string name, int64_t created, std::vector<std::string> hosts,
                 std::vector<snapshot::Rule> rules) {
    snapshot::Route r;
    r.namespace_ = "default";
    r.name = std::move(name);
    r.creation_timestamp = created;
    r.hostnames = std::move(hosts);
    r.rules = std::move(rules);
    snap->routes.push_back(std::move(r));
  };
  auto with_method = match(PathMatchType::kPathPrefix, "/api");
  with_method.method = "POST";
  auto with_headers = match(PathMatchType::kPathPrefix, "/api/v1/");
  with_headers.headers = {{ValueMatchType::kExact, "X-Canary", "true"},
                          {ValueMatchType::kRegularExpression, "x-user", "[a-z]+[0-9]*"}};
  auto with_query = match(PathMatchType::kRegularExpression, "/q/[^/]+");
  with_query.query_params = {{ValueMatchType::kExact, "v", "2"},
                             {ValueMatchType::kRegularExpression, "id", "[0-9a-f ]{1,8}"}};
  add("shop", 10, {"shop.example.com", "*.shop.example.org"},
      {rule({match(PathMatchType::kExact, "/"), with_method}, {90, 10}),
       rule({with_headers, with_query}, {1}), rule({}, {0, 0})});
  add("wild", 20, {"*.example.com"},
      {rule({match(PathMatchType::kPathPrefix, "/static/"),
             match(PathMatchType::kRegularExpression, "/img/.*\\.(png|jpg)")},
            {3, 7})});
  add("deep", 30, {"*.b.example.com"}, {rule({match(PathMatchType::kPathPrefix, "/a/b/c")}, {1})});
  add("any", 40, {},
      {rule({match(PathMatchType::kPathPrefix, "/health")}, {5000, 5003}),
       rule({match(PathMatchType::kExact, "/exact")}, {1, 1, 1})});
  // Overlapping regexes on one level, ranked by their conditions: a request
  // often hits several, and the best-ranked hit may fail its checks.
  auto get_any = match(PathMatchType::kRegularExpression, "/r/.*");
  get_any.method = "GET";
  auto tenant = match(PathMatchType::kRegularExpression, "/r/[0-9]+(/.*)?");
  tenant.headers = {{ValueMatchType::kRegularExpression, "x-tenant", "t[0-9]{1,3}"}};
  auto versioned = match(PathMatchType::kRegularExpression, "/r/[a-z]+/v[0-9]");
  versioned.query_params = {{ValueMatchType::kExact, "v", "2"}};
  add("regexes", 50, {"shop.example.com", "*.example.com"},
      {rule({get_any, tenant, versioned}, {1}),
       rule({match(PathMatchType::kRegularExpression, "/r/[0-9]+"),
             match(PathMatchType::kRegularExpression, "(?i)/R/.*\\.JSON"),
             match(PathMatchType::kRegularExpression, ".*/x|/r/x/.*"),
             match(PathMatchType::kRegularExpression, "/r/\\pL+"),
             match(PathMatchType::kRegularExpression, "/r/(a|ab)(c|bcd)(d*)")},
            {1}),
       rule({match(PathMatchType::kRegularExpression, ".*")}, {1})});
  auto table = router::RouteTable::create(snap, options);
  if (!table.ok()) std::abort();
  return *table;
}

using Headers = std::vector<std::pair<std::string_view, std::string_view>>;

std::optional<std::string_view> header(const void* ctx, std::string_view name) {
  for (const auto& [n, v] : *static_cast<const Headers*>(ctx)) {
    if (n == name) return v;
  }
  return std::nullopt;
}

bool same(const router::Match& a, const router::Match& b) {
  if ((a.rule == nullptr) != (b.rule == nullptr)) return false;
  if (a.rule == nullptr) return true;
  return a.rule->route_label == b.rule->route_label && a.match_index == b.match_index &&
         a.matched_prefix_len == b.matched_prefix_len;
}

router::RouteTableOptions linear_options() {
  router::RouteTableOptions o;
  o.regex_set_min = static_cast<size_t>(-1);
  return o;
}

router::RouteTableOptions two_per_set() {
  router::RouteTableOptions o;
  o.regex_set_max_patterns = 2;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const router::RouteTable> table = make_table({});
  static const std::shared_ptr<const router::RouteTable> linear = make_table(linear_options());
  static const std::shared_ptr<const router::RouteTable> small = make_table(two_per_set());
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> fields;
  while (!in.empty() && fields.size() < 32) {
    size_t nl = in.find('\n');
    fields.push_back(in.substr(0, nl));
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  }
  fields.resize(std::max<size_t>(fields.size(), 4));
  Headers headers;
  for (size_t i = 4; i < fields.size(); ++i) {
    size_t colon = fields[i].find(':');
    if (colon != std::string_view::npos) {
      headers.emplace_back(fields[i].substr(0, colon), fields[i].substr(colon + 1));
    }
  }
  router::RequestView req;
  req.host = fields[0];
  req.path = fields[1];
  req.query = fields[2];
  req.method = fields[3];
  req.headers_ctx = &headers;
  req.header = &header;

  router::Match first = table->match(req);
  router::Match second = table->match(req);
  if (first.rule != second.rule || first.matched_prefix_len != second.matched_prefix_len ||
      first.match_index != second.match_index) {
    std::abort();
  }
  if (table->regex_set_stats().sets == 0 || linear->regex_set_stats().sets != 0) std::abort();
  if (!same(first, linear->match(req)) || !same(first, small->match(req))) std::abort();
  if (first.rule != nullptr) {
    size_t n = first.matched_prefix_len;
    if (n > req.path.size()) std::abort();
    if (n > 0 && n < req.path.size() && req.path[n] != '/') std::abort();
    int b = first.rule->pick_backend();
    if (b >= static_cast<int>(first.rule->rule->backends.size())) std::abort();
  }
  return 0;
}
