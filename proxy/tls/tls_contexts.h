// Server TLS contexts compiled from a snapshot's certificates, chosen by SNI.
//
// One OpenSSL SSL_CTX per certificate, built on the control thread when a
// snapshot is applied and published with the rest of the Config. The
// listener's own context only carries a servername callback that swaps in
// the right per-certificate context (exact hostname, then the longest
// wildcard, then the default: the first certificate by name). SSL_CTX objects
// are reference counted, so a handshake that started under an older snapshot
// keeps its certificate while new handshakes get the rotated one, and
// established connections are never touched by a swap.
//
// A listener with client-certificate validation (snapshot::ClientValidation)
// has a ClientAuth: its trust anchors, compiled once per snapshot. The
// connection's SSL asks for a client certificate from the start (so that a
// resumed session cannot skip the check: its session id context is the
// listener's), and gets the anchors once SNI has swapped the certificate's
// context in (the swap replaces the SSL's certificate settings).
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/tls/client_certificates.h"
#include "proxy/snapshot/model.h"

namespace gantry::tls {

struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

struct StoreDeleter {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};

// One listener's client-certificate check.
class ClientAuth {
 public:
  static Result<std::shared_ptr<const ClientAuth>> create(const std::string& listener,
                                                          const snapshot::ClientValidation& v);
  // Before the handshake: ask for a client certificate (and require a valid
  // one unless insecure_fallback); `this` must outlive the handshake.
  void prepare(SSL* ssl) const;
  // The ClientAuth prepare() gave `ssl`, or nullptr.
  static const ClientAuth* of(SSL* ssl);
  // After the handshake: `ssl` no longer refers to its ClientAuth.
  static void forget(SSL* ssl);
  // After SSL_set_SSL_CTX: the trust anchors the swap dropped.
  void restore_anchors(SSL* ssl) const;

 private:
  std::unique_ptr<X509_STORE, StoreDeleter> store_;
  bool insecure_fallback_ = false;
  unsigned char sid_ctx_[32] = {};  // SHA-256 of the listener and its settings
};

class TlsContexts {
 public:
  // `listeners`: the snapshot's, for their client validation.
  static Result<std::shared_ptr<const TlsContexts>> create(
      const std::vector<snapshot::TlsCertificate>& certs, const std::vector<snapshot::Listener>& listeners = {},
      const std::vector<snapshot::HostClientValidation>& host_validation = {});

  // The context for a client's SNI (lower-cased by the caller), or the
  // default one when nothing matches or no SNI was sent; nullptr when the
  // snapshot has no certificate at all.
  SSL_CTX* select(std::string_view sni) const;
  bool empty() const { return contexts_.empty(); }
  // The client-certificate check of the snapshot listener `name`, or null.
  std::shared_ptr<const ClientAuth> client_auth(std::string_view listener) const {
    if (client_auth_.empty()) return nullptr;
    auto it = client_auth_.find(std::string(listener));
    return it == client_auth_.end() ? nullptr : it->second;
  }
  // Client certificates per hostname (client_certificates.h).
  const HostClientAuthTable& host_client_auth() const { return host_client_auth_; }

 private:
  HostClientAuthTable host_client_auth_;
  std::unordered_map<std::string, std::shared_ptr<const ClientAuth>> client_auth_;
  std::vector<CtxPtr> contexts_;
  std::unordered_map<std::string, SSL_CTX*> exact_;
  std::unordered_map<std::string, SSL_CTX*> wildcard_;  // key: suffix after "*." 
  SSL_CTX* default_ = nullptr;
};

// Options every server context gets: TLS 1.2+, ALPN (h2 when offered, then
// http/1.1), no renegotiation, no compression, server cipher preference.
void apply_server_defaults(SSL_CTX* ctx);

// Whether ALPN offers h2 (before http/1.1). Process-wide, set once at start
// (--http2); read by every context's ALPN callback, so contexts built from
// later snapshots follow it too. Off until set (gantry-proxy sets it on).
void set_offer_h2(bool on);

}  // namespace gantry::tls
