#include "proxy/filters/jwt.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <array>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

namespace gantry::filters {

using json = nlohmann::json;

enum class KeyType : uint8_t { kHmac, kRsa, kEc };

struct JwtVerifier::Key {
  KeyType type = KeyType::kHmac;
  std::string kid;
  std::string alg;     // JWK "alg" when present: the only algorithm this key serves
  std::string secret;  // kHmac
  EVP_PKEY* pkey = nullptr;
  // kHmac: SHA-256 states after absorbing (key ^ ipad) and (key ^ opad)
  // (RFC 2104), computed once, so that a verification is two state copies
  // and the hashing of the token. HMAC() per token costs ~25k instructions in
  // OpenSSL 3 (an algorithm fetch and key setup each time): measured, it was
  // half the price of the policy route in hack/bench.sh proxy.
  EVP_MD_CTX* inner = nullptr;
  EVP_MD_CTX* outer = nullptr;
  ~Key() {
    EVP_PKEY_free(pkey);
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
  }
};

struct JwtVerifier::CacheShard {
  struct Entry {
    VerifiedJwt result;
    double exp;  // +inf when the token has none
    double nbf;  // -inf likewise
  };
  struct Hash {  // lets find() take the token as a string_view (no copy per request)
    using is_transparent = void;
    size_t operator()(std::string_view v) const { return std::hash<std::string_view>{}(v); }
  };
  std::mutex mu;
  std::unordered_map<std::string, Entry, Hash, std::equal_to<>> tokens;
};

JwtVerifier::JwtVerifier() : cache_(new CacheShard[kCacheShards]) {}

// ---------------------------------------------------------------- base64url

namespace {

int b64url_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    const int v = b64url_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical tail
  return out;
}

std::string base64url_encode(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 0x3f]);
  return out;
}

// ---------------------------------------------------------------- helpers

std::optional<std::string_view> bearer_token(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  if (v.size() < 7) return std::nullopt;
  static constexpr std::string_view kBearer = "bearer";
  for (size_t i = 0; i < kBearer.size(); ++i) {
    if ((v[i] | 0x20) != kBearer[i]) return std::nullopt;
  }
  if (v[6] != ' ' && v[6] != '\t') return std::nullopt;
  v.remove_prefix(7);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return std::nullopt;
  for (char c : v)  // (find_first_of costs ~30 instructions a byte here)
    if (c == ' ' || c == '\t') return std::nullopt;
  return v;
}

std::string www_authenticate(const Error* error) {
  if (error == nullptr) return "Bearer";
  std::string out = "Bearer error=\"invalid_token\", error_description=\"";
  for (unsigned char c : error->message) {
    if (c < 0x20 || c == 0x7f) continue;
    out.push_back(c == '"' || c == '\\' ? '\'' : static_cast<char>(c));
  }
  out += "\"";
  return out;
}

namespace {

struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
struct ParamBldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};

using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

BnPtr bn_from(const std::string& bytes) {
  return BnPtr(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                         static_cast<int>(bytes.size()), nullptr));
}

// Builds a public key of `type` ("RSA" or "EC") from parameters.
EVP_PKEY* pkey_from_params(const char* type, OSSL_PARAM_BLD* bld) {
  std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld));
  std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
      EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* pkey = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &pkey, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return nullptr;
  }
  return pkey;
}

// Checks an RSA or EC public key and gives its type, or a problem.
std::string check_public_key(EVP_PKEY* pkey, KeyType& type) {
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    type = KeyType::kRsa;
    if (EVP_PKEY_get_bits(pkey) < 2048) return "RSA key shorter than 2048 bits";
    return "";
  }
  if (EVP_PKEY_is_a(pkey, "EC")) {
    type = KeyType::kEc;
    char group[64] = {0};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &len) != 1 ||
        std::string_view(group, len) != "prime256v1") {
      return "EC key is not on curve P-256";
    }
    std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree> ctx(
        EVP_PKEY_CTX_new_from_pkey(nullptr, pkey, nullptr));
    if (!ctx || EVP_PKEY_public_check(ctx.get()) != 1) return "EC public key is not a valid point";
    return "";
  }
  return "key is neither RSA nor EC";
}

std::string jwk_string(const json& jwk, const char* name) {
  auto it = jwk.find(name);
  return it != jwk.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Parses one JWK. Returns nullptr with an empty problem for a key to skip
// (unknown kty or curve, or an encryption key).
std::unique_ptr<JwtVerifier::Key> parse_jwk(const json& jwk, std::string& problem) {
  if (!jwk.is_object()) {
    problem = "not a JSON object";
    return nullptr;
  }
  const std::string kty = jwk_string(jwk, "kty");
  const std::string use = jwk_string(jwk, "use");
  if (kty.empty()) {
    problem = "missing kty";
    return nullptr;
  }
  if (!use.empty() && use != "sig") return nullptr;
  auto key = std::make_unique<JwtVerifier::Key>();
  key->kid = jwk_string(jwk, "kid");
  key->alg = jwk_string(jwk, "alg");
  auto field = [&](const char* name) -> std::optional<std::string> {
    const std::string v = jwk_string(jwk, name);
    auto d = base64url_decode(v);
    if (v.empty() || !d || d->empty()) {
      problem = std::string(kty) + " key needs a base64url \"" + name + "\"";
      return std::nullopt;
    }
    return d;
  };
  if (kty == "oct") {
    auto k = field("k");
    if (!k) return nullptr;
    key->type = KeyType::kHmac;
    key->secret = std::move(*k);
    return key;
  }
  if (kty == "RSA") {
    auto n = field("n");
    if (!n) return nullptr;
    auto e = field("e");
    if (!e) return nullptr;
    BnPtr bn_n = bn_from(*n), bn_e = bn_from(*e);
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bn_n || !bn_e || !bld ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1 ||
        (key->pkey = pkey_from_params("RSA", bld.get())) == nullptr) {
      problem = "RSA key could not be built from n and e";
      return nullptr;
    }
  } else if (kty == "EC") {
    if (jwk_string(jwk, "crv") != "P-256") return nullptr;  // other curves: not supported
    auto x = field("x");
    if (!x) return nullptr;
    auto y = field("y");
    if (!y) return nullptr;
    if (x->size() != 32 || y->size() != 32) {
      problem = "P-256 key needs 32-byte x and y";
      return nullptr;
    }
    std::string point = "\x04" + *x + *y;
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldFree> bld(OSSL_PARAM_BLD_new());
    if (!bld ||
        OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
            1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1 ||
        (key->pkey = pkey_from_params("EC", bld.get())) == nullptr) {
      problem = "EC key could not be built from x and y";
      return nullptr;
    }
  } else {
    return nullptr;  // OKP and others: not supported, skipped
  }
  problem = check_public_key(key->pkey, key->type);
  if (!problem.empty()) return nullptr;
  return key;
}

Status parse_jwks_json(const std::string& text,
                       std::vector<std::unique_ptr<JwtVerifier::Key>>& keys) {
  const json doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) return Error{"jwks: not valid JSON"};
  const json* list = nullptr;
  json single = json::array();
  if (doc.is_object() && doc.contains("keys")) {
    list = &doc["keys"];
    if (!list->is_array()) return Error{"jwks: \"keys\" must be an array"};
  } else if (doc.is_object()) {
    single.push_back(doc);
    list = &single;
  } else {
    return Error{"jwks: must be a JSON object"};
  }
  for (size_t i = 0; i < list->size(); ++i) {
    std::string problem;
    auto key = parse_jwk((*list)[i], problem);
    if (!problem.empty()) {
      std::string kid = (*list)[i].is_object() ? jwk_string((*list)[i], "kid") : "";
      return Error{"jwks: key " + std::to_string(i) + (kid.empty() ? "" : " (kid " + kid + ")") +
                   ": " + problem};
    }
    if (key) keys.push_back(std::move(key));
  }
  return ok_status();
}

Status parse_pem(const std::string& text, std::vector<std::unique_ptr<JwtVerifier::Key>>& keys) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(text.data(), static_cast<int>(text.size())), &BIO_free);
  if (!bio) return Error{"jwks: out of memory"};
  int index = 0;
  for (;; ++index) {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) break;
    const std::string block = name;
    const unsigned char* p = data;
    EVP_PKEY* pkey = nullptr;
    if (block == "PUBLIC KEY") {
      pkey = d2i_PUBKEY(nullptr, &p, len);
    } else if (block == "RSA PUBLIC KEY") {
      pkey = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, len);
    } else if (block == "CERTIFICATE") {
      if (X509* cert = d2i_X509(nullptr, &p, len)) {
        pkey = X509_get_pubkey(cert);
        X509_free(cert);
      }
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    const std::string at = "jwks: PEM block " + std::to_string(index) + " (" + block + "): ";
    if (block.find("PRIVATE KEY") != std::string::npos) {
      return Error{at + "a private key; give the public key"};
    }
    if (pkey == nullptr) {
      ERR_clear_error();
      return Error{at + "not a readable public key or certificate"};
    }
    auto key = std::make_unique<JwtVerifier::Key>();
    key->pkey = pkey;
    if (std::string problem = check_public_key(pkey, key->type); !problem.empty()) {
      return Error{at + problem};
    }
    keys.push_back(std::move(key));
  }
  ERR_clear_error();  // the end of input leaves "no start line"
  if (index == 0) return Error{"jwks: neither a JWKS JSON document nor PEM public keys"};
  return ok_status();
}

// ---------------------------------------------------------------- verification

bool verify_hs256(const std::string& secret, std::string_view input, const std::string& sig) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (sig.size() != 32 ||
      HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac,
           &len) == nullptr ||
      len != 32) {
    return false;
  }
  return CRYPTO_memcmp(mac, sig.data(), 32) == 0;
}

// Builds the key's precomputed HMAC-SHA256 pad states; false leaves them unset
// (verify_hs256 above is then used).
bool prepare_hmac(EVP_MD_CTX*& inner, EVP_MD_CTX*& outer, const std::string& secret) {
  constexpr size_t kBlock = 64;  // SHA-256 block size
  unsigned char key[kBlock] = {0};
  if (secret.size() > kBlock) {
    unsigned int n = 0;
    if (EVP_Digest(secret.data(), secret.size(), key, &n, EVP_sha256(), nullptr) != 1) return false;
  } else {
    std::memcpy(key, secret.data(), secret.size());
  }
  unsigned char ipad[kBlock], opad[kBlock];
  for (size_t i = 0; i < kBlock; ++i) {
    ipad[i] = key[i] ^ 0x36;
    opad[i] = key[i] ^ 0x5c;
  }
  OPENSSL_cleanse(key, sizeof key);
  inner = EVP_MD_CTX_new();
  outer = EVP_MD_CTX_new();
  bool ok = inner && outer && EVP_DigestInit_ex(inner, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(inner, ipad, kBlock) == 1 &&
            EVP_DigestInit_ex(outer, EVP_sha256(), nullptr) == 1 &&
            EVP_DigestUpdate(outer, opad, kBlock) == 1;
  OPENSSL_cleanse(ipad, sizeof ipad);
  OPENSSL_cleanse(opad, sizeof opad);
  if (!ok) {
    EVP_MD_CTX_free(inner);
    EVP_MD_CTX_free(outer);
    inner = outer = nullptr;
  }
  return ok;
}

// HMAC-SHA256 from the precomputed pad states, in a per-thread scratch context.
bool verify_hs256_fast(const EVP_MD_CTX* inner, const EVP_MD_CTX* outer, std::string_view input,
                       const std::string& sig) {
  if (sig.size() != 32) return false;
  thread_local std::unique_ptr<EVP_MD_CTX, MdCtxFree> scratch(EVP_MD_CTX_new());
  unsigned char inner_hash[32], mac[32];
  unsigned int n = 0, m = 0;
  EVP_MD_CTX* c = scratch.get();
  if (!c || EVP_MD_CTX_copy_ex(c, inner) != 1 || EVP_DigestUpdate(c, input.data(), input.size()) != 1 ||
      EVP_DigestFinal_ex(c, inner_hash, &n) != 1 || n != 32 || EVP_MD_CTX_copy_ex(c, outer) != 1 ||
      EVP_DigestUpdate(c, inner_hash, n) != 1 || EVP_DigestFinal_ex(c, mac, &m) != 1 || m != 32) {
    return false;
  }
  return CRYPTO_memcmp(mac, sig.data(), 32) == 0;
}

bool verify_digest(EVP_PKEY* pkey, std::string_view input, const unsigned char* sig,
                   size_t sig_len) {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, pkey) == 1 &&
      EVP_DigestVerify(ctx.get(), sig, sig_len,
                       reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (!ok) ERR_clear_error();
  return ok;
}

bool verify_es256(EVP_PKEY* pkey, std::string_view input, const std::string& sig) {
  if (sig.size() != 64) return false;
  const auto* raw = reinterpret_cast<const unsigned char*>(sig.data());
  ECDSA_SIG* s = ECDSA_SIG_new();
  if (s == nullptr) return false;
  BIGNUM* r = BN_bin2bn(raw, 32, nullptr);
  BIGNUM* ss = BN_bin2bn(raw + 32, 32, nullptr);
  if (r == nullptr || ss == nullptr || ECDSA_SIG_set0(s, r, ss) != 1) {
    BN_free(r);
    BN_free(ss);
    ECDSA_SIG_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  const int der_len = i2d_ECDSA_SIG(s, &der);
  ECDSA_SIG_free(s);
  if (der_len <= 0) return false;
  const bool ok = verify_digest(pkey, input, der, static_cast<size_t>(der_len));
  OPENSSL_free(der);
  return ok;
}

bool has_control(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

std::optional<std::string> claim_value(const json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    if (has_control(s)) return std::nullopt;
    return s;
  }
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) return v.dump();
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------- JwtVerifier

JwtVerifier::~JwtVerifier() = default;

size_t JwtVerifier::key_count() const { return keys_.size(); }

Result<std::unique_ptr<JwtVerifier>> JwtVerifier::create(const snapshot::Jwt& config) {
  std::unique_ptr<JwtVerifier> v(new JwtVerifier());
  v->config_ = config;
  if (config.algorithms.empty()) return Error{"jwt: algorithms must not be empty"};
  for (const auto& a : config.algorithms) {
    if (a == "HS256") {
      v->allow_hs256_ = true;
    } else if (a == "RS256") {
      v->allow_rs256_ = true;
    } else if (a == "ES256") {
      v->allow_es256_ = true;
    } else {
      return Error{"jwt: algorithm \"" + a + "\" is not one of HS256, RS256, ES256"};
    }
  }
  if (config.clock_skew.count() < 0) return Error{"jwt: clockSkew must not be negative"};
  if (!config.hmac_secret.empty()) {
    auto key = std::make_unique<Key>();
    key->type = KeyType::kHmac;
    key->secret = config.hmac_secret;
    v->keys_.push_back(std::move(key));
  }
  std::string_view text = config.jwks;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) {
    text.remove_prefix(1);
  }
  if (!text.empty()) {
    Status s = text.front() == '{' ? parse_jwks_json(config.jwks, v->keys_)
                                   : parse_pem(config.jwks, v->keys_);
    if (!s.ok()) return s.error();
  }
  for (auto& k : v->keys_)
    if (k->type == KeyType::kHmac) prepare_hmac(k->inner, k->outer, k->secret);
  auto has = [&](KeyType t) {
    for (const auto& k : v->keys_) {
      if (k->type == t) return true;
    }
    return false;
  };
  if (v->allow_hs256_ && !has(KeyType::kHmac)) {
    return Error{"jwt: HS256 is allowed but there is no HMAC secret"};
  }
  if (v->allow_rs256_ && !has(KeyType::kRsa)) {
    return Error{"jwt: RS256 is allowed but jwks holds no RSA public key"};
  }
  if (v->allow_es256_ && !has(KeyType::kEc)) {
    return Error{"jwt: ES256 is allowed but jwks holds no P-256 public key"};
  }
  return v;
}

Result<VerifiedJwt> JwtVerifier::verify(std::string_view token,
                                        std::chrono::system_clock::time_point now) const {
  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double skew_s = std::chrono::duration<double>(config_.clock_skew).count();
  CacheShard& shard = cache_[std::hash<std::string_view>{}(token) % kCacheShards];
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (auto it = shard.tokens.find(token); it != shard.tokens.end()) {
      // The same checks, with the same answers, as the full path below.
      if (now_s >= it->second.exp + skew_s) return Error{"token expired"};
      if (now_s + skew_s < it->second.nbf) return Error{"token not yet valid"};
      return it->second.result;
    }
  }
  double exp = std::numeric_limits<double>::infinity();
  double nbf = -std::numeric_limits<double>::infinity();
  auto r = verify_token(token, now, exp, nbf);
  if (r.ok()) {
    std::lock_guard<std::mutex> lock(shard.mu);
    if (shard.tokens.size() >= kCachedTokens / kCacheShards) shard.tokens.clear();
    shard.tokens.emplace(std::string(token), CacheShard::Entry{*r, exp, nbf});
  }
  return r;
}

Result<VerifiedJwt> JwtVerifier::verify_token(std::string_view token,
                                              std::chrono::system_clock::time_point now, double& exp_out,
                                              double& nbf_out) const {
  if (token.empty()) return Error{"missing token"};
  if (token.size() > kMaxTokenBytes) return Error{"token too large"};
  const size_t dot1 = token.find('.');
  const size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Error{"malformed token"};
  }
  const std::string_view header_b64 = token.substr(0, dot1);
  const std::string_view payload_b64 = token.substr(dot1 + 1, dot2 - dot1 - 1);
  const std::string_view sig_b64 = token.substr(dot2 + 1);
  auto header_raw = base64url_decode(header_b64);
  auto payload_raw = base64url_decode(payload_b64);
  auto sig = base64url_decode(sig_b64);
  if (!header_raw || !payload_raw || !sig) return Error{"bad base64url in token"};

  const json header = json::parse(*header_raw, nullptr, false);
  if (header.is_discarded() || !header.is_object()) return Error{"malformed token header"};
  auto alg_it = header.find("alg");
  if (alg_it == header.end() || !alg_it->is_string()) return Error{"token header has no alg"};
  const std::string& alg = alg_it->get_ref<const std::string&>();
  KeyType want;
  if (alg == "HS256" && allow_hs256_) {
    want = KeyType::kHmac;
  } else if (alg == "RS256" && allow_rs256_) {
    want = KeyType::kRsa;
  } else if (alg == "ES256" && allow_es256_) {
    want = KeyType::kEc;
  } else {
    return Error{"alg " + (has_control(alg) || alg.size() > 16 ? std::string("?") : alg) +
                 " is not allowed"};
  }
  if (header.contains("crit")) return Error{"unsupported crit header"};
  std::string_view kid;
  if (auto it = header.find("kid"); it != header.end()) {
    if (!it->is_string()) return Error{"kid must be a string"};
    kid = it->get_ref<const std::string&>();
  }

  // The signature, before anything in the payload is trusted.
  const std::string_view input = token.substr(0, dot2);
  const Key* verified_by = nullptr;
  bool any_candidate = false;
  for (const auto& k : keys_) {
    if (k->type != want || (!k->alg.empty() && k->alg != alg)) continue;
    if (!kid.empty() && !k->kid.empty() && k->kid != kid) continue;
    any_candidate = true;
    bool ok = false;
    switch (want) {
      case KeyType::kHmac:
        ok = k->inner ? verify_hs256_fast(k->inner, k->outer, input, *sig)
                      : verify_hs256(k->secret, input, *sig);
        break;
      case KeyType::kRsa:
        ok = verify_digest(k->pkey, input, reinterpret_cast<const unsigned char*>(sig->data()),
                           sig->size());
        break;
      case KeyType::kEc:
        ok = verify_es256(k->pkey, input, *sig);
        break;
    }
    if (ok) {
      verified_by = k.get();
      break;
    }
  }
  if (!any_candidate) return Error{kid.empty() ? "no key for alg" : "no key matches kid"};
  if (verified_by == nullptr) return Error{"invalid signature"};

  const json payload = json::parse(*payload_raw, nullptr, false);
  if (payload.is_discarded() || !payload.is_object()) return Error{"malformed token payload"};
  const double now_s = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double skew_s = std::chrono::duration<double>(config_.clock_skew).count();
  if (auto it = payload.find("exp"); it != payload.end()) {
    if (!it->is_number()) return Error{"exp must be a number"};
    const double exp = it->get<double>();
    if (!std::isfinite(exp) || now_s >= exp + skew_s) return Error{"token expired"};
    exp_out = exp;
  }
  if (auto it = payload.find("nbf"); it != payload.end()) {
    if (!it->is_number()) return Error{"nbf must be a number"};
    const double nbf = it->get<double>();
    if (!std::isfinite(nbf) || now_s + skew_s < nbf) return Error{"token not yet valid"};
    nbf_out = nbf;
  }
  if (!config_.issuer.empty()) {
    auto it = payload.find("iss");
    if (it == payload.end() || !it->is_string() ||
        it->get_ref<const std::string&>() != config_.issuer) {
      return Error{"invalid issuer"};
    }
  }
  if (!config_.audiences.empty()) {
    bool match = false;
    auto accepted = [&](const json& a) {
      if (!a.is_string()) return false;
      for (const auto& want_aud : config_.audiences) {
        if (a.get_ref<const std::string&>() == want_aud) return true;
      }
      return false;
    };
    if (auto it = payload.find("aud"); it != payload.end()) {
      if (it->is_array()) {
        for (const auto& a : *it) match = match || accepted(a);
      } else {
        match = accepted(*it);
      }
    }
    if (!match) return Error{"invalid audience"};
  }

  VerifiedJwt out;
  out.key_id = verified_by->kid;
  if (auto it = payload.find("sub");
      it != payload.end() && it->is_string() && !has_control(it->get_ref<const std::string&>())) {
    out.subject = it->get<std::string>();
  }
  for (const auto& c : config_.claims_to_headers) {
    auto it = payload.find(c.claim);
    if (it == payload.end()) continue;
    if (auto v = claim_value(*it)) out.headers.emplace_back(c.header, std::move(*v));
  }
  return out;
}

}  // namespace gantry::filters
