// BackendTLSPolicy and Gateway backend client certificates; see backend_tls.h.
#include "controller/core/backend_tls.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "proxy/snapshot/validate.h"

namespace gantry::controller {

namespace {

bool is_core(const std::string& group) { return group.empty() || group == "core"; }

Condition cond(const char* type, bool status, std::string reason, std::string message,
               int64_t generation) {
  return Condition{type, status, std::move(reason), std::move(message), generation};
}

// What one policy asks for, once judged (before conflicts).
struct Judged {
  const BackendTLSPolicy* policy = nullptr;
  Condition accepted, resolved_refs;
  bool usable = false;  // Accepted before conflicts: its TLS is the configured one
  snapshot::UpstreamTls tls;
};

Judged judge(const Cache& cache, const BackendTLSPolicy& p) {
  const int64_t gen = p.meta.generation;
  Judged j;
  j.policy = &p;
  j.tls.server_name = p.hostname;
  j.tls.verify = true;
  j.resolved_refs = cond("ResolvedRefs", true, "ResolvedRefs", "all references are resolved", gen);
  std::string invalid;  // Accepted=False Invalid: why
  for (const auto& san : p.subject_alt_names) {
    if (san.type == "Hostname" && !san.hostname.empty())
      j.tls.subject_alt_names.push_back(san.hostname);
    else if (san.type == "URI" && !san.uri.empty())
      j.tls.subject_alt_names.push_back(san.uri);
    else if (invalid.empty())
      invalid = "validation.subjectAltNames: type " + san.type + " with an empty value (want Hostname with hostname, URI with uri)";
  }
  size_t valid_cas = 0;
  std::string ca_pem;
  for (size_t i = 0; i < p.ca_certificate_refs.size(); ++i) {
    const auto& ref = p.ca_certificate_refs[i];
    std::string field = "validation.caCertificateRefs[" + std::to_string(i) + "]";
    std::string problem, reason = "InvalidCACertificateRef";
    if (!is_core(ref.group) || ref.kind != "ConfigMap") {
      reason = "InvalidKind";
      problem = field + ": kind " + (ref.group.empty() ? "" : ref.group + "/") + ref.kind +
                " is not supported (want ConfigMap)";
    } else {
      auto it = cache.config_maps.find(p.meta.namespace_ + "/" + ref.name);
      if (it == cache.config_maps.end()) {
        problem = field + ": ConfigMap " + p.meta.namespace_ + "/" + ref.name + " not found";
      } else {
        auto ca = it->second.data.find("ca.crt");
        if (ca == it->second.data.end() || ca->second.empty()) {
          problem = field + ": ConfigMap " + it->first + " has no ca.crt";
        } else if (std::string why = ca_bundle_problem(ca->second); !why.empty()) {
          problem = field + ": ConfigMap " + it->first + " ca.crt: " + why;
        } else {
          ++valid_cas;
          if (!ca_pem.empty() && ca_pem.back() != '\n') ca_pem += '\n';
          ca_pem += ca->second;
        }
      }
    }
    if (!problem.empty() && j.resolved_refs.status)
      j.resolved_refs = cond("ResolvedRefs", false, reason, problem, gen);
  }
  j.tls.ca_pem = ca_pem;
  const auto& wk = p.well_known_ca_certificates;
  if (wk && !p.ca_certificate_refs.empty() && invalid.empty())
    invalid = "validation: caCertificateRefs and wellKnownCACertificates are exclusive";
  if (wk && *wk != "System" && invalid.empty())
    invalid = "validation.wellKnownCACertificates: " + *wk + " is not supported (want System)";
  if (!wk && p.ca_certificate_refs.empty() && invalid.empty())
    invalid = "validation: caCertificateRefs or wellKnownCACertificates is required";
  if (wk && *wk == "System") j.tls.system_ca = true;
  if (!invalid.empty()) {
    j.accepted = cond("Accepted", false, "Invalid", invalid, gen);
  } else if (!p.ca_certificate_refs.empty() && valid_cas == 0) {
    j.accepted = cond("Accepted", false, "NoValidCACertificate",
                      "no caCertificateRef is valid: " + j.resolved_refs.message, gen);
  } else if (std::string why = tls_problem(j.tls); !why.empty()) {
    j.accepted = cond("Accepted", false, "Invalid", "validation: " + why, gen);
  } else {
    j.accepted = cond("Accepted", true, "Accepted", "the policy is applied", gen);
    j.usable = true;
  }
  return j;
}

bool before(const BackendTLSPolicy* a, const BackendTLSPolicy* b) {
  return std::tie(a->meta.creation_timestamp, a->meta.namespace_, a->meta.name) <
         std::tie(b->meta.creation_timestamp, b->meta.namespace_, b->meta.name);
}

nlohmann::json conditions_json(const std::vector<Condition>& conds) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& c : conds)
    out.push_back({{"type", c.type},
                   {"status", c.status ? "True" : "False"},
                   {"reason", c.reason},
                   {"message", c.message},
                   {"observedGeneration", c.observed_generation}});
  return out;
}

}  // namespace

std::string tls_problem(const snapshot::UpstreamTls& tls) {
  // The proxy's own validator on a cluster of one's own: what translate
  // emits must pass it (the snapshot would be NACKed).
  snapshot::Snapshot probe;
  probe.version = 1;
  snapshot::Cluster c;
  c.name = "probe";
  c.tls = tls;
  probe.clusters.push_back(std::move(c));
  auto errors = snapshot::validate(probe);
  if (errors.empty()) return {};
  std::string e = std::move(errors.front());
  const std::string prefix = "cluster probe tls";
  if (e.starts_with(prefix)) e.erase(0, prefix.size());
  if (e.starts_with(".") || e.starts_with(":")) e.erase(0, 1);
  while (e.starts_with(" ")) e.erase(0, 1);
  return e;
}

std::string ca_bundle_problem(const std::string& pem) {
  snapshot::UpstreamTls t;
  t.server_name = "probe.invalid";
  t.ca_pem = pem;
  if (pem.empty()) return "no PEM certificate";
  std::string why = tls_problem(t);
  if (why.starts_with("caPem: ")) why.erase(0, 7);
  return why;
}

BackendTlsModel build_backend_tls(const Cache& cache, const GatewayApiModel& model,
                                  const CertificateCheck& check_certificate) {
  BackendTlsModel out;

  // ---- Gateways: spec.tls.backend.clientCertificateRef, and ResolvedRefs.
  // The condition is written for Gateways with spec.tls.backend only (the
  // other Gateways' status stays as it was before this feature).
  for (const auto& [key, gs] : model.gateways) {
    const Gateway& gw = *gs.gateway;
    if (!gw.backend_client_certificate) continue;
    const int64_t gen = gw.meta.generation;
    Condition c = cond("ResolvedRefs", true, "ResolvedRefs", "all references are resolved", gen);
    size_t unresolved = 0;
    for (const auto& ls : gs.listeners)
      for (const auto& lc : ls.conditions)
        if (lc.type == "ResolvedRefs" && !lc.status) ++unresolved;
    if (unresolved > 0)
      c = cond("ResolvedRefs", false, "ListenersNotResolved",
               std::to_string(unresolved) + " listener(s) have unresolved references", gen);
    {
      const GwObjectRef& ref = *gw.backend_client_certificate;
      const std::string field = "spec.tls.backend.clientCertificateRef";
      std::string ns = ref.namespace_.value_or(gw.meta.namespace_);
      std::string secret = ns + "/" + ref.name;
      std::string problem, reason = "InvalidClientCertificateRef";
      if (!is_core(ref.group) || ref.kind != "Secret") {
        problem = field + ": kind " + (ref.group.empty() ? "" : ref.group + "/") + ref.kind +
                  " is not supported (want Secret)";
      } else if (ns != gw.meta.namespace_ &&
                 !reference_granted(cache, kGatewayGroup, "Gateway", gw.meta.namespace_, "",
                                    "Secret", ns, ref.name)) {
        reason = "RefNotPermitted";
        problem = field + ": Secret " + secret + " is in another namespace and no ReferenceGrant allows it";
      } else if (!cache.secrets.count(secret)) {
        problem = field + ": Secret " + secret + " not found";
      } else if (std::string why = check_certificate(secret); !why.empty()) {
        problem = field + ": " + why;
      }
      if (problem.empty())
        out.client_certificates[key] = secret;
      else
        c = cond("ResolvedRefs", false, reason, problem, gen);
    }
    out.gateway_resolved_refs[key] = std::move(c);
  }

  // ---- Which Gateways reach which Services (the policies' ancestors):
  // Service "ns/name" -> port number (0: unknown) -> Gateways.
  std::map<std::string, std::map<int64_t, std::set<std::string>>> reached;
  for (const auto& b : model.routes) {
    auto pit = model.parents.find({b.kind, b.route->meta.key()});
    if (pit == model.parents.end()) continue;
    std::set<std::string> gws;
    for (const auto& v : pit->second)
      if (v.accepted) gws.insert(v.ref.namespace_.value_or(b.route->meta.namespace_) + "/" + v.ref.name);
    auto add = [&](const GrBackendRef& r) {
      if (!is_core(r.group) || r.kind != "Service") return;
      auto& ports = reached[r.namespace_.value_or(b.route->meta.namespace_) + "/" + r.name][r.port.value_or(0)];
      ports.insert(gws.begin(), gws.end());
    };
    for (const auto& rule : b.route->rules) {
      for (const auto& r : rule.backend_refs) add(r);
      for (const auto& m : rule.filters.request_mirrors) add(m.backend_ref);
    }
  }

  // ---- Policies: judged, then conflicts per target (Service, sectionName).
  std::vector<const BackendTLSPolicy*> order;
  for (const auto& [key, p] : cache.backend_tls_policies) order.push_back(&p);
  std::sort(order.begin(), order.end(), before);
  std::map<std::pair<std::string, std::string>, const Judged*> winner;  // (svc, section) -> policy
  std::vector<Judged> judged;
  judged.reserve(order.size());
  for (const BackendTLSPolicy* p : order) judged.push_back(judge(cache, *p));
  for (Judged& j : judged) {
    const BackendTLSPolicy& p = *j.policy;
    BackendTlsPolicyVerdict v{j.accepted, j.resolved_refs, {}};
    std::set<std::string> ancestors;
    std::string lost_to;
    for (const auto& t : p.target_refs) {
      if (!is_core(t.group) || t.kind != "Service") continue;
      std::string svc = p.meta.namespace_ + "/" + t.name;
      auto [it, first] = winner.emplace(std::make_pair(svc, t.section_name.value_or("")), &j);
      if (!first && lost_to.empty()) lost_to = it->second->policy->meta.key();
      auto rit = reached.find(svc);
      auto sit = cache.services.find(svc);
      if (rit == reached.end()) continue;
      for (const auto& [port, gws] : rit->second) {
        bool match = !t.section_name;
        if (t.section_name && sit != cache.services.end())
          for (const auto& sp : sit->second.ports)
            if (sp.port == port && sp.name == *t.section_name) match = true;
        if (match) ancestors.insert(gws.begin(), gws.end());
      }
    }
    if (!lost_to.empty())
      v.accepted = cond("Accepted", false, "Conflicted",
                        "BackendTLSPolicy " + lost_to + ", older, targets the same Service port",
                        p.meta.generation);
    v.ancestors.assign(ancestors.begin(), ancestors.end());
    out.policies[p.meta.key()] = std::move(v);
  }
  // A conflicted policy loses every target it shares; those it does not share stay its own.
  for (const auto& [target, j] : winner) {
    const auto& [svc, section] = target;
    if (out.policies.at(j->policy->meta.key()).accepted.reason == "Conflicted") continue;
    auto sit = cache.services.find(svc);
    if (sit == cache.services.end()) continue;
    for (const auto& sp : sit->second.ports) {
      if (!section.empty() && sp.name != section) continue;
      auto key = std::make_pair(svc, sp.port);
      // The policy naming the port beats the one naming the whole Service.
      if (section.empty() && winner.count({svc, sp.name}) && !sp.name.empty() &&
          out.policies.at(winner.at({svc, sp.name})->policy->meta.key()).accepted.reason != "Conflicted")
        continue;
      out.service_tls[key] = ServiceTls{j->tls, j->usable, j->policy->meta.key()};
    }
  }
  return out;
}

void add_backend_tls_statuses(const Cache& cache, const BackendTlsModel& btls,
                              const std::string& controller_name, std::vector<ObjectStatus>& out) {
  for (auto& s : out) {
    if (s.kind != "Gateway") continue;
    auto it = btls.gateway_resolved_refs.find(s.key());
    if (it == btls.gateway_resolved_refs.end()) continue;
    s.status["conditions"].push_back(conditions_json({it->second})[0]);
  }
  for (const auto& [key, v] : btls.policies) {
    const BackendTLSPolicy& p = cache.backend_tls_policies.at(key);
    nlohmann::json ancestors = nlohmann::json::array();
    for (const auto& gw : v.ancestors) {
      auto slash = gw.find('/');
      ancestors.push_back({{"ancestorRef",
                            {{"group", kGatewayGroup},
                             {"kind", "Gateway"},
                             {"namespace", gw.substr(0, slash)},
                             {"name", gw.substr(slash + 1)}}},
                           {"controllerName", controller_name},
                           {"conditions", conditions_json({v.accepted, v.resolved_refs})}});
    }
    out.push_back({"BackendTLSPolicy", p.meta.namespace_, p.meta.name, {{"ancestors", ancestors}}});
  }
}

}  // namespace gantry::controller
