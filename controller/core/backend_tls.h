// Gateway API TLS to backends: BackendTLSPolicy (gateway.networking.k8s.io/v1)
// and a Gateway's spec.tls.backend.clientCertificateRef. Pure functions over
// the cache and the attachment model (gateway_api.h), like translate.
//
// - A policy targets Services (targetRefs, kind Service) of its namespace, a
//   whole Service or one port (sectionName = the port's name). Policies with
//   the same target (Service and sectionName) conflict: the oldest, then the
//   first by name, wins; the others are Accepted=False Conflicted. A port's
//   TLS is that of the policy naming its port, else of the one naming the
//   whole Service.
// - An accepted policy makes the port's cluster speak TLS (snapshot
//   UpstreamTls): SNI = validation.hostname; trust = the ca.crt of the
//   caCertificateRefs ConfigMaps, or the system store
//   (wellKnownCACertificates: System); the certificate must name
//   subjectAltNames (any one, Hostname or URI) when given, else the hostname.
// - A policy none of whose CA references resolves (NoValidCACertificate), or
//   that is otherwise invalid, still takes the port: its cluster gets no
//   endpoints, so every request to it fails with a 503, as the spec wants
//   (a 5xx; never plain text to a backend that wants TLS).
// - status.ancestors: one entry per gantry Gateway that an attached
//   HTTPRoute / GRPCRoute reaching the targeted Service goes through.
// - A Gateway's backend client certificate (a kubernetes.io/tls Secret, a
//   ReferenceGrant across namespaces) is presented on the TLS connections of
//   the routes attached to it: such clusters are per Gateway certificate
//   (name suffix "/client=<ns>/<secret>"). The Gateway's ResolvedRefs
//   condition says when the reference is invalid.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "controller/core/gateway_api.h"
#include "controller/core/objects.h"
#include "controller/core/status.h"
#include "proxy/snapshot/model.h"

namespace gantry::controller {

struct BackendTlsPolicyVerdict {
  Condition accepted;      // Accepted: Accepted | Conflicted | NoValidCACertificate | Invalid
  Condition resolved_refs;  // ResolvedRefs: ResolvedRefs | InvalidCACertificateRef | InvalidKind
  std::vector<std::string> ancestors;  // Gateway "ns/name", sorted
};

// The TLS of one Service port.
struct ServiceTls {
  snapshot::UpstreamTls tls;
  bool usable = true;  // false: the policy is not valid; the cluster serves nothing
  std::string policy;  // "ns/name"
};

struct BackendTlsModel {
  // (Service "ns/name", port number) -> the TLS its cluster speaks.
  std::map<std::pair<std::string, int64_t>, ServiceTls> service_tls;
  // Gateway "ns/name" -> the Secret "ns/name" its backend TLS presents.
  std::map<std::string, std::string> client_certificates;
  // Gateway "ns/name" with spec.tls.backend -> its ResolvedRefs condition
  // (that reference, then a summary of the listeners' ResolvedRefs).
  std::map<std::string, Condition> gateway_resolved_refs;
  std::map<std::string, BackendTlsPolicyVerdict> policies;  // by "ns/name"
};

// `check_certificate`: why a Secret (in the cache) is not a usable
// certificate, empty when it is (gateway_api.h).
BackendTlsModel build_backend_tls(const Cache& cache, const GatewayApiModel& model,
                                  const CertificateCheck& check_certificate);

// Why the proxy would refuse `tls` as a cluster's (snapshot validation),
// empty when it would not.
std::string tls_problem(const snapshot::UpstreamTls& tls);
// Why `pem` is not a CA bundle the proxy takes (a PEM certificate, every
// block readable); empty when it is.
std::string ca_bundle_problem(const std::string& pem);

// Adds the status of every BackendTLSPolicy to `out` and the ResolvedRefs
// condition to the Gateways' statuses in it.
void add_backend_tls_statuses(const Cache& cache, const BackendTlsModel& btls,
                              const std::string& controller_name, std::vector<ObjectStatus>& out);

}  // namespace gantry::controller
