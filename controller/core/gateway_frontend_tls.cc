// Gateway API frontend TLS; see gateway_frontend_tls.h.
#include "controller/core/gateway_frontend_tls.h"

#include "controller/core/gateway_api.h"
#include "proxy/snapshot/validate.h"

namespace gantry::controller {

namespace {

// Why `pem` cannot be a listener's trust anchors ("" when it can): the
// proxy's own check, so that the snapshot is never refused for it.
std::string ca_bundle_problem(const std::string& pem) {
  snapshot::Snapshot probe;
  probe.version = 1;
  snapshot::Listener l;
  l.address = "127.0.0.1";
  l.port = 1;
  l.name = snapshot::listener_name(l.address, l.port);
  l.tls = true;
  l.client_validation = snapshot::ClientValidation{pem, false};
  probe.listeners.push_back(std::move(l));
  auto errors = snapshot::validate(probe);
  std::string out;
  for (const auto& e : errors) {
    if (!out.empty()) out += "; ";
    out += e;
  }
  return out;
}

}  // namespace

FrontendValidation frontend_validation(const Cache& cache, const Gateway& gw,
                                       const GwListener& listener) {
  FrontendValidation out;
  if (listener.protocol != "HTTPS" || !gw.frontend_tls) return out;
  const GwFrontendTls& f = *gw.frontend_tls;
  const GwFrontendValidation* v = nullptr;
  if (auto pp = f.per_port.find(listener.port); pp != f.per_port.end()) {
    if (pp->second) v = &*pp->second;
  } else if (f.default_validation) {
    v = &*f.default_validation;
  }
  if (v == nullptr) return out;
  out.configured = true;
  out.insecure_fallback = v->mode == "AllowInsecureFallback";
  std::string bundle;
  for (size_t i = 0; i < v->ca_certificate_refs.size(); ++i) {
    const GwObjectRef& ref = v->ca_certificate_refs[i];
    const std::string ns = ref.namespace_.value_or(gw.meta.namespace_);
    const std::string field = "tls.frontend validation.caCertificateRefs[" + std::to_string(i) + "]";
    std::string reason, message;
    if (!(ref.group.empty() || ref.group == "core") || ref.kind != "ConfigMap") {
      reason = "InvalidCACertificateKind";
      message = field + ": kind " + (ref.group.empty() ? "" : ref.group + "/") + ref.kind +
                " is not supported (want ConfigMap)";
    } else if (ns != gw.meta.namespace_ &&
               !reference_granted(cache, kGatewayGroup, "Gateway", gw.meta.namespace_, "",
                                  "ConfigMap", ns, ref.name)) {
      reason = "RefNotPermitted";
      message = field + ": ConfigMap " + ns + "/" + ref.name +
                " is in another namespace and no ReferenceGrant allows it";
    } else if (auto cm = cache.config_maps.find(ns + "/" + ref.name); cm == cache.config_maps.end()) {
      reason = "InvalidCACertificateRef";
      message = field + ": ConfigMap " + ns + "/" + ref.name + " not found";
    } else if (auto crt = cm->second.data.find("ca.crt"); crt == cm->second.data.end()) {
      reason = "InvalidCACertificateRef";
      message = field + ": ConfigMap " + ns + "/" + ref.name + " has no key ca.crt";
    } else if (std::string p = ca_bundle_problem(crt->second); !p.empty()) {
      reason = "InvalidCACertificateRef";
      message = field + ": ConfigMap " + ns + "/" + ref.name + " ca.crt: " + p;
    } else {
      bundle += crt->second;
      if (!bundle.ends_with('\n')) bundle += '\n';
      continue;
    }
    if (out.ref_reason.empty()) {
      out.ref_reason = std::move(reason);
      out.ref_message = std::move(message);
    }
  }
  if (!bundle.empty()) out.validation = snapshot::ClientValidation{std::move(bundle), out.insecure_fallback};
  return out;
}

}  // namespace gantry::controller
