// Route status helpers; see status.h.
#include "controller/core/status.h"

#include <map>
#include <tuple>

#include <nlohmann/json.hpp>

namespace gantry::controller {

namespace {

using Key = std::tuple<std::string, std::string, std::string>;  // kind, namespace, name

Key key_of(const RouteStatus& s) { return {s.kind, s.namespace_, s.name}; }

// The snapshot routes a status stands for: a GatewayRoute maps to one route;
// an Ingress with several hosts to "name@host" routes.
std::vector<const snapshot::Route*> routes_of(const RouteStatus& s,
                                              const snapshot::Snapshot& snap) {
  std::vector<const snapshot::Route*> out;
  for (const auto& r : snap.routes) {
    if (r.kind != s.kind || r.namespace_ != s.namespace_) continue;
    if (r.name == s.name || (s.kind == "Ingress" && r.name.starts_with(s.name + "@")))
      out.push_back(&r);
  }
  return out;
}

bool same_routes(const std::vector<const snapshot::Route*>& a,
                 const std::vector<const snapshot::Route*>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(*a[i] == *b[i])) return false;
  return true;
}

std::string describe(const Condition& c) {
  std::string out = c.type + "=" + (c.status ? "True" : "False");
  if (!c.status) out += " (" + c.reason + "): " + c.message;
  return out;
}

std::string noun(const RouteStatus& s) { return s.kind == "Ingress" ? "ingress " : "route "; }

}  // namespace

const Condition* RouteStatus::find(std::string_view type) const {
  for (const auto& c : conditions)
    if (c.type == type) return &c;
  return nullptr;
}

void set_programmed(std::vector<RouteStatus>& statuses, const snapshot::Snapshot& desired,
                    const snapshot::Snapshot* applied, const std::string& rejection) {
  for (auto& s : statuses) {
    Condition c{"Programmed", false, "", "", s.observed_generation};
    auto wanted = routes_of(s, desired);
    const Condition* accepted = s.find("Accepted");
    if (wanted.empty() && accepted && accepted->status && s.find("IngressNginxAnnotations")) {
      c.status = true;  // an ingress-nginx canary: served through its main Ingress's routes
      c.reason = "Programmed";
      c.message = "a canary: served through the routes of the main Ingress of its host and path";
    } else if (wanted.empty()) {
      c.reason = "NotAccepted";
      c.message = "the route is not accepted, so it is not programmed";
    } else if (applied && same_routes(wanted, routes_of(s, *applied))) {
      c.status = true;
      c.reason = "Programmed";
      c.message = "served by the proxy (snapshot version " + std::to_string(applied->version) + ")";
    } else if (!rejection.empty()) {
      c.reason = "Rejected";
      c.message = "the proxy rejected the snapshot: " + rejection;
    } else {
      c.reason = "Pending";
      c.message = "waiting for the proxy to apply the snapshot";
    }
    bool replaced = false;
    for (auto& old : s.conditions) {
      if (old.type == "Programmed") {
        old = c;
        replaced = true;
      }
    }
    if (!replaced) s.conditions.push_back(std::move(c));
  }
}

std::vector<std::string> status_changes(const std::vector<RouteStatus>& before,
                                        const std::vector<RouteStatus>& after) {
  std::map<Key, const RouteStatus*> old;
  for (const auto& s : before) old[key_of(s)] = &s;
  std::vector<std::string> lines;
  for (const auto& s : after) {
    auto it = old.find(key_of(s));
    const RouteStatus* prev = it == old.end() ? nullptr : it->second;
    if (it != old.end()) old.erase(it);
    std::vector<std::string> parts;
    bool changed = false;
    for (const char* type : {"Accepted", "ResolvedRefs"}) {
      const Condition* now = s.find(type);
      if (!now) continue;
      const Condition* was = prev ? prev->find(type) : nullptr;
      if (!was || was->status != now->status || was->reason != now->reason ||
          was->message != now->message)
        changed = true;
      parts.push_back(describe(*now));
    }
    if (!changed) continue;
    std::string line = noun(s) + s.id() + ": ";
    for (size_t i = 0; i < parts.size(); ++i) line += (i ? ", " : "") + parts[i];
    lines.push_back(std::move(line));
  }
  for (const auto& [key, s] : old) lines.push_back(noun(*s) + s->id() + ": removed");
  return lines;
}

std::string statuses_to_json(const std::vector<RouteStatus>& statuses) {
  nlohmann::json routes = nlohmann::json::array();
  for (const auto& s : statuses) {
    nlohmann::json conditions = nlohmann::json::array();
    for (const auto& c : s.conditions) {
      conditions.push_back({{"type", c.type},
                            {"status", c.status ? "True" : "False"},
                            {"reason", c.reason},
                            {"message", c.message},
                            {"observedGeneration", c.observed_generation}});
    }
    routes.push_back({{"kind", s.kind},
                      {"namespace", s.namespace_},
                      {"name", s.name},
                      {"observedGeneration", s.observed_generation},
                      {"conditions", std::move(conditions)}});
  }
  return nlohmann::json{{"routes", std::move(routes)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gantry::controller
