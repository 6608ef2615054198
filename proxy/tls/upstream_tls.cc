#include "proxy/tls/upstream_tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

namespace gantry::tls {

namespace {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

int no_passphrase(char*, int, int, void*) { return -1; }

struct BioDel {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioDel>;
BioPtr mem(const std::string& s) { return BioPtr(BIO_new_mem_buf(s.data(), static_cast<int>(s.size()))); }

// The SSL_CTX's ex_data slot pointing back at its UpstreamTlsContext.
int ctx_index() {
  static const int i = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return i;
}

}  // namespace

UpstreamTlsContext::~UpstreamTlsContext() {
  if (session_ != nullptr) SSL_SESSION_free(session_);
}

int UpstreamTlsContext::on_new_session(SSL* ssl, SSL_SESSION* s) {
  auto* self = static_cast<UpstreamTlsContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_index()));
  if (self == nullptr || SSL_SESSION_is_resumable(s) != 1) return 0;
  // A copy: OpenSSL marks the connection's own session not resumable when the
  // connection is freed without a close_notify sent (pooled upstream
  // connections usually end that way), which would spoil the cached one.
  SSL_SESSION* copy = SSL_SESSION_dup(s);
  if (copy == nullptr) return 0;
  std::lock_guard lock(self->mu_);
  if (self->session_ != nullptr) SSL_SESSION_free(self->session_);
  self->session_ = copy;
  return 0;  // OpenSSL keeps (and frees) its reference to `s`
}

Result<std::shared_ptr<const UpstreamTlsContext>> UpstreamTlsContext::create(const std::string& cluster,
                                                                             const snapshot::UpstreamTls& t,
                                                                             bool h2) {
  std::string where = "cluster " + cluster + " tls: ";
  std::shared_ptr<UpstreamTlsContext> out(new UpstreamTlsContext());
  out->spec_ = t;
  out->h2_ = h2;
  SSL_CTX* raw = SSL_CTX_new(TLS_client_method());
  if (raw == nullptr) return Error{where + openssl_error()};
  out->ctx_ = std::make_unique<boost::asio::ssl::context>(raw);  // owns raw from here
  SSL_CTX* ctx = out->ctx_->native_handle();
  SSL_CTX_set_ex_data(ctx, ctx_index(), out.get());
  SSL_CTX_set_min_proto_version(ctx, t.min_version == "TLS1.3" ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, &UpstreamTlsContext::on_new_session);
  if (t.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    if (t.system_ca && SSL_CTX_set_default_verify_paths(ctx) != 1)
      return Error{where + "cannot load the system trust store: " + openssl_error()};
    if (!t.ca_pem.empty()) {
      ERR_clear_error();
      auto bio = mem(t.ca_pem);
      int n = 0;
      while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
        int ok = X509_STORE_add_cert(store, ca);
        X509_free(ca);
        // A CA listed twice is harmless.
        if (ok != 1 && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_CERT_ALREADY_IN_HASH_TABLE)
          return Error{where + "caPem: " + openssl_error()};
        ++n;
      }
      ERR_clear_error();
      if (n == 0) return Error{where + "caPem does not hold a PEM certificate"};
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  if (!t.client_cert_pem.empty()) {
    ERR_clear_error();
    auto bio = mem(t.client_cert_pem);
    X509* leaf = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr);
    if (leaf == nullptr) return Error{where + "clientCertPem: " + openssl_error()};
    int ok = SSL_CTX_use_certificate(ctx, leaf);
    X509_free(leaf);
    if (ok != 1) return Error{where + "clientCertPem: " + openssl_error()};
    while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr)) {
      if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
        X509_free(extra);
        return Error{where + "clientCertPem chain: " + openssl_error()};
      }
    }
    ERR_clear_error();
    auto kbio = mem(t.client_key_pem);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio.get(), nullptr, no_passphrase, nullptr);
    if (key == nullptr) return Error{where + "clientKeyPem: " + openssl_error()};
    ok = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (ok != 1 || SSL_CTX_check_private_key(ctx) != 1)
      return Error{where + "clientKeyPem does not match clientCertPem"};
  }
  std::vector<std::string> alpn = t.alpn;
  if (alpn.empty() && h2) alpn = {"h2"};
  if (!alpn.empty()) {
    std::string wire;
    for (const auto& p : alpn) {
      wire.push_back(static_cast<char>(p.size()));
      wire += p;
    }
    // Note: SSL_CTX_set_alpn_protos returns 0 on success.
    if (SSL_CTX_set_alpn_protos(ctx, reinterpret_cast<const unsigned char*>(wire.data()),
                                static_cast<unsigned>(wire.size())) != 0)
      return Error{where + "alpn: " + openssl_error()};
  }
  const auto& names = t.subject_alt_names.empty() && !t.server_name.empty()
                          ? std::vector<std::string>{t.server_name}
                          : t.subject_alt_names;
  for (const auto& n : names) {
    if (n.find("://") != std::string::npos) out->uri_names_.push_back(n);
    else out->dns_names_.push_back(n);
  }
  return std::shared_ptr<const UpstreamTlsContext>(std::move(out));
}

unsigned UpstreamTlsContext::host_flags() const {
  // subjectAltNames are matched against the certificate's SANs only: never
  // against its subject's CN (which OpenSSL falls back to for a certificate
  // without DNS SANs). A server_name alone keeps that fallback.
  unsigned flags = X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS;
  if (!spec_.subject_alt_names.empty()) flags |= X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
  return flags;
}

bool UpstreamTlsContext::prepare(SSL* ssl, std::string& why) const {
  if (!spec_.server_name.empty() &&
      SSL_set_tlsext_host_name(ssl, const_cast<char*>(spec_.server_name.c_str())) != 1) {
    why = "cannot set SNI " + spec_.server_name + ": " + openssl_error();
    return false;
  }
  // With URI names in the list, a DNS name is one alternative among them:
  // all names are checked after the handshake instead.
  if (spec_.verify && uri_names_.empty() && !dns_names_.empty()) {
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(param, host_flags());
    for (size_t i = 0; i < dns_names_.size(); ++i) {
      const auto& n = dns_names_[i];
      int ok = i == 0 ? X509_VERIFY_PARAM_set1_host(param, n.data(), n.size())
                      : X509_VERIFY_PARAM_add1_host(param, n.data(), n.size());
      if (ok != 1) {
        why = "cannot verify the name " + n + ": " + openssl_error();
        return false;
      }
    }
  }
  std::lock_guard lock(mu_);
  if (session_ != nullptr) SSL_set_session(ssl, session_);  // takes its own reference
  return true;
}

std::string UpstreamTlsContext::check_names(SSL* ssl) const {
  if (!spec_.verify || uri_names_.empty()) return {};
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return "the backend sent no certificate";
  for (const auto& n : dns_names_)
    if (X509_check_host(cert, n.data(), n.size(), host_flags(), nullptr) == 1) return {};
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  bool found = false;
  for (int i = 0; sans != nullptr && i < sk_GENERAL_NAME_num(sans) && !found; ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
    if (g->type != GEN_URI) continue;
    std::string_view uri(reinterpret_cast<const char*>(ASN1_STRING_get0_data(g->d.uniformResourceIdentifier)),
                         static_cast<size_t>(ASN1_STRING_length(g->d.uniformResourceIdentifier)));
    for (const auto& n : uri_names_)
      if (uri == n) found = true;
  }
  GENERAL_NAMES_free(sans);
  if (found) return {};
  return "the backend's certificate names none of the subjectAltNames";
}

std::string UpstreamTlsContext::failure(SSL* ssl, const std::string& io_error) {
  if (ssl != nullptr && (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) return std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
  }
  return io_error;
}

}  // namespace gantry::tls
