// Lease parsing and rendering; see lease.h.
#include "controller/kube/lease.h"

namespace gantry::controller::kube {

Result<LeaseRecord> parse_lease(const nlohmann::json& lease) {
  if (!lease.is_object()) return Error{"lease is not an object"};
  LeaseRecord r;
  if (auto m = lease.find("metadata"); m != lease.end() && m->is_object())
    r.resource_version = m->value("resourceVersion", std::string());
  auto spec = lease.find("spec");
  if (spec == lease.end() || spec->is_null()) return r;
  if (!spec->is_object()) return Error{"lease spec is not an object"};
  auto str = [&](const char* k) {
    auto it = spec->find(k);
    return it != spec->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto num = [&](const char* k) {
    auto it = spec->find(k);
    return it != spec->end() && it->is_number_integer() ? it->get<int64_t>() : int64_t{0};
  };
  r.holder = str("holderIdentity");
  r.lease_duration_seconds = num("leaseDurationSeconds");
  r.acquire_time = str("acquireTime");
  r.renew_time = str("renewTime");
  r.transitions = num("leaseTransitions");
  return r;
}

nlohmann::json lease_object(const std::string& namespace_, const std::string& name,
                            const LeaseRecord& r) {
  nlohmann::json meta = {{"name", name}, {"namespace", namespace_}};
  if (!r.resource_version.empty()) meta["resourceVersion"] = r.resource_version;
  nlohmann::json spec = {{"holderIdentity", r.holder},
                         {"leaseDurationSeconds", r.lease_duration_seconds},
                         {"leaseTransitions", r.transitions}};
  if (!r.acquire_time.empty()) spec["acquireTime"] = r.acquire_time;
  if (!r.renew_time.empty()) spec["renewTime"] = r.renew_time;
  return {{"apiVersion", "coordination.k8s.io/v1"},
          {"kind", "Lease"},
          {"metadata", std::move(meta)},
          {"spec", std::move(spec)}};
}

}  // namespace gantry::controller::kube
