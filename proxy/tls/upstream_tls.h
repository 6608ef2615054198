// Client TLS contexts for clusters with `tls` (snapshot model UpstreamTls):
// TLS from the proxy to backends.
//
// One SSL_CTX per cluster, compiled on the control thread when a snapshot is
// applied and shared by every worker (OpenSSL makes SSL_new on a shared
// context thread-safe). It holds the trust anchors (caPem and/or the system
// store), the client certificate for mTLS, the ALPN list and the minimum
// version. Each connection's SSL gets the SNI and the names to verify:
// DNS names through X509_VERIFY_PARAM (checked during the handshake, wildcards
// per RFC 6125; subjectAltNames against the SANs only, never the subject CN);
// URI names (SPIFFE IDs) after the handshake by check_names().
//
// Session resumption: the context keeps the last session ticket the backends
// issued (client-side cache, one slot, under a mutex) and offers it on the
// next connection; a backend that does not accept it just runs a full
// handshake. Pooled connections and tickets never cross clusters: a new
// snapshot with a different `tls` builds a new context.
#pragma once

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::tls {

class UpstreamTlsContext {
 public:
  // Errors name `cluster` and what in its tls is wrong (PEM, key mismatch).
  static Result<std::shared_ptr<const UpstreamTlsContext>> create(const std::string& cluster,
                                                                 const snapshot::UpstreamTls& t, bool h2);
  ~UpstreamTlsContext();
  UpstreamTlsContext(const UpstreamTlsContext&) = delete;
  UpstreamTlsContext& operator=(const UpstreamTlsContext&) = delete;

  boost::asio::ssl::context& context() const { return *ctx_; }
  const snapshot::UpstreamTls& spec() const { return spec_; }
  bool h2() const { return h2_; }

  // Sets SNI, the DNS names to verify and a session to resume on a fresh SSL.
  // False (with `why`) when OpenSSL refuses one of them.
  bool prepare(SSL* ssl, std::string& why) const;
  // After a successful handshake: the URI names, when the policy lists any
  // (DNS names were checked by the handshake). Empty: accepted; else why not.
  std::string check_names(SSL* ssl) const;
  // Why a handshake failed, for the 502's reason and the log: the
  // verification result when the chain or the name was rejected, else the
  // OpenSSL error.
  static std::string failure(SSL* ssl, const std::string& io_error);

 private:
  UpstreamTlsContext() = default;
  static int on_new_session(SSL* ssl, SSL_SESSION* s);
  unsigned host_flags() const;  // X509_CHECK_FLAG_* for the DNS names

  std::unique_ptr<boost::asio::ssl::context> ctx_;
  snapshot::UpstreamTls spec_;
  bool h2_ = false;
  std::vector<std::string> dns_names_;  // verified during the handshake
  std::vector<std::string> uri_names_;  // verified by check_names()
  mutable std::mutex mu_;
  mutable SSL_SESSION* session_ = nullptr;  // the last ticket issued, owned
};

}  // namespace gantry::tls
