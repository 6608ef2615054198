#include "proxy/tls/client_certificates.h"

#include "proxy/base/openssl_error.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <re2/re2.h>

#include <cctype>

namespace gantry::tls {

namespace {

// As nginx's ngx_ssl_verify_callback: the handshake goes on whatever the
// verification says; the HTTP layer reads SSL_get_verify_result().
int keep_going(int, X509_STORE_CTX*) { return 1; }

using Holder = std::shared_ptr<const HostClientAuth>;

void free_holder(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) { delete static_cast<Holder*>(ptr); }

int holder_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_holder);
  return index;
}

std::string name_rfc2253(const X509_NAME* name) {
  std::string out;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return out;
  if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return out;
}

std::string pem_of(X509* cert) {
  std::string out;
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr) return out;
  if (PEM_write_bio_X509(bio, cert) == 1) {
    char* data = nullptr;
    long n = BIO_get_mem_data(bio, &data);
    if (n > 0) out.assign(data, static_cast<size_t>(n));
  }
  BIO_free(bio);
  return out;
}

// nginx's ngx_ssl_verify_error_optional(): the errors optional_no_ca lets through.
bool no_ca_error(long rc) {
  return rc == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT || rc == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
         rc == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT || rc == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
         rc == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE;
}

}  // namespace

HostClientAuth::~HostClientAuth() {
  if (store_ != nullptr) X509_STORE_free(store_);
  if (ca_names_ != nullptr) sk_X509_NAME_pop_free(ca_names_, X509_NAME_free);
}

Result<std::shared_ptr<const HostClientAuth>> HostClientAuth::create(const snapshot::HostClientValidation& v) {
  const std::string where = "hostClientValidation " + v.hostname + ": ";
  auto out = std::make_shared<HostClientAuth>();
  out->v_ = v;
  out->store_ = X509_STORE_new();
  out->ca_names_ = sk_X509_NAME_new_null();
  if (out->store_ == nullptr || out->ca_names_ == nullptr) return Error{where + openssl_error()};
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(v.ca_pem.data(), static_cast<int>(v.ca_pem.size())),
                                                &BIO_free);
  size_t n = 0;
  while (X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    int ok = X509_STORE_add_cert(out->store_, ca);
    if (X509_NAME* name = X509_NAME_dup(X509_get_subject_name(ca))) sk_X509_NAME_push(out->ca_names_, name);
    X509_free(ca);
    if (ok != 1) return Error{where + "caPem: " + openssl_error()};
    ++n;
  }
  ERR_clear_error();
  if (n == 0) return Error{where + "caPem holds no certificate"};
  if (!v.crl_pem.empty()) {
    std::unique_ptr<BIO, decltype(&BIO_free)> cbio(
        BIO_new_mem_buf(v.crl_pem.data(), static_cast<int>(v.crl_pem.size())), &BIO_free);
    size_t crls = 0;
    while (X509_CRL* crl = PEM_read_bio_X509_CRL(cbio.get(), nullptr, nullptr, nullptr)) {
      int ok = X509_STORE_add_crl(out->store_, crl);
      X509_CRL_free(crl);
      if (ok != 1) return Error{where + "crlPem: " + openssl_error()};
      ++crls;
    }
    ERR_clear_error();
    if (crls == 0) return Error{where + "crlPem holds no revocation list"};
    // As nginx's ssl_crl: every certificate of the chain is checked.
    X509_STORE_set_flags(out->store_, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  if (!v.subject_match.empty()) {
    RE2::Options opts;
    opts.set_log_errors(false);
    out->subject_re_ = std::make_unique<RE2>(v.subject_match, opts);
    if (!out->subject_re_->ok()) return Error{where + "subjectMatch: " + out->subject_re_->error()};
  }
  std::string id = "host-client-validation|" + v.hostname;
  id += '|';
  id += std::to_string(static_cast<int>(v.verify)) + "|" + std::to_string(v.depth) + "|";
  id += v.ca_pem;
  id += '|';
  id += v.crl_pem;
  unsigned int len = 0;
  static_assert(sizeof out->sid_ctx_ <= SSL_MAX_SID_CTX_LENGTH);
  EVP_Digest(id.data(), id.size(), out->sid_ctx_, &len, EVP_sha256(), nullptr);
  return std::shared_ptr<const HostClientAuth>(std::move(out));
}

void HostClientAuth::prepare(SSL* ssl, std::shared_ptr<const HostClientAuth> self) {
  const HostClientAuth& a = *self;
  SSL_set_session_id_context(ssl, a.sid_ctx_, sizeof a.sid_ctx_);
  if (a.v_.verify == snapshot::ClientVerify::kOff) {
    SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_set_verify(ssl, SSL_VERIFY_PEER, keep_going);
    SSL_set_verify_depth(ssl, static_cast<int>(a.v_.depth));
    if (a.v_.verify != snapshot::ClientVerify::kOptionalNoCa)  // as nginx: no CA names for optional_no_ca
      SSL_set_client_CA_list(ssl, SSL_dup_CA_list(a.ca_names_));
    a.restore_anchors(ssl);
  }
  // A second ClientHello (HelloRetryRequest) replaces the first one's.
  auto* old = static_cast<Holder*>(SSL_get_ex_data(ssl, holder_index()));
  SSL_set_ex_data(ssl, holder_index(), new Holder(std::move(self)));
  delete old;
}

const HostClientAuth* HostClientAuth::attached(SSL* ssl) {
  auto* h = static_cast<Holder*>(SSL_get_ex_data(ssl, holder_index()));
  return h != nullptr ? h->get() : nullptr;
}

std::shared_ptr<const HostClientAuth> HostClientAuth::attached_shared(SSL* ssl) {
  auto* h = static_cast<Holder*>(SSL_get_ex_data(ssl, holder_index()));
  return h != nullptr ? *h : nullptr;
}

void HostClientAuth::restore_anchors(SSL* ssl) const {
  if (v_.verify != snapshot::ClientVerify::kOff) SSL_set1_verify_cert_store(ssl, store_);
}

bool HostClientAuth::subject_matches(std::string_view subject_dn) const {
  return !subject_re_ || RE2::PartialMatch(subject_dn, *subject_re_);
}

Result<HostClientAuthTable> HostClientAuthTable::create(const std::vector<snapshot::HostClientValidation>& entries) {
  HostClientAuthTable t;
  for (const auto& v : entries) {
    auto a = HostClientAuth::create(v);
    if (!a.ok()) return a.error();
    if (v.hostname.starts_with("*.")) t.wildcard_.emplace(v.hostname.substr(2), std::move(a).value());
    else t.exact_.emplace(v.hostname, std::move(a).value());
  }
  return t;
}

const std::shared_ptr<const HostClientAuth>* HostClientAuthTable::find(std::string_view host) const {
  if (host.empty() || empty()) return nullptr;
  if (auto it = exact_.find(std::string(host)); it != exact_.end()) return &it->second;
  for (size_t dot = host.find('.'); dot != std::string_view::npos; dot = host.find('.', dot + 1))
    if (auto it = wildcard_.find(std::string(host.substr(dot + 1))); it != wildcard_.end()) return &it->second;
  return nullptr;
}

std::string client_hello_sni(SSL* ssl) {
  const unsigned char* p = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p, &len) != 1 || len < 2) return {};
  size_t list = (size_t{p[0]} << 8) | p[1];
  if (list + 2 != len) return {};
  size_t at = 2;
  while (at + 3 <= len) {
    unsigned type = p[at];
    size_t n = (size_t{p[at + 1]} << 8) | p[at + 2];
    at += 3;
    if (at + n > len) return {};
    if (type == 0) {  // host_name
      std::string out(reinterpret_cast<const char*>(p + at), n);
      for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return out;
    }
    at += n;
  }
  return {};
}

std::shared_ptr<const ClientCertificate> ClientCertificate::after_handshake(SSL* ssl, bool keep_sni,
                                                                           bool listener_validated) {
  auto auth = HostClientAuth::attached_shared(ssl);
  if (!auth && !keep_sni && !listener_validated) return nullptr;
  auto out = std::make_shared<ClientCertificate>();
  if (const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) {
    out->sni = name;
    for (auto& c : out->sni) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  out->auth = std::move(auth);
  out->listener_validated = listener_validated;
  if (!out->auth && !listener_validated) return out;
  if (X509* peer = SSL_get0_peer_certificate(ssl)) {
    out->presented = true;
    out->verify_result = SSL_get_verify_result(ssl);
    out->subject_dn = name_rfc2253(X509_get_subject_name(peer));
    out->issuer_dn = name_rfc2253(X509_get_issuer_name(peer));
    if (listener_validated || out->auth->config().pass_certificate)
      out->escaped_pem = escape_uri_component(pem_of(peer));
  }
  return out;
}

std::string ClientCertificate::verify_text() const {
  if (!presented) return "NONE";
  if (verify_result == X509_V_OK) return "SUCCESS";
  std::string out("FAILED:");
  out += X509_verify_cert_error_string(verify_result);
  return out;
}

std::string escape_uri_component(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

ClientCertVerdict check(const HostClientAuth& host_auth, const ClientCertificate* conn, bool tls,
                        std::string_view host) {
  ClientCertVerdict out;
  const auto& v = host_auth.config();
  // The connection's handshake ran this entry's check (same settings, by
  // SNI), or the listener's own (which wins), or none at all.
  const bool by_listener = conn != nullptr && conn->listener_validated;
  const ClientCertificate* ran =
      by_listener || (conn != nullptr && conn->auth && conn->auth->id() == host_auth.id()) ? conn : nullptr;
  if (tls && !by_listener) {
    // nginx answers 421 when the SNI names another server than the Host and
    // the Host's server verifies clients: its certificate was never asked
    // for. Likewise when the host's settings changed since the handshake.
    if (v.verify != snapshot::ClientVerify::kOff && conn != nullptr && !conn->sni.empty() &&
        (conn->sni != host || ran == nullptr)) {
      out.status = 421;
      out.body = "misdirected request: ";
      out.body.append(host).append(conn->sni != host ? " asks for client certificates and is not served on this "
                                                       "connection (TLS server name "
                                                     : " changed its client certificate settings since this "
                                                       "connection began (TLS server name ");
      out.body.append(conn->sni).append(")");
      out.kind = "misdirected-request";
      return out;
    }
    if (v.verify != snapshot::ClientVerify::kOff) {
      const bool presented = ran != nullptr && ran->presented;
      const long rc = ran != nullptr ? ran->verify_result : 0;
      int nginx_code = 0;
      if (presented && rc != X509_V_OK && (v.verify != snapshot::ClientVerify::kOptionalNoCa || !no_ca_error(rc)))
        nginx_code = 495;
      else if (!presented && v.verify == snapshot::ClientVerify::kOn)
        nginx_code = 496;
      if (nginx_code != 0) {
        out.kind = "client_certificate";
        if (!v.error_page.empty()) {
          out.status = 302;
          out.location = v.error_page;
          out.body = "client certificate required";
        } else {
          out.status = 400;
          out.body = nginx_code == 495 ? "The SSL certificate error" : "No required SSL certificate was sent";
        }
        return out;
      }
    }
  }
  // Plain HTTP, or no certificate: the subject is empty, as nginx's $ssl_client_s_dn.
  const std::string_view subject = ran != nullptr ? std::string_view(ran->subject_dn) : std::string_view{};
  if (!host_auth.subject_matches(subject)) {
    out.status = 403;
    out.body = "client certificate unauthorized";
    out.kind = "client_certificate";
    return out;
  }
  // nginx sets these over TLS only (its variables are empty otherwise, and an
  // empty proxy_set_header is not sent).
  if (tls) {
    if (ran != nullptr) {
      if (v.pass_certificate && !ran->escaped_pem.empty()) out.upstream_fields.emplace_back("ssl-client-cert", ran->escaped_pem);
      out.upstream_fields.emplace_back("ssl-client-verify", ran->verify_text());
      if (!ran->subject_dn.empty()) out.upstream_fields.emplace_back("ssl-client-subject-dn", ran->subject_dn);
      if (!ran->issuer_dn.empty()) out.upstream_fields.emplace_back("ssl-client-issuer-dn", ran->issuer_dn);
    } else {
      out.upstream_fields.emplace_back("ssl-client-verify", "NONE");
    }
  }
  return out;
}

}  // namespace gantry::tls
