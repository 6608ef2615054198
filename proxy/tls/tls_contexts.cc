#include "proxy/tls/tls_contexts.h"

#include "proxy/base/openssl_error.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <atomic>
#include <cctype>

namespace gantry::tls {

namespace {

std::atomic<bool> offer_h2{false};

// ALPN, the server's preference: h2 (when offered by set_offer_h2), then
// http/1.1. A client that offers neither continues without ALPN.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  static const unsigned char kH2Http11[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  const bool h2 = offer_h2.load(std::memory_order_relaxed);
  unsigned char* sel = nullptr;
  if (SSL_select_next_proto(&sel, outlen, h2 ? kH2Http11 : kHttp11, h2 ? sizeof kH2Http11 : sizeof kHttp11,
                            in, inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

Result<CtxPtr> build(const snapshot::TlsCertificate& c) {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Error{"certificate " + c.name + ": " + openssl_error()};
  apply_server_defaults(ctx.get());
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(c.cert_pem.data(), static_cast<int>(c.cert_pem.size())),
                                                &BIO_free);
  X509* leaf = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
  if (leaf == nullptr) return Error{"certificate " + c.name + ": cannot read the certificate: " + openssl_error()};
  int ok = SSL_CTX_use_certificate(ctx.get(), leaf);
  X509_free(leaf);
  if (ok != 1) return Error{"certificate " + c.name + ": " + openssl_error()};
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add_extra_chain_cert(ctx.get(), extra) != 1) {  // takes ownership on success
      X509_free(extra);
      return Error{"certificate " + c.name + ": chain: " + openssl_error()};
    }
  }
  ERR_clear_error();  // the loop above ends with a "no start line" error
  std::unique_ptr<BIO, decltype(&BIO_free)> kbio(BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size())),
                                                 &BIO_free);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return Error{"certificate " + c.name + ": cannot read the private key: " + openssl_error()};
  ok = SSL_CTX_use_PrivateKey(ctx.get(), key);
  EVP_PKEY_free(key);
  if (ok != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
    return Error{"certificate " + c.name + ": the private key does not match the certificate"};
  return ctx;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// AllowInsecureFallback: whatever the client sent (or not) is accepted.
int accept_any(int, X509_STORE_CTX*) { return 1; }

int client_auth_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

}  // namespace

Result<std::shared_ptr<const ClientAuth>> ClientAuth::create(const std::string& listener,
                                                             const snapshot::ClientValidation& v) {
  auto out = std::make_shared<ClientAuth>();
  out->store_.reset(X509_STORE_new());
  if (!out->store_) return Error{"listener " + listener + ": " + openssl_error()};
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(v.ca_pem.data(), static_cast<int>(v.ca_pem.size())),
                                                &BIO_free);
  size_t n = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    int ok = X509_STORE_add_cert(out->store_.get(), ca);
    X509_free(ca);
    if (ok != 1) return Error{"listener " + listener + ": clientValidation: " + openssl_error()};
    ++n;
  }
  ERR_clear_error();
  if (n == 0) return Error{"listener " + listener + ": clientValidation.caPem holds no certificate"};
  out->insecure_fallback_ = v.insecure_fallback;
  std::string id = listener;
  id += v.insecure_fallback ? "|fallback|" : "|valid-only|";
  id += v.ca_pem;
  unsigned int len = 0;
  static_assert(sizeof out->sid_ctx_ <= SSL_MAX_SID_CTX_LENGTH);
  EVP_Digest(id.data(), id.size(), out->sid_ctx_, &len, EVP_sha256(), nullptr);
  return std::shared_ptr<const ClientAuth>(std::move(out));
}

void ClientAuth::prepare(SSL* ssl) const {
  if (insecure_fallback_) SSL_set_verify(ssl, SSL_VERIFY_PEER, accept_any);
  else SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_set_session_id_context(ssl, sid_ctx_, sizeof sid_ctx_);
  SSL_set_ex_data(ssl, client_auth_index(), const_cast<ClientAuth*>(this));
  restore_anchors(ssl);
}

const ClientAuth* ClientAuth::of(SSL* ssl) {
  return static_cast<const ClientAuth*>(SSL_get_ex_data(ssl, client_auth_index()));
}

void ClientAuth::forget(SSL* ssl) { SSL_set_ex_data(ssl, client_auth_index(), nullptr); }

void ClientAuth::restore_anchors(SSL* ssl) const { SSL_set1_verify_cert_store(ssl, store_.get()); }

void set_offer_h2(bool on) { offer_h2.store(on, std::memory_order_relaxed); }

void apply_server_defaults(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
}

Result<std::shared_ptr<const TlsContexts>> TlsContexts::create(
    const std::vector<snapshot::TlsCertificate>& certs, const std::vector<snapshot::Listener>& listeners,
    const std::vector<snapshot::HostClientValidation>& host_validation) {
  auto out = std::make_shared<TlsContexts>();
  auto hosts = HostClientAuthTable::create(host_validation);
  if (!hosts.ok()) return hosts.error();
  out->host_client_auth_ = std::move(hosts).value();
  for (const auto& l : listeners) {
    if (!l.tls || !l.client_validation) continue;
    auto auth = ClientAuth::create(l.name, *l.client_validation);
    if (!auth.ok()) return auth.error();
    out->client_auth_.emplace(l.name, std::move(auth).value());
  }
  std::vector<const snapshot::TlsCertificate*> sorted;
  for (const auto& c : certs) sorted.push_back(&c);
  std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (const auto* c : sorted) {
    auto ctx = build(*c);
    if (!ctx.ok()) return ctx.error();
    SSL_CTX* raw = ctx->get();
    out->contexts_.push_back(std::move(ctx).value());
    if (out->default_ == nullptr) out->default_ = raw;
    for (const auto& h : c->hostnames) {
      std::string host = lower(h);
      if (host.rfind("*.", 0) == 0) out->wildcard_.emplace(host.substr(2), raw);
      else out->exact_.emplace(host, raw);
    }
  }
  return std::shared_ptr<const TlsContexts>(std::move(out));
}

SSL_CTX* TlsContexts::select(std::string_view sni) const {
  if (!sni.empty()) {
    if (auto it = exact_.find(std::string(sni)); it != exact_.end()) return it->second;
    // Longest wildcard first: try each suffix after a '.', left to right.
    for (size_t dot = sni.find('.'); dot != std::string_view::npos; dot = sni.find('.', dot + 1)) {
      if (auto it = wildcard_.find(std::string(sni.substr(dot + 1))); it != wildcard_.end()) return it->second;
    }
  }
  return default_;
}

}  // namespace gantry::tls
