// Tests of JWT verification (proxy/filters/jwt.h). RSA and EC keys are
// generated at test time with OpenSSL (no private key is committed) and the
// tokens are minted here, including the classic attacks: alg none, HS256
// signed with the RSA public key, tampering, expiry, wrong issuer/audience/kid.
#include "proxy/filters/jwt.h"

#include <gtest/gtest.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gantry::filters {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::system_clock;

const Clock::time_point kNow = Clock::time_point(std::chrono::seconds(1700000000));
constexpr int64_t kNowS = 1700000000;
const std::string kSecret = "a-test-hmac-secret-of-32-bytes!!";

struct PkeyDeleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;

std::string pem_public(EVP_PKEY* k) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, k);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string pem_private(EVP_PKEY* k) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, k, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(len));
  BIO_free(bio);
  return out;
}

std::string bn_param(EVP_PKEY* k, const char* name, int pad = 0) {
  BIGNUM* bn = nullptr;
  EXPECT_EQ(EVP_PKEY_get_bn_param(k, name, &bn), 1);
  std::string out(pad > 0 ? static_cast<size_t>(pad) : static_cast<size_t>(BN_num_bytes(bn)), '\0');
  if (pad > 0) {
    BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), pad);
  } else {
    BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  }
  BN_free(bn);
  return out;
}

json rsa_jwk(EVP_PKEY* k, const std::string& kid) {
  json j = {{"kty", "RSA"},
            {"n", base64url_encode(bn_param(k, OSSL_PKEY_PARAM_RSA_N))},
            {"e", base64url_encode(bn_param(k, OSSL_PKEY_PARAM_RSA_E))}};
  if (!kid.empty()) j["kid"] = kid;
  return j;
}

json ec_jwk(EVP_PKEY* k, const std::string& kid) {
  json j = {{"kty", "EC"},
            {"crv", "P-256"},
            {"x", base64url_encode(bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
            {"y", base64url_encode(bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
  if (!kid.empty()) j["kid"] = kid;
  return j;
}

std::string hmac(const std::string& key, const std::string& input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return std::string(reinterpret_cast<char*>(mac), len);
}

std::string digest_sign(EVP_PKEY* k, const std::string& input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, k);
  EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                 input.size());
  std::string sig(len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  sig.resize(len);
  EVP_MD_CTX_free(ctx);
  return sig;
}

// DER ECDSA signature -> JWS r||s.
std::string der_to_raw(const std::string& der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* s = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  const BIGNUM *r = nullptr, *ss = nullptr;
  ECDSA_SIG_get0(s, &r, &ss);
  std::string out(64, '\0');
  BN_bn2binpad(r, reinterpret_cast<unsigned char*>(out.data()), 32);
  BN_bn2binpad(ss, reinterpret_cast<unsigned char*>(out.data()) + 32, 32);
  ECDSA_SIG_free(s);
  return out;
}

struct Keys {
  Pkey rsa, rsa2, ec, rsa_small;
  std::string rsa_pem, ec_pem;
};

Keys& keys() {
  static Keys* k = [] {
    auto* k = new Keys;
    k->rsa.reset(EVP_RSA_gen(2048));
    k->rsa2.reset(EVP_RSA_gen(2048));
    k->ec.reset(EVP_EC_gen("P-256"));
    k->rsa_small.reset(EVP_RSA_gen(1024));
    k->rsa_pem = pem_public(k->rsa.get());
    k->ec_pem = pem_public(k->ec.get());
    return k;
  }();
  return *k;
}

// Mints header.payload.signature; `alg` picks the signing: HS256 with
// `secret`, RS256/ES256 with `key`, "none" with an empty signature.
std::string mint(const json& header, const json& payload, const std::string& alg,
                 EVP_PKEY* key = nullptr, const std::string& secret = kSecret) {
  const std::string input =
      base64url_encode(header.dump()) + "." + base64url_encode(payload.dump());
  std::string sig;
  if (alg == "HS256") sig = hmac(secret, input);
  if (alg == "RS256") sig = digest_sign(key, input);
  if (alg == "ES256") sig = der_to_raw(digest_sign(key, input));
  return input + "." + base64url_encode(sig);
}

json claims() {
  return {{"iss", "https://issuer.test"},
          {"aud", "shop"},
          {"sub", "user-1"},
          {"exp", kNowS + 3600},
          {"nbf", kNowS - 10},
          {"email", "u@example.com"},
          {"admin", true},
          {"level", 7}};
}

snapshot::Jwt config(std::vector<std::string> algs, std::string jwks = "",
                     std::string secret = "") {
  snapshot::Jwt c;
  c.algorithms = std::move(algs);
  c.jwks = std::move(jwks);
  c.hmac_secret = std::move(secret);
  c.issuer = "https://issuer.test";
  c.audiences = {"shop", "admin"};
  c.claims_to_headers = {
      {"email", "X-User-Email"}, {"admin", "X-Admin"}, {"level", "X-Level"}, {"sub", "X-Sub"}};
  return c;
}

struct VerifyCase {
  std::string name;
  snapshot::Jwt config;
  std::string token;
  std::string want_error;  // empty: valid
};

std::vector<VerifyCase> verify_cases() {
  Keys& k = keys();
  const json hs = {{"alg", "HS256"}, {"typ", "JWT"}};
  const json rs = {{"alg", "RS256"}, {"kid", "rsa-1"}};
  const json es = {{"alg", "ES256"}, {"kid", "ec-1"}};
  const std::string jwks =
      json{{"keys", {rsa_jwk(k.rsa.get(), "rsa-1"), ec_jwk(k.ec.get(), "ec-1")}}}.dump();
  const auto hs_cfg = config({"HS256"}, "", kSecret);
  const auto rs_pem_cfg = config({"RS256"}, k.rsa_pem);
  const auto jwks_cfg = config({"RS256", "ES256"}, jwks);
  const auto all_cfg = config({"HS256", "RS256", "ES256"}, jwks, kSecret);
  auto c = claims();
  auto claims_with = [&](const std::string& key, json v) {
    json j = claims();
    if (v.is_null()) {
      j.erase(key);
    } else {
      j[key] = std::move(v);
    }
    return j;
  };
  const std::string good_rs = mint(rs, c, "RS256", k.rsa.get());
  const std::string tampered = good_rs.substr(0, good_rs.find('.') + 1) +
                               base64url_encode(claims_with("sub", "admin").dump()) +
                               good_rs.substr(good_rs.rfind('.'));
  const std::string es_der = [&] {
    const std::string input = base64url_encode(es.dump()) + "." + base64url_encode(c.dump());
    return input + "." + base64url_encode(digest_sign(k.ec.get(), input));
  }();
  json no_kid_rs = {{"alg", "RS256"}};
  const std::string two_rsa =
      json{{"keys", {rsa_jwk(k.rsa2.get(), ""), rsa_jwk(k.rsa.get(), "")}}}.dump();

  return {
      {"HS256Valid", hs_cfg, mint(hs, c, "HS256"), ""},
      {"RS256ViaPem", rs_pem_cfg, mint(json{{"alg", "RS256"}}, c, "RS256", k.rsa.get()), ""},
      {"RS256ViaJwksKid", jwks_cfg, good_rs, ""},
      {"ES256ViaJwksKid", jwks_cfg, mint(es, c, "ES256", k.ec.get()), ""},
      {"ES256ViaPem", config({"ES256"}, k.ec_pem),
       mint(json{{"alg", "ES256"}}, c, "ES256", k.ec.get()), ""},
      {"NoKidTriesEveryKeyOfTheType", config({"RS256"}, two_rsa),
       mint(no_kid_rs, c, "RS256", k.rsa.get()), ""},
      {"AllAlgorithmsHS256", all_cfg, mint(hs, c, "HS256"), ""},
      {"AlgNone", hs_cfg, mint(json{{"alg", "none"}}, c, "none"), "alg none is not allowed"},
      {"AlgNoneWhenEverythingIsAllowed", all_cfg, mint(json{{"alg", "none"}}, c, "none"),
       "alg none is not allowed"},
      {"AlgNoneUpperCase", all_cfg, mint(json{{"alg", "NONE"}}, c, "none"),
       "alg NONE is not allowed"},
      {"KeyConfusionHS256WithRsaPem", rs_pem_cfg, mint(hs, c, "HS256", nullptr, k.rsa_pem),
       "alg HS256 is not allowed"},
      {"KeyConfusionWhenHS256IsAlsoAllowed", config({"RS256", "HS256"}, k.rsa_pem, kSecret),
       mint(hs, c, "HS256", nullptr, k.rsa_pem), "invalid signature"},
      {"RS256WhenOnlyES256Allowed", config({"ES256"}, k.ec_pem), good_rs,
       "alg RS256 is not allowed"},
      {"WrongHmacSecret", hs_cfg, mint(hs, c, "HS256", nullptr, "another-secret"),
       "invalid signature"},
      {"SignedByAnotherRsaKey", rs_pem_cfg, mint(rs, c, "RS256", k.rsa2.get()),
       "invalid signature"},
      {"TamperedPayload", jwks_cfg, tampered, "invalid signature"},
      {"EcDerSignatureIsNotJws", jwks_cfg, es_der, "invalid signature"},
      {"Expired", hs_cfg, mint(hs, claims_with("exp", kNowS - 61), "HS256"), "token expired"},
      {"ExpiredWithinSkew", hs_cfg, mint(hs, claims_with("exp", kNowS - 59), "HS256"), ""},
      {"ExpiresNowPlusSkew", hs_cfg, mint(hs, claims_with("exp", kNowS - 60), "HS256"),
       "token expired"},
      {"ExpNotANumber", hs_cfg, mint(hs, claims_with("exp", "tomorrow"), "HS256"),
       "exp must be a number"},
      {"NotYetValid", hs_cfg, mint(hs, claims_with("nbf", kNowS + 61), "HS256"),
       "token not yet valid"},
      {"NotYetValidWithinSkew", hs_cfg, mint(hs, claims_with("nbf", kNowS + 60), "HS256"), ""},
      {"WrongIssuer", hs_cfg, mint(hs, claims_with("iss", "https://evil.test"), "HS256"),
       "invalid issuer"},
      {"MissingIssuer", hs_cfg, mint(hs, claims_with("iss", nullptr), "HS256"), "invalid issuer"},
      {"WrongAudience", hs_cfg, mint(hs, claims_with("aud", "billing"), "HS256"),
       "invalid audience"},
      {"AudienceArray", hs_cfg, mint(hs, claims_with("aud", json{"x", "admin"}), "HS256"), ""},
      {"AudienceArrayWithoutMatch", hs_cfg, mint(hs, claims_with("aud", json{"x", "y"}), "HS256"),
       "invalid audience"},
      {"MissingAudience", hs_cfg, mint(hs, claims_with("aud", nullptr), "HS256"),
       "invalid audience"},
      {"WrongKid", jwks_cfg,
       mint(json{{"alg", "RS256"}, {"kid", "rsa-9"}}, c, "RS256", k.rsa.get()),
       "no key matches kid"},
      {"KidOfAnotherType", jwks_cfg,
       mint(json{{"alg", "RS256"}, {"kid", "ec-1"}}, c, "RS256", k.rsa.get()),
       "no key matches kid"},
      {"KidMustBeAString", jwks_cfg,
       mint(json{{"alg", "RS256"}, {"kid", 1}}, c, "RS256", k.rsa.get()), "kid must be a string"},
      {"CritHeader", hs_cfg, mint(json{{"alg", "HS256"}, {"crit", {"exp"}}}, c, "HS256"),
       "unsupported crit header"},
      {"BadBase64Url", hs_cfg, "eyJhbGciOiJIUzI1NiJ9.e+30=.abc", "bad base64url in token"},
      {"PaddedBase64", hs_cfg, mint(hs, c, "HS256") + "=", "bad base64url in token"},
      {"TwoParts", hs_cfg, "eyJhbGciOiJIUzI1NiJ9.e30", "malformed token"},
      {"FourParts", hs_cfg, mint(hs, c, "HS256") + ".x", "malformed token"},
      {"HeaderNotJson", hs_cfg, base64url_encode("{alg") + ".e30.", "malformed token header"},
      {"HeaderNotAnObject", hs_cfg, base64url_encode("[1]") + ".e30.", "malformed token header"},
      {"NoAlg", hs_cfg, base64url_encode("{}") + ".e30.", "token header has no alg"},
      {"PayloadNotAnObject", hs_cfg,
       [] {
         std::string in = base64url_encode(R"({"alg":"HS256"})") + "." + base64url_encode("42");
         return in + "." + base64url_encode(hmac(kSecret, in));
       }(),
       "malformed token payload"},
      {"Empty", hs_cfg, "", "missing token"},
      {"TooLarge", hs_cfg, std::string(JwtVerifier::kMaxTokenBytes + 1, 'a'), "token too large"},
  };
}

TEST(JwtVerifier, VerifyTable) {
  for (const auto& c : verify_cases()) {
    SCOPED_TRACE(c.name);
    auto v = JwtVerifier::create(c.config);
    ASSERT_TRUE(v.ok()) << v.error().message;
    auto r = (*v)->verify(c.token, kNow);
    if (c.want_error.empty()) {
      EXPECT_TRUE(r.ok()) << r.error().message;
    } else {
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.error().message, c.want_error);
    }
  }
}

// HS256 against OpenSSL's HMAC() for secrets around the SHA-256 block size
// (a secret over 64 bytes is hashed first, RFC 2104), from the HMAC secret and
// from a JWKS "oct" key; every flipped signature bit fails.
TEST(JwtVerifier, Hs256MatchesHmacForEverySecretLength) {
  const json hs = {{"alg", "HS256"}, {"typ", "JWT"}};
  for (size_t len : {1u, 31u, 32u, 63u, 64u, 65u, 200u}) {
    SCOPED_TRACE(len);
    std::string secret;
    for (size_t i = 0; i < len; ++i) secret.push_back(static_cast<char>('a' + (i * 7) % 26));
    const std::string token = mint(hs, claims(), "HS256", nullptr, secret);
    const json oct = {{"keys", {{{"kty", "oct"}, {"k", base64url_encode(secret)}}}}};
    for (const auto& cfg : {config({"HS256"}, "", secret), config({"HS256"}, oct.dump())}) {
      auto v = JwtVerifier::create(cfg);
      ASSERT_TRUE(v.ok()) << v.error().message;
      EXPECT_TRUE((*v)->verify(token, kNow).ok());
      std::string sig = *base64url_decode(token.substr(token.rfind('.') + 1));
      for (size_t bit = 0; bit < sig.size() * 8; bit += 37) {
        std::string bad = sig;
        bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
        std::string forged = token.substr(0, token.rfind('.') + 1) + base64url_encode(bad);
        EXPECT_FALSE((*v)->verify(forged, kNow).ok()) << bit;
      }
    }
  }
}

// A verified token is remembered; a repeat gives the same answer, and exp and
// nbf are still judged against the time of each call (with the clock skew);
// a forged twin of a remembered token is not accepted; failures are never
// remembered (a token that was not yet valid becomes valid later).
TEST(JwtVerifier, RememberedTokensStillExpire) {
  using std::chrono::seconds;
  const json hs = {{"alg", "HS256"}, {"typ", "JWT"}};
  auto v = JwtVerifier::create(config({"HS256"}, "", kSecret));
  ASSERT_TRUE(v.ok());
  const std::string token = mint(hs, claims(), "HS256");  // exp now + 3600 s, nbf now - 10 s
  for (int i = 0; i < 3; ++i) {
    auto r = (*v)->verify(token, kNow);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->subject, "user-1");
    EXPECT_EQ(r->headers.size(), 4u);
  }
  EXPECT_TRUE((*v)->verify(token, kNow + seconds(3600 + 59)).ok());  // within the 60 s skew
  auto late = (*v)->verify(token, kNow + seconds(3600 + 60));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().message, "token expired");
  auto early = (*v)->verify(token, kNow - seconds(71));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.error().message, "token not yet valid");

  std::string forged = token;
  forged.back() = forged.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE((*v)->verify(forged, kNow).ok());

  json later = claims();
  later["nbf"] = kNowS + 600;
  const std::string future = mint(hs, later, "HS256");
  EXPECT_FALSE((*v)->verify(future, kNow).ok());
  EXPECT_TRUE((*v)->verify(future, kNow + seconds(600)).ok());
}

TEST(JwtVerifier, ClaimsToHeaders) {
  auto v = JwtVerifier::create(config({"HS256"}, "", kSecret));
  ASSERT_TRUE(v.ok());
  json c = claims();
  c["level"] = 7;
  c["email"] = "u@example.com";
  auto r = (*v)->verify(mint({{"alg", "HS256"}}, c, "HS256"), kNow);
  ASSERT_TRUE(r.ok()) << r.error().message;
  using H = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(r->headers, (H{{"X-User-Email", "u@example.com"},
                           {"X-Admin", "true"},
                           {"X-Level", "7"},
                           {"X-Sub", "user-1"}}));
  EXPECT_EQ(r->subject, "user-1");

  // Objects, arrays, null and values with control characters are skipped.
  c["email"] = "a@b\r\nX-Injected: 1";
  c["admin"] = json::object();
  c["level"] = json::array({1});
  c["sub"] = nullptr;
  r = (*v)->verify(mint({{"alg", "HS256"}}, c, "HS256"), kNow);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_TRUE(r->headers.empty());
  EXPECT_EQ(r->subject, "");
}

TEST(JwtVerifier, CreateReportsTheProblem) {
  Keys& k = keys();
  json rsa = rsa_jwk(k.rsa.get(), "k1");
  json no_e = rsa;
  no_e.erase("e");
  json ec = ec_jwk(k.ec.get(), "e1");
  json short_x = ec;
  short_x["x"] = base64url_encode("short");
  json off_curve = ec;
  off_curve["y"] = base64url_encode(std::string(32, '\x01'));
  struct Row {
    std::string name;
    snapshot::Jwt config;
    std::string want;  // a substring of the error
  };
  std::vector<Row> rows = {
      {"NotJson", config({"RS256"}, "{not json"), "jwks: not valid JSON"},
      {"KeysNotArray", config({"RS256"}, R"({"keys": 1})"), "\"keys\" must be an array"},
      {"MissingE", config({"RS256"}, json{{"keys", {no_e}}}.dump()),
       "jwks: key 0 (kid k1): RSA key needs a base64url \"e\""},
      {"ShortEcX", config({"ES256"}, json{{"keys", {rsa, short_x}}}.dump()),
       "jwks: key 1 (kid e1): P-256 key needs 32-byte x and y"},
      {"OffCurve", config({"ES256"}, json{{"keys", {off_curve}}}.dump()), "jwks: key 0 (kid e1)"},
      {"MissingKty", config({"RS256"}, R"({"keys":[{"n":"AQAB"}]})"), "missing kty"},
      {"PrivateKeyPem", config({"RS256"}, pem_private(k.rsa.get())), "a private key"},
      {"Garbage", config({"RS256"}, "hello"), "neither a JWKS JSON document nor PEM"},
      {"SmallRsaKey", config({"RS256"}, pem_public(k.rsa_small.get())), "shorter than 2048 bits"},
      {"NoRsaKey", config({"RS256"}, k.ec_pem), "RS256 is allowed but jwks holds no RSA"},
      {"NoEcKey", config({"ES256"}, k.rsa_pem), "ES256 is allowed but jwks holds no P-256"},
      {"NoSecret", config({"HS256"}), "HS256 is allowed but there is no HMAC secret"},
      {"AlgNoneConfigured", config({"none"}, "", kSecret), "algorithm \"none\" is not one of"},
      {"NoAlgorithms", config({}, "", kSecret), "algorithms must not be empty"},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.name);
    auto v = JwtVerifier::create(r.config);
    ASSERT_FALSE(v.ok());
    EXPECT_NE(v.error().message.find(r.want), std::string::npos) << v.error().message;
  }
  // Keys of other types and encryption keys are skipped, not errors.
  json enc = rsa;
  enc["use"] = "enc";
  auto v = JwtVerifier::create(config(
      {"RS256"},
      json{{"keys", {json{{"kty", "OKP"}, {"crv", "Ed25519"}, {"x", "AA"}}, enc, rsa}}}.dump()));
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ((*v)->key_count(), 1u);
  // A single JWK and an "oct" key serve HS256.
  auto oct = JwtVerifier::create(
      config({"HS256"}, json{{"kty", "oct"}, {"k", base64url_encode(kSecret)}}.dump()));
  ASSERT_TRUE(oct.ok()) << oct.error().message;
  EXPECT_TRUE((*oct)->verify(mint({{"alg", "HS256"}}, claims(), "HS256"), kNow).ok());
  // PEM with several keys and a certificate-free mix.
  auto both = JwtVerifier::create(config({"RS256", "ES256"}, k.rsa_pem + k.ec_pem));
  ASSERT_TRUE(both.ok()) << both.error().message;
  EXPECT_EQ((*both)->key_count(), 2u);
}

TEST(Jwt, BearerToken) {
  struct Row {
    std::string in;
    std::optional<std::string> want;
  };
  for (const Row& r :
       {Row{"Bearer abc.def.ghi", "abc.def.ghi"}, Row{"bearer  x", "x"}, Row{"BEARER x ", "x"},
        Row{"Basic dXNlcjpw", std::nullopt}, Row{"Bearer", std::nullopt},
        Row{"Bearer ", std::nullopt}, Row{"Bearerx y", std::nullopt},
        Row{"Bearer a b", std::nullopt}, Row{"", std::nullopt}}) {
    auto got = bearer_token(r.in);
    EXPECT_EQ(got.has_value(), r.want.has_value()) << r.in;
    if (got && r.want) {
      EXPECT_EQ(*got, *r.want) << r.in;
    }
  }
}

TEST(Jwt, WwwAuthenticate) {
  EXPECT_EQ(www_authenticate(nullptr), "Bearer");
  Error e{"token \"expired\"\r\n\\"};
  EXPECT_EQ(www_authenticate(&e),
            "Bearer error=\"invalid_token\", error_description=\"token 'expired''\"");
}

TEST(Jwt, Base64Url) {
  for (const std::string s :
       {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00\x01"}) {
    auto back = base64url_decode(base64url_encode(s));
    ASSERT_TRUE(back.has_value()) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  for (const char* bad : {"Zg=", "Z", "Zh", "ab+c", "ab/c", "a b", "Zm9=", "Zm9v!"}) {
    EXPECT_FALSE(base64url_decode(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace gantry::filters
