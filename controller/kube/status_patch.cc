// Status write-back computation; see status_patch.h.
#include "controller/kube/status_patch.h"

#include <arpa/inet.h>

#include <ctime>

namespace gantry::controller::kube {

namespace {

// obj[key] when it is a string, else "" (nlohmann's value() throws on a wrong type;
// what others write into a status is not ours to trust).
std::string string_at(const nlohmann::json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string();
}

constexpr size_t kMaxMessage = 32768;  // the CRD's maxLength

std::string clip(std::string s) {
  if (s.size() > kMaxMessage) {
    s.resize(kMaxMessage - 3);
    s += "...";
  }
  return s;
}

const nlohmann::json* find_condition(const nlohmann::json& conds, const std::string& type) {
  if (!conds.is_array()) return nullptr;
  for (const auto& c : conds)
    if (c.is_object() && string_at(c, "type") == type) return &c;
  return nullptr;
}

bool is_ip(const std::string& s) {
  unsigned char buf[16];
  return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

}  // namespace

std::string format_rfc3339(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_rfc3339_micro(int64_t unix_micros) {
  std::time_t t = static_cast<std::time_t>(unix_micros / 1000000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf,
                static_cast<long long>(unix_micros % 1000000));
  return out;
}

std::string stable_message(const std::string& message) {
  static const std::string kMark = " (snapshot version ";
  size_t p = message.find(kMark);
  if (p == std::string::npos) return message;
  size_t end = message.find(')', p);
  if (end == std::string::npos) return message;
  return message.substr(0, p) + message.substr(end + 1);
}

std::optional<nlohmann::json> route_status_update(const RouteStatus& desired,
                                                  const nlohmann::json& observed,
                                                  const std::string& now_rfc3339) {
  nlohmann::json old_conds = nlohmann::json::array();
  int64_t old_gen = -1;
  if (observed.is_object()) {
    if (auto c = observed.find("conditions"); c != observed.end() && c->is_array()) old_conds = *c;
    if (auto g = observed.find("observedGeneration"); g != observed.end() && g->is_number_integer())
      old_gen = g->get<int64_t>();
  }
  bool changed = old_gen != desired.observed_generation;
  nlohmann::json conds = nlohmann::json::array();
  for (const auto& c : desired.conditions) {
    std::string status = c.status ? "True" : "False";
    std::string message = clip(stable_message(c.message));
    std::string reason = c.reason.empty() ? (c.status ? c.type : "Unknown") : c.reason;
    nlohmann::json out = {{"type", c.type},
                          {"status", status},
                          {"reason", reason},
                          {"message", message},
                          {"observedGeneration", c.observed_generation},
                          {"lastTransitionTime", now_rfc3339}};
    const nlohmann::json* old = find_condition(old_conds, c.type);
    if (old) {
      if (old->value("status", std::string()) == status) {
        auto ltt = old->find("lastTransitionTime");
        if (ltt != old->end() && ltt->is_string()) out["lastTransitionTime"] = *ltt;
      }
      bool same = old->value("status", std::string()) == status &&
                  old->value("reason", std::string()) == reason &&
                  old->value("message", std::string()) == message &&
                  old->value("observedGeneration", int64_t{-1}) == c.observed_generation &&
                  old->contains("lastTransitionTime");
      if (!same) changed = true;
    } else {
      changed = true;
    }
    conds.push_back(std::move(out));
  }
  // Conditions someone else owns stay.
  for (const auto& old : old_conds) {
    if (!old.is_object()) continue;
    std::string type = string_at(old, "type");
    if (!desired.find(type)) conds.push_back(old);
  }
  if (!changed) return std::nullopt;
  nlohmann::json status = observed.is_object() ? observed : nlohmann::json::object();
  status["observedGeneration"] = desired.observed_generation;
  status["conditions"] = std::move(conds);
  return status;
}

namespace {

void strip_times(nlohmann::json& j) {
  if (j.is_object()) {
    j.erase("lastTransitionTime");
    for (auto& [k, v] : j.items()) strip_times(v);
  } else if (j.is_array()) {
    for (auto& v : j) strip_times(v);
  }
}

// Gives each condition of `conds` its lastTransitionTime: the one in `old`
// (same type, same status), else `now`.
void stamp(nlohmann::json& conds, const nlohmann::json* old, const std::string& now) {
  if (!conds.is_array()) return;
  for (auto& c : conds) {
    c["lastTransitionTime"] = now;
    if (!old) continue;
    const nlohmann::json* o = find_condition(*old, string_at(c, "type"));
    if (o && string_at(*o, "status") == string_at(c, "status")) {
      auto ltt = o->find("lastTransitionTime");
      if (ltt != o->end() && ltt->is_string()) c["lastTransitionTime"] = *ltt;
    }
  }
}

const nlohmann::json* member(const nlohmann::json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

}  // namespace

std::string fingerprint_deep(const nlohmann::json& j) {
  nlohmann::json c = j;
  strip_times(c);
  return c.dump();
}

std::optional<nlohmann::json> object_status_update(const ObjectStatus& desired,
                                                   const std::string& controller_name,
                                                   const nlohmann::json& observed,
                                                   const std::string& now_rfc3339) {
  nlohmann::json status = observed.is_object() ? observed : nlohmann::json::object();
  for (auto& [k, v] : desired.status.items()) status[k] = v;
  const nlohmann::json* old_conds = member(observed, "conditions");
  if (auto c = status.find("conditions"); c != status.end() && desired.status.contains("conditions"))
    stamp(*c, old_conds, now_rfc3339);
  if (auto ls = status.find("listeners"); ls != status.end() && ls->is_array()) {
    const nlohmann::json* old = member(observed, "listeners");
    for (auto& l : *ls) {
      const nlohmann::json* match = nullptr;
      if (old && old->is_array())
        for (const auto& o : *old)
          if (o.is_object() && string_at(o, "name") == string_at(l, "name")) match = &o;
      if (auto c = l.find("conditions"); c != l.end())
        stamp(*c, match ? member(*match, "conditions") : nullptr, now_rfc3339);
    }
  }
  // Routes' parents and policies' ancestors: other controllers' entries kept.
  for (const auto& [list, ref] : {std::pair{"parents", "parentRef"}, std::pair{"ancestors", "ancestorRef"}}) {
    if (!desired.status.contains(list)) continue;
    nlohmann::json parents = nlohmann::json::array();
    const nlohmann::json* old = member(observed, list);
    if (old && old->is_array())
      for (const auto& o : *old)
        if (o.is_object() && string_at(o, "controllerName") != controller_name) parents.push_back(o);
    for (auto p : desired.status[list]) {
      const nlohmann::json* match = nullptr;
      if (old && old->is_array())
        for (const auto& o : *old)
          if (o.is_object() && string_at(o, "controllerName") == controller_name &&
              o.value(ref, nlohmann::json()) == p[ref])
            match = &o;
      stamp(p["conditions"], match ? member(*match, "conditions") : nullptr, now_rfc3339);
      parents.push_back(std::move(p));
    }
    status[list] = std::move(parents);
  }
  if (fingerprint_deep(status) == fingerprint_deep(observed.is_object() ? observed : nlohmann::json::object()))
    return std::nullopt;
  return status;
}

std::optional<nlohmann::json> ingress_status_update(const std::string& address,
                                                    const nlohmann::json& observed) {
  nlohmann::json entry = nlohmann::json::object();
  entry[is_ip(address) ? "ip" : "hostname"] = address;
  nlohmann::json want = nlohmann::json::array({entry});
  if (observed.is_object()) {
    auto lb = observed.find("loadBalancer");
    if (lb != observed.end() && lb->is_object()) {
      auto ing = lb->find("ingress");
      if (ing != lb->end() && *ing == want) return std::nullopt;
    }
  }
  nlohmann::json status = observed.is_object() ? observed : nlohmann::json::object();
  status["loadBalancer"] = {{"ingress", want}};
  return status;
}

RouteEvent route_event(const RouteStatus& s) {
  for (const char* type : {"Accepted", "ResolvedRefs", "IngressNginxAnnotations"}) {
    const Condition* c = s.find(type);
    if (c && !c->status) return RouteEvent{"Warning", c->reason, stable_message(c->message)};
  }
  return RouteEvent{"Normal", "Accepted", "the route is valid and its references are resolved"};
}

nlohmann::json event_object(const RouteEvent& e, const std::string& ns, const std::string& name,
                            const std::string& uid, int64_t unix_micros,
                            const std::string& instance, const std::string& kind) {
  nlohmann::json involved{{"apiVersion", kind == "Ingress" ? "networking.k8s.io/v1" : "gantry.dev/v1alpha1"},
                          {"kind", kind},
                          {"namespace", ns},
                          {"name", name}};
  if (!uid.empty()) involved["uid"] = uid;
  std::string message = e.message.size() > 1024 ? e.message.substr(0, 1021) + "..." : e.message;
  std::string seconds = format_rfc3339(unix_micros / 1000000);
  return nlohmann::json{
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"generateName", name + "."}, {"namespace", ns}}},
      {"involvedObject", std::move(involved)},
      {"type", e.type},
      {"reason", e.reason},
      {"action", "Translate"},  // required by the API once eventTime is set
      {"message", std::move(message)},
      {"source", {{"component", "gantry-controller"}}},
      {"reportingComponent", "gantry.dev/controller"},
      {"reportingInstance", instance.substr(0, 128)},
      {"eventTime", format_rfc3339_micro(unix_micros)},
      {"firstTimestamp", seconds},
      {"lastTimestamp", seconds},
      {"count", 1}};
}

}  // namespace gantry::controller::kube
