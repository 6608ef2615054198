// Fuzzes JWT verification (proxy/filters/jwt.h) against a verifier with fixed
// keys: an HMAC secret, and RSA and P-256 keys generated at start-up (only
// their public halves reach the verifier). Random input must never verify.
// Also: bearer_token() returns a sub-view without blanks, and base64url
// decoding is strict (what decodes re-encodes to the same text).
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/filters/jwt.h"

using namespace gantry::filters;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

std::string public_pem(EVP_PKEY* k) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, k);
  char* data = nullptr;
  const long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

const JwtVerifier& verifier() {
  static const JwtVerifier* v = [] {
    EVP_PKEY* rsa = EVP_RSA_gen(2048);
    EVP_PKEY* ec = EVP_EC_gen("P-256");
    gantry::snapshot::Jwt c;
    c.algorithms = {"HS256", "RS256", "ES256"};
    c.hmac_secret = "fuzz-secret-fuzz-secret-fuzz-sec";
    c.jwks = public_pem(rsa) + public_pem(ec);
    c.issuer = "https://issuer.test";
    c.audiences = {"fuzz"};
    c.claims_to_headers = {{"sub", "X-Sub"}, {"email", "X-Email"}};
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    auto made = JwtVerifier::create(c);
    check(made.ok());
    return made.value().release();
  }();
  return *v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));

  auto r = verifier().verify(in, now);
  check(!r.ok());
  check(!r.error().message.empty() && r.error().message.size() < 64);
  const std::string www = www_authenticate(&r.error());
  for (unsigned char c : www) check(c >= 0x20 && c != 0x7f);

  if (auto t = bearer_token(in)) {
    check(!t->empty() && t->find(' ') == std::string_view::npos);
    check(t->data() >= in.data() && t->data() + t->size() <= in.data() + in.size());
  }

  if (auto d = base64url_decode(in)) check(base64url_encode(*d) == in);
  return 0;
}
