// RouteTable: a snapshot's routes compiled for matching (GATEWAYROUTE.md "Matching").
//
// create() compiles a validated snapshot once; the table is immutable
// afterwards and shared by every worker (published with one atomic
// shared_ptr swap; a request pins the table it started with). Lookup is a
// walk, never a sort:
//   host:  exact hostname in a hash map, then wildcard suffixes longest first
//          (one hash probe per '.' of the host), then the routes without
//          hostnames; a level none of whose rules matches falls through to
//          the next less specific one.
//   path:  within a level, every (route, rule, match) triple is an entry
//          sorted by precedence at compile time and bucketed: Exact paths in
//          a hash map (O(1)), regular expressions in one sorted list
//          matched in one pass (anchored RE2::Set over consecutive runs of
//          the list, each run's hits then taken in precedence order),
//          prefixes in a hash map keyed by the normalised prefix, probed
//          longest first once per path segment boundary whose length some
//          prefix of that level has.
// Cost of one match: O(labels of host) hash probes + O(segments of path)
// hash probes + one DFA pass over the path per regex set of the visited
// levels + the method / header / query checks of the candidate entries
// visited before the winner. The hot path allocates nothing except RE2::Set's
// scratch set of hit indices (one block per set searched) and a
// regular-expression query match on a percent-encoded value, which decodes
// into a temporary.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/router/weighted_picker.h"
#include "proxy/snapshot/model.h"

namespace gantry::router {

// The request as the router sees it; the HTTP layer has normalised it.
struct RequestView {
  std::string_view host;    // lower-case, no port ("" if none)
  std::string_view path;    // normalised, starts with '/', no query
  std::string_view query;   // raw query without '?'; pairs split on '&', names and
                            // values percent-decoded, '+' is NOT a space; when a
                            // name repeats, its first occurrence is the one compared
  std::string_view method;  // e.g. "GET", compared case-sensitively
  // Header lookup: the first value of the header with this lower-case name,
  // nullopt when absent. `header == nullptr` means "no headers".
  const void* headers_ctx = nullptr;
  std::optional<std::string_view> (*header)(const void* ctx, std::string_view lower_name) = nullptr;
  // The listener the request came in on (snapshot::Listener::name). A route
  // that lists listeners matches only on those; a route that lists none only
  // on the proxy's own listeners (`own_listener`).
  std::string_view listener;
  bool own_listener = true;
};

// One rule after compilation. Lives as long as the RouteTable that owns it.
struct CompiledRule {
  // Builds the backend picker from rule->backends' weights.
  CompiledRule(const snapshot::Route* route, const snapshot::Rule* rule, size_t rule_index,
               std::string route_label);

  const snapshot::Route* route = nullptr;  // points into the table's snapshot
  const snapshot::Rule* rule = nullptr;
  size_t rule_index = 0;
  std::string route_label;  // "default/shop#1" (ns/name#ruleIndex)

  // Weighted choice among rule->backends: smooth weighted round robin over the
  // refs (weight 0 never chosen). Thread-safe, lock-free. Returns the index
  // into rule->backends, or -1 when all weights are 0 (or there are no refs).
  int pick_backend() const { return picker.pick(); }

  WeightedPicker picker;
};

struct Match {
  const CompiledRule* rule = nullptr;  // nullptr: no route -> 404
  // For PathPrefix matches (including a rule without matches, which is
  // PathPrefix "/"): the length of the matched prefix in `path`, with the
  // value's trailing '/' ignored, so path.substr(matched_prefix_len) is empty
  // or starts with '/' ("/" itself matches with length 0). 0 otherwise.
  size_t matched_prefix_len = 0;
  // The RouteMatch that matched (nullptr for a rule without matches) and its
  // index in rule->rule->matches.
  const snapshot::RouteMatch* route_match = nullptr;
  size_t match_index = 0;
};

// How create() compiles the RegularExpression paths of a host level
// (docs/routing.md, "Regular expressions in one pass"). The defaults are the
// production values; tests shrink them to exercise splitting and fallbacks.
struct RouteTableOptions {
  // A level with at least this many regex entries matches them with RE2::Set;
  // below it each is tried in turn (one FullMatch beats a set's bookkeeping).
  size_t regex_set_min = 2;
  // At most this many patterns per set: a level with more gets several sets,
  // each a consecutive run of the precedence order, searched in that order.
  size_t regex_set_max_patterns = 4096;
  // RE2 max_mem of one set: a quarter bounds the compiled program, the rest
  // the DFA state cache (filled lazily while matching). A run RE2 cannot
  // compile within it is split in two, down to single patterns tried one by
  // one; a snapshot is never rejected for it.
  int64_t regex_set_max_mem = int64_t{16} << 20;
};

// What create() made of the regular-expression paths, over all host levels.
struct RegexSetStats {
  size_t sets = 0;            // RE2::Set objects compiled (levels with the same runs share one)
  size_t set_patterns = 0;    // entries matched through a set, summed over the levels
  size_t linear_entries = 0;  // entries tried one by one (small levels, split down to one)
  size_t splits = 0;          // runs split in two because RE2 could not compile them
};

class RouteTable {
 public:
  // Compiles a validated snapshot. Errors (e.g. a regex RE2 rejects) name the
  // route and the field: "route default/shop rules[1].matches[0].path: ...".
  static Result<std::shared_ptr<const RouteTable>> create(
      std::shared_ptr<const snapshot::Snapshot> snap, const RouteTableOptions& options = {});

  Match match(const RequestView& req) const;

  const snapshot::Snapshot& snapshot() const { return *snap_; }
  size_t rule_count() const { return rules_.size(); }
  // Every compiled rule, in snapshot order (route, then rule).
  const std::deque<CompiledRule>& rules() const { return rules_; }
  const RegexSetStats& regex_set_stats() const;

  ~RouteTable();
  RouteTable(const RouteTable&) = delete;
  RouteTable& operator=(const RouteTable&) = delete;

 private:
  struct Impl;
  explicit RouteTable(std::shared_ptr<const snapshot::Snapshot> snap);

  std::shared_ptr<const snapshot::Snapshot> snap_;
  std::deque<CompiledRule> rules_;  // deque: stable addresses, WeightedPicker is not movable
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::router
