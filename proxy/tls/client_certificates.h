// Client certificates per hostname (snapshot::HostClientValidation; the
// ingress-nginx auth-tls-* annotations), the way nginx checks them per
// server block.
//
// TLS layer: the listener's ClientHello callback (before OpenSSL looks for a
// session to resume) finds the entry of the client's SNI and prepare()s the
// connection: a certificate is asked for (unless Off) with the entry's
// anchors, CA names, depth, and a session id context of the entry's own, so
// that a session made under another host (or other settings) is never
// resumed here. As nginx, the handshake never fails over the certificate:
// the verdict is the HTTP layer's, so that it can answer 400 or redirect.
//
// HTTP layer: ClientCertificate holds what the handshake established (the
// entry it ran, the peer's certificate, its verification result), and
// check() decides each request against the entry of its *host*: a host with
// an entry other than the connection's SNI is 421 (nginx: "client attempted
// to request the server name different from the one that was negotiated"),
// then nginx's 495 / 496 (400, or a 302 to errorPage), then subjectMatch
// (403), else the ssl-client-* fields for the upstream.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace re2 {
class RE2;
}

namespace gantry::tls {

class HostClientAuth {
 public:
  static Result<std::shared_ptr<const HostClientAuth>> create(const snapshot::HostClientValidation& v);
  ~HostClientAuth();

  const snapshot::HostClientValidation& config() const { return v_; }
  // The entry's identity across snapshots: a digest of its hostname and settings.
  std::string_view id() const { return {reinterpret_cast<const char*>(sid_ctx_), sizeof sid_ctx_}; }
  // During the ClientHello: ask for a certificate as configured; the SSL
  // keeps `self` (attached()) until it is freed.
  static void prepare(SSL* ssl, std::shared_ptr<const HostClientAuth> self);
  // The entry prepare() gave `ssl`, or null.
  static const HostClientAuth* attached(SSL* ssl);
  static std::shared_ptr<const HostClientAuth> attached_shared(SSL* ssl);
  // After SSL_set_SSL_CTX (SNI): the anchors the swap dropped.
  void restore_anchors(SSL* ssl) const;
  // subjectMatch: whether `subject_dn` matches (true when there is none).
  bool subject_matches(std::string_view subject_dn) const;

  HostClientAuth() = default;

 private:
  snapshot::HostClientValidation v_;
  X509_STORE* store_ = nullptr;
  STACK_OF(X509_NAME)* ca_names_ = nullptr;
  std::unique_ptr<re2::RE2> subject_re_;
  unsigned char sid_ctx_[32] = {};
};

// A snapshot's entries by hostname: exact, then the longest wildcard.
class HostClientAuthTable {
 public:
  static Result<HostClientAuthTable> create(const std::vector<snapshot::HostClientValidation>& entries);
  const std::shared_ptr<const HostClientAuth>* find(std::string_view host) const;
  bool empty() const { return exact_.empty() && wildcard_.empty(); }

 private:
  std::unordered_map<std::string, std::shared_ptr<const HostClientAuth>> exact_;
  std::unordered_map<std::string, std::shared_ptr<const HostClientAuth>> wildcard_;  // key: after "*."
};

// The SNI of a ClientHello, from the ClientHello callback (lower case; empty: none).
std::string client_hello_sni(SSL* ssl);

// What a TLS connection's handshake established.
struct ClientCertificate {
  std::string sni;                              // lower case; empty: none sent
  std::shared_ptr<const HostClientAuth> auth;   // the entry the handshake ran (by SNI), or null
  bool presented = false;                       // the client sent a certificate
  long verify_result = 0;                       // X509_V_OK, else why not
  std::string subject_dn, issuer_dn;            // RFC 2253, as nginx's $ssl_client_s_dn / _i_dn
  std::string escaped_pem;                      // passCertificate: $ssl_client_escaped_cert
  // The listener's own clientValidation ran instead (it wins over entries):
  // its verdict stands, the fields and subjectMatch still apply.
  bool listener_validated = false;

  // After the handshake (resumed or not): null when nothing needs keeping
  // (no entry ran, no listener check, and `keep_sni` is false).
  static std::shared_ptr<const ClientCertificate> after_handshake(SSL* ssl, bool keep_sni,
                                                                  bool listener_validated = false);
  // nginx's $ssl_client_verify: SUCCESS, FAILED:<reason> or NONE.
  std::string verify_text() const;
};

// The URL-escaping of nginx's $ssl_client_escaped_cert (all but ALPHA, DIGIT, "-._~").
std::string escape_uri_component(std::string_view s);

// One request's verdict.
struct ClientCertVerdict {
  int status = 0;          // 0: served; else 421, 400, 302 or 403
  std::string body;        // the reason (the local reply's text)
  std::string location;    // 302: errorPage
  std::string_view kind;   // access-log / metric kind
  // Served: the fields the upstream request gets (ssl-client-*; empty values are not sent).
  std::vector<std::pair<std::string, std::string>> upstream_fields;
};

// The fields a host with an entry never forwards from the client.
inline constexpr std::string_view kClientCertFields[] = {"ssl-client-cert", "ssl-client-verify",
                                                         "ssl-client-subject-dn", "ssl-client-issuer-dn"};

// `host_auth`: the entry of the request's host (never null); `conn`: the
// connection's (null over plain HTTP, or when the handshake kept nothing);
// `tls`: the request came over TLS; `host`: the request's host, normalised.
ClientCertVerdict check(const HostClientAuth& host_auth, const ClientCertificate* conn, bool tls,
                        std::string_view host);

}  // namespace gantry::tls
