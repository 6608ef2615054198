// Client certificates per hostname (proxy/tls/client_certificates.h): the
// table's lookup, the HTTP layer's verdict in nginx's order (421, 495/496 as
// 400 or errorPage, subjectMatch 403, the ssl-client-* fields), the escaping
// of $ssl_client_escaped_cert and the ClientHello's SNI.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <map>
#include <string>

#include "proxy/tls/client_certificates.h"

namespace gantry::tls {
namespace {

namespace sn = gantry::snapshot;

// A self-signed CA certificate made here (EC P-256), PEM.
std::string ca_pem(const char* cn) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  X509_set_version(x, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, x);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return out;
}

const std::string& ca() {
  static const std::string pem = ca_pem("Client CA");
  return pem;
}

std::shared_ptr<const HostClientAuth> auth(sn::ClientVerify verify, std::string error_page = "",
                                           std::string subject_match = "", bool pass = false,
                                           std::string host = "mtls.example.com") {
  sn::HostClientValidation v;
  v.hostname = std::move(host);
  v.ca_pem = ca();
  v.verify = verify;
  v.error_page = std::move(error_page);
  v.subject_match = std::move(subject_match);
  v.pass_certificate = pass;
  auto a = HostClientAuth::create(v);
  EXPECT_TRUE(a.ok()) << a.error().message;
  return a.value();
}

ClientCertificate conn(std::shared_ptr<const HostClientAuth> a, bool presented, long rc = X509_V_OK,
                       std::string sni = "mtls.example.com") {
  ClientCertificate c;
  c.sni = std::move(sni);
  c.auth = std::move(a);
  c.presented = presented;
  c.verify_result = rc;
  if (presented) {
    c.subject_dn = "CN=alice,O=Example";
    c.issuer_dn = "CN=Client CA";
    c.escaped_pem = "-----BEGIN%20CERTIFICATE-----%0A";
  }
  return c;
}

std::map<std::string, std::string> fields(const ClientCertVerdict& v) {
  std::map<std::string, std::string> out;
  for (const auto& [k, val] : v.upstream_fields) out[k] = val;
  return out;
}

using V = sn::ClientVerify;
constexpr long kUnknownCa = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;
constexpr long kExpired = X509_V_ERR_CERT_HAS_EXPIRED;

struct Row {
  const char* name;
  V verify;
  bool presented;
  long rc;
  int status;                 // 0: served
  const char* body_or_verify;  // the reply's body, or (served) ssl-client-verify
};

void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

class VerdictTable : public ::testing::TestWithParam<Row> {};

TEST_P(VerdictTable, AsNginx) {
  const Row& r = GetParam();
  auto a = auth(r.verify);
  ClientCertificate c = conn(a, r.presented, r.rc);
  ClientCertVerdict v = check(*a, &c, true, "mtls.example.com");
  EXPECT_EQ(v.status, r.status);
  if (r.status != 0) {
    EXPECT_EQ(v.body, r.body_or_verify);
    EXPECT_TRUE(v.upstream_fields.empty());
  } else {
    EXPECT_EQ(fields(v)["ssl-client-verify"], r.body_or_verify);
  }
}

const Row kRows[] = {
    {"OnVerified", V::kOn, true, X509_V_OK, 0, "SUCCESS"},
    {"OnNone", V::kOn, false, X509_V_OK, 400, "No required SSL certificate was sent"},
    {"OnOtherCa", V::kOn, true, kUnknownCa, 400, "The SSL certificate error"},
    {"OptionalNone", V::kOptional, false, X509_V_OK, 0, "NONE"},
    {"OptionalOtherCa", V::kOptional, true, kUnknownCa, 400, "The SSL certificate error"},
    {"OptionalVerified", V::kOptional, true, X509_V_OK, 0, "SUCCESS"},
    {"NoCaOtherCa", V::kOptionalNoCa, true, kUnknownCa, 0,
     "FAILED:unable to get local issuer certificate"},
    {"NoCaExpired", V::kOptionalNoCa, true, kExpired, 400, "The SSL certificate error"},
    {"NoCaNone", V::kOptionalNoCa, false, X509_V_OK, 0, "NONE"},
    {"OffNothingAsked", V::kOff, false, X509_V_OK, 0, "NONE"},
};

INSTANTIATE_TEST_SUITE_P(ClientCertificates, VerdictTable, ::testing::ValuesIn(kRows),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ClientCertificates, VerifiedFieldsAndPassCertificate) {
  auto a = auth(V::kOn, "", "", true);
  ClientCertificate c = conn(a, true);
  auto f = fields(check(*a, &c, true, "mtls.example.com"));
  EXPECT_EQ(f["ssl-client-verify"], "SUCCESS");
  EXPECT_EQ(f["ssl-client-subject-dn"], "CN=alice,O=Example");
  EXPECT_EQ(f["ssl-client-issuer-dn"], "CN=Client CA");
  EXPECT_EQ(f["ssl-client-cert"], "-----BEGIN%20CERTIFICATE-----%0A");
  auto without = auth(V::kOn);
  ClientCertificate c2 = conn(without, true);
  EXPECT_EQ(fields(check(*without, &c2, true, "mtls.example.com")).count("ssl-client-cert"), 0u);
}

TEST(ClientCertificates, ErrorPageRedirects) {
  auto a = auth(V::kOn, "https://errors.example.com/mtls");
  ClientCertificate none = conn(a, false), bad = conn(a, true, kUnknownCa);
  for (const ClientCertificate* c : {&none, &bad}) {
    ClientCertVerdict v = check(*a, c, true, "mtls.example.com");
    EXPECT_EQ(v.status, 302);
    EXPECT_EQ(v.location, "https://errors.example.com/mtls");
  }
}

TEST(ClientCertificates, SubjectMatchIsAnUnanchoredRegexOnTheSubject) {
  auto a = auth(V::kOn, "", "CN=(alice|bob)");
  ClientCertificate alice = conn(a, true);
  EXPECT_EQ(check(*a, &alice, true, "mtls.example.com").status, 0);
  auto strict = auth(V::kOn, "", "CN=carol");
  ClientCertificate c = conn(strict, true);
  ClientCertVerdict v = check(*strict, &c, true, "mtls.example.com");
  EXPECT_EQ(v.status, 403);
  EXPECT_EQ(v.body, "client certificate unauthorized");
  // optional without a certificate: the subject is empty, which does not match.
  auto optional = auth(V::kOptional, "", "CN=alice");
  ClientCertificate none = conn(optional, false);
  EXPECT_EQ(check(*optional, &none, true, "mtls.example.com").status, 403);
  // Plain HTTP: no verification (nginx checks only TLS connections), but the empty subject fails it.
  EXPECT_EQ(check(*optional, nullptr, false, "mtls.example.com").status, 403);
}

TEST(ClientCertificates, PlainHttpIsNotVerifiedAndSendsNoFields) {
  auto a = auth(V::kOn);
  ClientCertVerdict v = check(*a, nullptr, false, "mtls.example.com");
  EXPECT_EQ(v.status, 0);
  EXPECT_TRUE(v.upstream_fields.empty());
}

TEST(ClientCertificates, AnotherServerNameIsMisdirected) {
  auto a = auth(V::kOn);
  // The connection was made for another name (with or without an entry of its own).
  ClientCertificate other = conn(nullptr, false, X509_V_OK, "open.example.com");
  ClientCertVerdict v = check(*a, &other, true, "mtls.example.com");
  EXPECT_EQ(v.status, 421);
  EXPECT_NE(v.body.find("TLS server name open.example.com"), std::string::npos) << v.body;
  // The same name under settings that changed since the handshake.
  auto changed = auth(V::kOptional);
  ClientCertificate old = conn(changed, true);
  EXPECT_EQ(check(*a, &old, true, "mtls.example.com").status, 421);
  // The same settings compiled again (a later snapshot): the same entry.
  auto again = auth(V::kOn);
  ClientCertificate same = conn(again, true);
  EXPECT_EQ(check(*a, &same, true, "mtls.example.com").status, 0);
  // No SNI: nothing was asked for (nginx: 496).
  ClientCertificate no_sni = conn(nullptr, false, X509_V_OK, "");
  EXPECT_EQ(check(*a, &no_sni, true, "mtls.example.com").status, 400);
  // verify off asks for nothing: no 421 (nginx: only servers that verify).
  auto off = auth(V::kOff);
  EXPECT_EQ(check(*off, &other, true, "mtls.example.com").status, 0);
}

// On a listener with a clientValidation of its own, the listener's check
// ran instead: its verdict stands (no 421, no 400), the fields and
// subjectMatch still apply.
TEST(ClientCertificates, ListenerValidationWins) {
  auto a = auth(V::kOn, "", "CN=alice");
  ClientCertificate c = conn(nullptr, true, X509_V_OK, "other.example.com");
  c.listener_validated = true;
  ClientCertVerdict v = check(*a, &c, true, "mtls.example.com");
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(fields(v)["ssl-client-verify"], "SUCCESS");
  ClientCertificate none = conn(nullptr, false);
  none.listener_validated = true;
  EXPECT_EQ(check(*a, &none, true, "mtls.example.com").status, 403);  // no subject: subjectMatch fails
}

TEST(ClientCertificates, TableFindsExactThenLongestWildcard) {
  std::vector<sn::HostClientValidation> entries(3);
  const char* hosts[] = {"a.example.com", "*.example.com", "*.b.example.com"};
  for (size_t i = 0; i < 3; ++i) {
    entries[i].hostname = hosts[i];
    entries[i].ca_pem = ca();
  }
  auto t = HostClientAuthTable::create(entries);
  ASSERT_TRUE(t.ok()) << t.error().message;
  auto host_of = [&](std::string_view h) {
    auto* a = t->find(h);
    return a ? (*a)->config().hostname : std::string("-");
  };
  EXPECT_EQ(host_of("a.example.com"), "a.example.com");
  EXPECT_EQ(host_of("x.example.com"), "*.example.com");
  EXPECT_EQ(host_of("c.b.example.com"), "*.b.example.com");
  EXPECT_EQ(host_of("example.com"), "-");
  EXPECT_EQ(host_of(""), "-");
  entries[0].ca_pem = "junk";
  EXPECT_FALSE(HostClientAuthTable::create(entries).ok());
}

TEST(ClientCertificates, EscapedAsNginxUriComponent) {
  EXPECT_EQ(escape_uri_component("-----BEGIN CERTIFICATE-----\nMIIB+/x=\n"),
            "-----BEGIN%20CERTIFICATE-----%0AMIIB%2B%2Fx%3D%0A");
  EXPECT_EQ(escape_uri_component("a.b_c~d"), "a.b_c~d");
}

}  // namespace
}  // namespace gantry::tls
