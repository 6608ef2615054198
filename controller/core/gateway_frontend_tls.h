// Gateway API frontend TLS: the client-certificate validation of a Gateway's
// HTTPS listeners (spec.tls.frontend: `default`, overridden per port by
// `perPort`), resolved against the cache. See docs/gateway-api.md.
//
// A pure function, like the rest of gateway_api: given the cache, a Gateway
// and one of its listeners, the CA bundle the proxy verifies clients with
// (snapshot::ClientValidation) and the listener conditions the Gateway API
// names for what does not resolve.
#pragma once

#include <optional>
#include <string>

#include "controller/core/objects.h"
#include "proxy/snapshot/model.h"

namespace gantry::controller {

struct FrontendValidation {
  bool configured = false;  // the listener validates client certificates
  bool insecure_fallback = false;  // mode AllowInsecureFallback
  // Some caCertificateRefs do not resolve: ResolvedRefs=False with this
  // reason (InvalidCACertificateKind | RefNotPermitted | InvalidCACertificateRef)
  // and message, the first such reference's.
  std::string ref_reason;
  std::string ref_message;
  // The CA bundle of the references that resolve; unset when none does
  // (then Accepted=False NoValidCACertificate) or nothing is configured.
  std::optional<snapshot::ClientValidation> validation;
};

// The validation that applies to `listener` of `gw` (HTTPS listeners only;
// other protocols are never validated).
FrontendValidation frontend_validation(const Cache& cache, const Gateway& gw,
                                       const GwListener& listener);

}  // namespace gantry::controller
