#include "proxy/tls/tls_contexts.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <atomic>
#include <cctype>

namespace gantry::tls {

namespace {

std::string openssl_error() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

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

}  // namespace

void set_offer_h2(bool on) { offer_h2.store(on, std::memory_order_relaxed); }

void apply_server_defaults(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_alpn_select_cb(ctx, select_alpn, nullptr);
}

Result<std::shared_ptr<const TlsContexts>> TlsContexts::create(const std::vector<snapshot::TlsCertificate>& certs) {
  auto out = std::make_shared<TlsContexts>();
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
