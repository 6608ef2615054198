// Compilation and matching of the RouteTable; see route_table.h for the shape.
//
// Compile: every (route, rule, match) triple becomes one Entry; the entries
// are stable-sorted once by the precedence of GATEWAYROUTE.md and then
// distributed, in that order, into the host levels their route belongs to, so
// every bucket of every level is already in precedence order. Match: visit
// levels from the most specific host down; within a level the first entry, in
// bucket order, that matches wins. The regex bucket is searched in one pass
// per RegexGroup (an anchored RE2::Set over a consecutive run of it); the
// hits are then taken in bucket order, exactly as the one-by-one walk would.
#include "proxy/router/route_table.h"

#include <re2/re2.h>
#include <re2/set.h>

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
  int32_t priority = 0;  // PathMatch::priority: higher first within the path kind
  const std::string* method = nullptr;
  std::vector<ValueMatcher> headers;
  std::vector<ValueMatcher> query;
  // Precedence keys beyond the match itself.
  int64_t created = 0;
  const std::string* route_id = nullptr;  // "ns/name"
  size_t route_pos = 0;                   // position in the snapshot: last resort, deterministic
  const std::vector<std::string>* listeners = nullptr;  // the route's; empty: the proxy's own
};

using EntryList = std::vector<const Entry*>;

// A consecutive run [begin, end) of a level's regex bucket. With a set, one
// DFA pass finds every pattern of the run that matches the whole path (set
// index i is entry begin + i); without one, the entries are tried in turn.
// Levels whose runs hold the same patterns in the same order (a route with
// many hostnames) share one set.
struct RegexGroup {
  size_t begin = 0;
  size_t end = 0;
  std::shared_ptr<const RE2::Set> set;
};

// Sets compiled so far for one table, keyed by their patterns in order
// (each length-prefixed); nullptr records a run RE2 could not compile.
using RegexSetCache = std::unordered_map<std::string, std::shared_ptr<const RE2::Set>>;

// The entries of one host specificity level, each bucket in precedence order.
struct HostLevel {
  StringMap<EntryList> exact;            // Exact path -> entries
  EntryList regex;                       // RegularExpression entries
  std::vector<RegexGroup> regex_groups;  // cover `regex` in order
  StringMap<EntryList> prefix;           // normalised prefix -> entries
  std::vector<bool> prefix_len;          // prefix_len[n]: some prefix of n characters exists
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
  if (a->priority != b->priority) return a->priority > b->priority;
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
  if (e.listeners->empty()) {
    if (!req.own_listener) return false;
  } else if (std::find(e.listeners->begin(), e.listeners->end(), req.listener) ==
             e.listeners->end()) {
    return false;
  }
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

// The first entry of regex[begin, end) whose pattern and conditions hold.
const Entry* match_regex_linear(const EntryList& regex, size_t begin, size_t end,
                                const RequestView& req) {
  for (size_t i = begin; i < end; ++i) {
    const Entry* e = regex[i];
    if (conditions_hold(*e, req) && RE2::FullMatch(req.path, *e->path_re)) return e;
  }
  return nullptr;
}

// The first entry of the level's regex bucket that matches: per group, one
// set search, then its hits in bucket order; a group none of whose hits
// passes the method / header / query checks hands over to the next group.
const Entry* match_regex(const HostLevel& level, const RequestView& req) {
  thread_local std::vector<int> hits;  // reused: no allocation once grown
  for (const RegexGroup& g : level.regex_groups) {
    const Entry* found = nullptr;
    if (g.set == nullptr) {
      found = match_regex_linear(level.regex, g.begin, g.end, req);
    } else {
      RE2::Set::ErrorInfo error{RE2::Set::kNoError};
      if (g.set->Match(req.path, &hits, &error)) {
        std::sort(hits.begin(), hits.end());
        for (int h : hits) {
          const Entry* e = level.regex[g.begin + static_cast<size_t>(h)];
          if (conditions_hold(*e, req)) {
            found = e;
            break;
          }
        }
      } else if (error.kind != RE2::Set::kNoError) {
        // The DFA ran out of its memory budget on this path: the same answer,
        // one pattern at a time.
        found = match_regex_linear(level.regex, g.begin, g.end, req);
      }
    }
    if (found != nullptr) return found;
  }
  return nullptr;
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
  if (!level.regex.empty()) {
    if (const Entry* e = match_regex(level, req)) return make_match(e, 0);
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

// Options of every regular expression the table compiles; a set uses the
// same ones (plus its memory budget), so both engines agree on syntax and
// semantics.
RE2::Options regex_options() {
  RE2::Options options;
  options.set_log_errors(false);
  return options;
}

// Groups regex[begin, end) of a level: one anchored set per run, a run RE2
// cannot compile within the budget split in two, a single pattern that still
// fails tried on its own. Never fails.
void build_regex_groups(HostLevel& level, size_t begin, size_t end,
                        const RouteTableOptions& options, RegexSetCache& cache,
                        RegexSetStats& stats) {
  if (begin == end) return;
  if (end - begin < 2) {
    level.regex_groups.push_back(RegexGroup{begin, end, nullptr});
    stats.linear_entries += end - begin;
    return;
  }
  std::string key;
  for (size_t i = begin; i < end; ++i) {
    const std::string& pattern = level.regex[i]->path_re->pattern();
    key.append(std::to_string(pattern.size())).append(":").append(pattern);
  }
  auto [it, fresh] = cache.try_emplace(std::move(key), nullptr);
  if (fresh) {
    RE2::Options re_options = regex_options();
    re_options.set_max_mem(options.regex_set_max_mem);
    auto set = std::make_shared<RE2::Set>(re_options, RE2::ANCHOR_BOTH);
    bool ok = true;
    for (size_t i = begin; i < end && ok; ++i) {
      ok = set->Add(level.regex[i]->path_re->pattern(), nullptr) == static_cast<int>(i - begin);
    }
    if (ok && set->Compile()) {
      it->second = std::move(set);
      stats.sets += 1;
    }
  }
  if (it->second != nullptr) {
    level.regex_groups.push_back(RegexGroup{begin, end, it->second});
    stats.set_patterns += end - begin;
    return;
  }
  stats.splits += 1;
  size_t mid = begin + (end - begin) / 2;
  build_regex_groups(level, begin, mid, options, cache, stats);
  build_regex_groups(level, mid, end, options, cache, stats);
}

void build_level_regex(HostLevel& level, const RouteTableOptions& options, RegexSetCache& cache,
                       RegexSetStats& stats) {
  const size_t n = level.regex.size();
  if (n == 0) return;
  if (n < std::max<size_t>(options.regex_set_min, 2)) {
    level.regex_groups.push_back(RegexGroup{0, n, nullptr});
    stats.linear_entries += n;
    return;
  }
  const size_t run = std::max<size_t>(options.regex_set_max_patterns, 1);
  for (size_t b = 0; b < n; b += run) {
    build_regex_groups(level, b, std::min(n, b + run), options, cache, stats);
  }
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
  RegexSetStats regex_set_stats;

  Result<const RE2*> regex(const std::string& pattern) {
    if (auto it = regexes.find(pattern); it != regexes.end()) return it->second.get();
    auto re = std::make_unique<RE2>(pattern, regex_options());
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
    std::shared_ptr<const snapshot::Snapshot> snap, const RouteTableOptions& options) {
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
        e.listeners = &route.listeners;
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
        e.priority = m.path.priority;
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
  RegexSetCache set_cache;
  for (auto& [host, level] : impl.exact_hosts) {
    build_level_regex(level, options, set_cache, impl.regex_set_stats);
  }
  for (auto& [suffix, level] : impl.wildcard_hosts) {
    build_level_regex(level, options, set_cache, impl.regex_set_stats);
  }
  build_level_regex(impl.any_host, options, set_cache, impl.regex_set_stats);
  return std::shared_ptr<const RouteTable>(std::move(table));
}

const RegexSetStats& RouteTable::regex_set_stats() const { return impl_->regex_set_stats; }

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
