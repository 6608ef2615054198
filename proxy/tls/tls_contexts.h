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
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::tls {

struct CtxDeleter {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<SSL_CTX, CtxDeleter>;

class TlsContexts {
 public:
  static Result<std::shared_ptr<const TlsContexts>> create(const std::vector<snapshot::TlsCertificate>& certs);

  // The context for a client's SNI (lower-cased by the caller), or the
  // default one when nothing matches or no SNI was sent; nullptr when the
  // snapshot has no certificate at all.
  SSL_CTX* select(std::string_view sni) const;
  bool empty() const { return contexts_.empty(); }

 private:
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
