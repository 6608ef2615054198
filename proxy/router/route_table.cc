// Compilation and matching of the RouteTable; see route_table.h for the shape.
//
// Compile: every (route, rule, match) triple becomes one Entry; the entries
// are stable-sorted once by the precedence of GATEWAYROUTE.md and then
// distributed, in that order, into the host levels their route belongs to, so
// every bucket of every level is already in precedence order. Match: visit
// levels from the most specific host down; within a level the first entry, in
// bucket order, that matches wins.
#include "proxy/router/route_table.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <unordered_map>
#include <unordered_set>

namespace gantry::router {
namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

// A header or query parameter condition, compiled.
struct ValueMatcher {
  std::string name;         // headers: lower-cased; query: as given (case-sensitive)
  std::string value;        // Exact value
  const RE2* re = nullptr;  // RegularExpression: full match
};

// One (route, rule, match) triple.
struct Entry {
  const CompiledRule* rule = nullptr;
  const snapshot::RouteMatch* route_match = nullptr;  // nullptr: rule without matches
  size_t match_index = 0;
  snapshot::PathMatchType path_type = snapshot::PathMatchType::kPathPrefix;
  std::string path;  // Exact: the value; PathPrefix: without a trailing '/' ("/" -> "")
  const RE2* path_re = nullptr;
  const std::string* method = nullptr;
  std::vector<ValueMatcher> headers;
  std::vector<ValueMatcher> query;
  // Precedence keys beyond the match itself.
  int64_t created = 0;
  const std::string* route_id = nullptr;  // "ns/name"
  size_t route_pos = 0;                   // position in the snapshot: last resort, deterministic
};

using EntryList = std::vector<const Entry*>;

// The entries of one host specificity level, each bucket in precedence order.
struct HostLevel {
  StringMap<EntryList> exact;    // Exact path -> entries
  EntryList regex;               // RegularExpression entries
  StringMap<EntryList> prefix;   // normalised prefix -> entries
  std::vector<bool> prefix_len;  // prefix_len[n]: some prefix of n characters exists
};

int path_rank(snapshot::PathMatchType t) {
  switch (t) {
    case snapshot::PathMatchType::kExact:
      return 0;
    case snapshot::PathMatchType::kRegularExpression:
      return 1;
    case snapshot::PathMatchType::kPathPrefix:
      return 2;
  }
  return 3;
}

// Strict weak order: true when `a` takes precedence over `b`.
bool precedes(const Entry* a, const Entry* b) {
  int ra = path_rank(a->path_type), rb = path_rank(b->path_type);
  if (ra != rb) return ra < rb;
  if (a->path_type == snapshot::PathMatchType::kPathPrefix && a->path.size() != b->path.size()) {
    return a->path.size() > b->path.size();
  }
  if ((a->method != nullptr) != (b->method != nullptr)) return a->method != nullptr;
  if (a->headers.size() != b->headers.size()) return a->headers.size() > b->headers.size();
  if (a->query.size() != b->query.size()) return a->query.size() > b->query.size();
  if (a->created != b->created) return a->created < b->created;
  if (*a->route_id != *b->route_id) return *a->route_id < *b->route_id;
  if (a->route_pos != b->route_pos) return a->route_pos < b->route_pos;
  if (a->rule->rule_index != b->rule->rule_index) return a->rule->rule_index < b->rule->rule_index;
  return a->match_index < b->match_index;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The percent-decoded character at s[i]; advances i past it. A '%' not
// followed by two hex digits stands for itself. '+' is not a space.
char decode_at(std::string_view s, size_t& i) {
  char c = s[i++];
  if (c == '%' && i + 1 < s.size()) {
    int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);
    if (hi >= 0 && lo >= 0) {
      i += 2;
      return static_cast<char>(hi * 16 + lo);
    }
  }
  return c;
}

bool decoded_equals(std::string_view encoded, std::string_view want) {
  size_t i = 0, j = 0;
  while (i < encoded.size()) {
    if (j == want.size() || decode_at(encoded, i) != want[j]) return false;
    ++j;
  }
  return j == want.size();
}

// The raw (still encoded) value of the first pair whose decoded name is `name`.
std::optional<std::string_view> find_query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string_view raw_name = pair.substr(0, eq);
    if (decoded_equals(raw_name, name)) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
  }
  return std::nullopt;
}

bool query_value_matches(const ValueMatcher& m, std::string_view raw) {
  if (m.re == nullptr) return decoded_equals(raw, m.value);
  if (raw.find('%') == std::string_view::npos) return RE2::FullMatch(raw, *m.re);
  std::string decoded;
  decoded.reserve(raw.size());
  for (size_t i = 0; i < raw.size();) decoded.push_back(decode_at(raw, i));
  return RE2::FullMatch(decoded, *m.re);
}

// Everything of an entry but its path.
bool conditions_hold(const Entry& e, const RequestView& req) {
  if (e.method != nullptr && req.method != *e.method) return false;
  for (const ValueMatcher& h : e.headers) {
    if (req.header == nullptr) return false;
    std::optional<std::string_view> v = req.header(req.headers_ctx, h.name);
    if (!v) return false;
    if (h.re != nullptr ? !RE2::FullMatch(*v, *h.re) : *v != h.value) return false;
  }
  for (const ValueMatcher& q : e.query) {
    std::optional<std::string_view> raw = find_query_value(req.query, q.name);
    if (!raw || !query_value_matches(q, *raw)) return false;
  }
  return true;
}

Match make_match(const Entry* e, size_t prefix_len) {
  return Match{e->rule, prefix_len, e->route_match, e->match_index};
}

Match match_level(const HostLevel& level, const RequestView& req) {
  const std::string_view path = req.path;
  if (!level.exact.empty()) {
    if (auto it = level.exact.find(path); it != level.exact.end()) {
      for (const Entry* e : it->second) {
        if (conditions_hold(*e, req)) return make_match(e, 0);
      }
    }
  }
  for (const Entry* e : level.regex) {
    if (conditions_hold(*e, req) && RE2::FullMatch(path, *e->path_re)) return make_match(e, 0);
  }
  if (level.prefix.empty()) return {};
  // Candidate prefixes end at a segment boundary: the end of the path or a
  // '/'. Longest first; the empty candidate (prefix "/") always comes last.
  const size_t max_len = level.prefix_len.size() - 1;
  size_t p = path.size() <= max_len ? path.size() : path.rfind('/', max_len);
  if (p == std::string_view::npos) p = 0;
  while (true) {
    if (level.prefix_len[p]) {
      if (auto it = level.prefix.find(path.substr(0, p)); it != level.prefix.end()) {
        for (const Entry* e : it->second) {
          if (conditions_hold(*e, req)) return make_match(e, p);
        }
      }
    }
    if (p == 0) break;
    size_t q = path.rfind('/', p - 1);
    p = q == std::string_view::npos ? 0 : q;
  }
  return {};
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

struct RouteTable::Impl {
  std::vector<Entry> entries;               // sized once; levels point into it
  std::vector<std::string> route_ids;       // per snapshot route: "ns/name"
  StringMap<std::unique_ptr<RE2>> regexes;  // pattern -> compiled, shared by entries
  StringMap<HostLevel> exact_hosts;
  StringMap<HostLevel> wildcard_hosts;  // "*.example.com" is keyed ".example.com"
  size_t max_wildcard_len = 0;
  HostLevel any_host;

  Result<const RE2*> regex(const std::string& pattern) {
    if (auto it = regexes.find(pattern); it != regexes.end()) return it->second.get();
    RE2::Options options;
    options.set_log_errors(false);
    auto re = std::make_unique<RE2>(pattern, options);
    if (!re->ok()) {
      return Error{"invalid regular expression \"" + pattern + "\": " + re->error()};
    }
    const RE2* raw = re.get();
    regexes.emplace(pattern, std::move(re));
    return raw;
  }
};

CompiledRule::CompiledRule(const snapshot::Route* route_in, const snapshot::Rule* rule_in,
                           size_t rule_index_in, std::string route_label_in)
    : route(route_in),
      rule(rule_in),
      rule_index(rule_index_in),
      route_label(std::move(route_label_in)),
      picker([&] {
        std::vector<uint32_t> weights;
        weights.reserve(rule_in->backends.size());
        for (const snapshot::BackendRef& b : rule_in->backends) weights.push_back(b.weight);
        return weights;
      }()) {}

RouteTable::RouteTable(std::shared_ptr<const snapshot::Snapshot> snap)
    : snap_(std::move(snap)), impl_(std::make_unique<Impl>()) {}

RouteTable::~RouteTable() = default;

Result<std::shared_ptr<const RouteTable>> RouteTable::create(
    std::shared_ptr<const snapshot::Snapshot> snap) {
  if (!snap) return Error{"route table: no snapshot"};
  std::shared_ptr<RouteTable> table(new RouteTable(std::move(snap)));
  Impl& impl = *table->impl_;
  const std::vector<snapshot::Route>& routes = table->snap_->routes;

  size_t entry_count = 0;
  for (const snapshot::Route& route : routes) {
    for (const snapshot::Rule& rule : route.rules) {
      entry_count += std::max<size_t>(1, rule.matches.size());
    }
  }
  impl.entries.reserve(entry_count);  // no reallocation below: levels keep pointers
  impl.route_ids.reserve(routes.size());

  for (size_t ri = 0; ri < routes.size(); ++ri) {
    const snapshot::Route& route = routes[ri];
    const std::string& id = impl.route_ids.emplace_back(route.id());
    for (size_t k = 0; k < route.rules.size(); ++k) {
      const snapshot::Rule& rule = route.rules[k];
      const CompiledRule& compiled =
          table->rules_.emplace_back(&route, &rule, k, id + "#" + std::to_string(k));
      auto field = [&](size_t mi, const std::string& what) {
        return "route " + id + " rules[" + std::to_string(k) + "].matches[" + std::to_string(mi) +
               "]." + what + ": ";
      };

      auto new_entry = [&](const snapshot::RouteMatch* m, size_t mi) -> Entry& {
        Entry& e = impl.entries.emplace_back();
        e.rule = &compiled;
        e.route_match = m;
        e.match_index = mi;
        e.created = route.creation_timestamp;
        e.route_id = &id;
        e.route_pos = ri;
        return e;
      };

      if (rule.matches.empty()) {
        new_entry(nullptr, 0);  // PathPrefix "/": path "" matches every request
        continue;
      }
      for (size_t mi = 0; mi < rule.matches.size(); ++mi) {
        const snapshot::RouteMatch& m = rule.matches[mi];
        Entry& e = new_entry(&m, mi);
        e.path_type = m.path.type;
        switch (m.path.type) {
          case snapshot::PathMatchType::kExact:
            e.path = m.path.value;
            break;
          case snapshot::PathMatchType::kPathPrefix:
            e.path = m.path.value;
            if (!e.path.empty() && e.path.back() == '/') e.path.pop_back();
            break;
          case snapshot::PathMatchType::kRegularExpression: {
            Result<const RE2*> re = impl.regex(m.path.value);
            if (!re) return Error{field(mi, "path") + re.error().message};
            e.path_re = *re;
            break;
          }
        }
        if (m.method) e.method = &*m.method;
        for (size_t hi = 0; hi < m.headers.size(); ++hi) {
          const snapshot::ValueMatch& h = m.headers[hi];
          ValueMatcher& vm = e.headers.emplace_back(ValueMatcher{lower(h.name), h.value, nullptr});
          if (h.type == snapshot::ValueMatchType::kRegularExpression) {
            Result<const RE2*> re = impl.regex(h.value);
            if (!re) {
              return Error{field(mi, "headers[" + std::to_string(hi) + "]") + re.error().message};
            }
            vm.re = *re;
          }
        }
        for (size_t qi = 0; qi < m.query_params.size(); ++qi) {
          const snapshot::ValueMatch& q = m.query_params[qi];
          ValueMatcher& vm = e.query.emplace_back(ValueMatcher{q.name, q.value, nullptr});
          if (q.type == snapshot::ValueMatchType::kRegularExpression) {
            Result<const RE2*> re = impl.regex(q.value);
            if (!re) {
              return Error{field(mi, "queryParams[" + std::to_string(qi) + "]") +
                           re.error().message};
            }
            vm.re = *re;
          }
        }
      }
    }
  }

  // The host levels of each route (deduplicated). unordered_map nodes are
  // stable, so the pointers survive later insertions.
  std::vector<std::vector<HostLevel*>> route_levels(routes.size());
  for (size_t ri = 0; ri < routes.size(); ++ri) {
    std::unordered_set<HostLevel*> seen;
    auto add = [&](HostLevel* level) {
      if (seen.insert(level).second) route_levels[ri].push_back(level);
    };
    if (routes[ri].hostnames.empty()) add(&impl.any_host);
    for (const std::string& raw : routes[ri].hostnames) {
      std::string host = lower(raw);
      if (host == "*") {
        add(&impl.any_host);
      } else if (host.size() > 2 && host[0] == '*' && host[1] == '.') {
        std::string suffix = host.substr(1);
        impl.max_wildcard_len = std::max(impl.max_wildcard_len, suffix.size());
        add(&impl.wildcard_hosts[suffix]);
      } else {
        add(&impl.exact_hosts[host]);
      }
    }
  }

  EntryList order;
  order.reserve(impl.entries.size());
  for (const Entry& e : impl.entries) order.push_back(&e);
  std::stable_sort(order.begin(), order.end(), precedes);
  for (const Entry* e : order) {
    for (HostLevel* level : route_levels[e->route_pos]) {
      switch (e->path_type) {
        case snapshot::PathMatchType::kExact:
          level->exact[e->path].push_back(e);
          break;
        case snapshot::PathMatchType::kRegularExpression:
          level->regex.push_back(e);
          break;
        case snapshot::PathMatchType::kPathPrefix:
          level->prefix[e->path].push_back(e);
          if (level->prefix_len.size() <= e->path.size()) {
            level->prefix_len.resize(e->path.size() + 1, false);
          }
          level->prefix_len[e->path.size()] = true;
          break;
      }
    }
  }
  return std::shared_ptr<const RouteTable>(std::move(table));
}

Match RouteTable::match(const RequestView& req) const {
  const Impl& impl = *impl_;
  const std::string_view host = req.host;
  if (!host.empty()) {
    if (!impl.exact_hosts.empty()) {
      if (auto it = impl.exact_hosts.find(host); it != impl.exact_hosts.end()) {
        if (Match m = match_level(it->second, req); m.rule != nullptr) return m;
      }
    }
    if (!impl.wildcard_hosts.empty()) {
      // Suffixes after each '.' (the first label must be non-empty): longest first.
      for (size_t i = host.find('.', 1); i != std::string_view::npos; i = host.find('.', i + 1)) {
        std::string_view suffix = host.substr(i);
        if (suffix.size() > impl.max_wildcard_len) continue;
        if (auto it = impl.wildcard_hosts.find(suffix); it != impl.wildcard_hosts.end()) {
          if (Match m = match_level(it->second, req); m.rule != nullptr) return m;
        }
      }
    }
  }
  return match_level(impl.any_host, req);
}

}  // namespace gantry::router
