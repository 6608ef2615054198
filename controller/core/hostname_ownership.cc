// Hostname ownership; see hostname_ownership.h.
#include "controller/core/hostname_ownership.h"

#include <algorithm>
#include <cctype>
#include <numeric>
#include <set>
#include <tuple>

namespace gantry::controller {

namespace {

std::string describe_host(const std::string& h) {
  return h.empty() ? "the catch-all (a route without hostnames)" : "hostname " + h;
}

// The wildcards that cover `h`, most specific first: "a.b.c" -> "*.b.c", "*.c";
// "*.b.c" -> "*.c". The catch-all and single labels have none.
std::vector<std::string> covering_wildcards(const std::string& h) {
  std::vector<std::string> out;
  if (h.empty()) return out;
  size_t start = h.rfind("*.", 0) == 0 ? 2 : 0;
  for (size_t dot = h.find('.', start); dot != std::string::npos; dot = h.find('.', dot + 1))
    out.push_back(std::string("*").append(h, dot));  // not "*" + std::string&&: GCC 12 -O3 false -Wrestrict (GCC PR 105329)
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

struct Owner {
  std::string namespace_;
  std::string route;  // "GatewayRoute team-a/shop"
};

bool is_dns_label(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  return std::all_of(l.begin(), l.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

bool valid_hostname(std::string_view h) {
  if (h.rfind("*.", 0) == 0) h.remove_prefix(2);
  if (h.empty() || h.size() > 253) return false;
  size_t start = 0;
  while (true) {
    size_t dot = h.find('.', start);
    if (!is_dns_label(h.substr(start, dot == std::string_view::npos ? dot : dot - start)))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

}  // namespace

std::vector<HostnameVerdict> decide_hostname_ownership(const std::vector<HostnameClaim>& claims,
                                                       const HostnameOwners& owners) {
  std::vector<size_t> order(claims.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = claims[a];
    const auto& y = claims[b];
    return std::tie(x.creation_timestamp, x.namespace_, x.name, x.kind) <
           std::tie(y.creation_timestamp, y.namespace_, y.name, y.kind);
  });

  // The operator's entry for `h`: exact first, then covering wildcards, most specific first.
  auto assigned = [&](const std::string& h) -> const std::pair<const std::string, std::vector<std::string>>* {
    if (auto it = owners.allowed.find(h); it != owners.allowed.end()) return &*it;
    for (const auto& w : covering_wildcards(h))
      if (auto it = owners.allowed.find(w); it != owners.allowed.end()) return &*it;
    return nullptr;
  };

  std::map<std::string, Owner> owned;  // hostname -> first claimant
  std::vector<HostnameVerdict> out(claims.size());
  for (size_t i : order) {
    const HostnameClaim& c = claims[i];
    HostnameVerdict& v = out[i];
    std::set<std::string> seen;
    for (const auto& h : c.hostnames) {
      if (!seen.insert(h).second) continue;
      if (const auto* entry = assigned(h)) {
        const auto& nss = entry->second;
        if (std::find(nss.begin(), nss.end(), c.namespace_) != nss.end()) {
          v.kept.push_back(h);
        } else {
          v.refused.push_back(
              {h, describe_host(h) + " is assigned to namespace" + (nss.size() == 1 ? " " : "s ") +
                      join(nss) + " by " + (owners.source.empty() ? "the operator" : owners.source) +
                      (entry->first == h ? "" : " (entry " + entry->first + ")") +
                      "; a route in namespace " + c.namespace_ + " cannot claim it"});
        }
        continue;
      }
      const Owner* owner = nullptr;
      std::string via;
      if (auto it = owned.find(h); it != owned.end()) {
        owner = &it->second;
      } else {
        for (const auto& w : covering_wildcards(h)) {
          if (auto wt = owned.find(w); wt != owned.end()) {
            owner = &wt->second;
            via = w;
            break;
          }
        }
      }
      if (owner && owner->namespace_ != c.namespace_) {
        v.refused.push_back(
            {h, describe_host(h) + " belongs to namespace " + owner->namespace_ + " (" +
                    (via.empty() ? "" : "under its wildcard " + via + "; ") + owner->route +
                    " claimed it first); a route in namespace " + c.namespace_ + " cannot claim it"});
        continue;
      }
      v.kept.push_back(h);
      owned.try_emplace(h, Owner{c.namespace_, c.kind + " " + c.namespace_ + "/" + c.name});
    }
  }
  return out;
}

Result<HostnameOwners> parse_hostname_owners(std::string_view text) {
  HostnameOwners out;
  size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    std::vector<std::string> words;
    std::string cur;
    for (char ch : line) {
      if (ch == ' ' || ch == '\t' || ch == ',' || ch == '\r') {
        if (!cur.empty()) words.push_back(std::move(cur));
        cur.clear();
      } else {
        cur += ch;
      }
    }
    if (!cur.empty()) words.push_back(std::move(cur));
    if (words.empty()) continue;
    std::string where = "line " + std::to_string(line_no) + ": ";
    std::string host = words[0];
    std::transform(host.begin(), host.end(), host.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    if (!valid_hostname(host))
      return Error{where + "\"" + words[0] + "\" is not a hostname or a *.wildcard"};
    if (words.size() < 2) return Error{where + host + " names no namespace"};
    std::vector<std::string> nss;
    for (size_t i = 1; i < words.size(); ++i) {
      if (!is_dns_label(words[i]))
        return Error{where + "\"" + words[i] + "\" is not a namespace name"};
      if (std::find(nss.begin(), nss.end(), words[i]) == nss.end()) nss.push_back(words[i]);
    }
    if (!out.allowed.emplace(host, std::move(nss)).second)
      return Error{where + host + " is listed twice"};
  }
  return out;
}

}  // namespace gantry::controller
