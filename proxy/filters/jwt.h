// JWT bearer-token verification (RFC 7519 / RFC 7515 compact JWS).
//
// Algorithms: HS256 (the rule's hmacSecret, or JWKS "oct" keys), RS256 (RSA
// keys of at least 2048 bits), ES256 (P-256 keys; the JWS raw r||s signature
// is converted to DER for OpenSSL). Keys come from `jwks`: a JWKS document
// ({"keys":[...]}, or one JWK), or PEM blocks (PUBLIC KEY, RSA PUBLIC KEY,
// CERTIFICATE). A token's `alg` must be in the configured list ("none" never
// is), and is verified only with keys of its own type: an HS256 token is never
// checked against an RSA/EC key's bytes (the key-confusion attack). A token
// with `kid` is checked only against keys with that kid or with no kid; a
// token without `kid` against every key of its type.
// Claims: exp (now < exp + skew), nbf (now + skew >= nbf), iss (equal, when
// configured), aud (string or array; one must be configured, when any is).
// `crit` headers are refused (none is understood).
// Errors are values whose message is a short reason fit for
// `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`.
// A verifier is immutable after create(): verify() is thread-safe.
// Verified tokens are remembered (keyed by the whole token, with their exp and
// nbf, at most kCachedTokens, in mutex-guarded shards): a client's repeated
// token skips decoding, the signature and the claims, and only exp/nbf are
// checked again against `now`. A token that failed is never remembered.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/snapshot/model.h"

namespace gantry::filters {

// A verified token: the values of the configured claim -> header mappings
// (string, number and bool claims; others, and values holding control
// characters, are skipped), and the subject for logs.
struct VerifiedJwt {
  std::vector<std::pair<std::string, std::string>> headers;  // (header name, value)
  std::string subject;
  std::string key_id;  // the kid of the key that verified it (may be empty)
};

class JwtVerifier {
 public:
  static constexpr size_t kMaxTokenBytes = 16 * 1024;

  // Parses and checks the keys; an error names the problem ("jwks: key 2: ...").
  static Result<std::unique_ptr<JwtVerifier>> create(const snapshot::Jwt& config);
  ~JwtVerifier();
  JwtVerifier(const JwtVerifier&) = delete;
  JwtVerifier& operator=(const JwtVerifier&) = delete;

  // `now` is wall-clock time (exp/nbf are Unix seconds).
  Result<VerifiedJwt> verify(std::string_view token,
                             std::chrono::system_clock::time_point now) const;

  size_t key_count() const;

  struct Key;         // opaque: defined in jwt.cc
  struct CacheShard;  // likewise
  static constexpr size_t kCacheShards = 16;
  static constexpr size_t kCachedTokens = 4096;  // a full shard is emptied

 private:
  JwtVerifier();
  Result<VerifiedJwt> verify_token(std::string_view token, std::chrono::system_clock::time_point now,
                                   double& exp, double& nbf) const;
  std::unique_ptr<CacheShard[]> cache_;
  snapshot::Jwt config_;
  std::vector<std::unique_ptr<Key>> keys_;
  bool allow_hs256_ = false, allow_rs256_ = false, allow_es256_ = false;
};

// The token of an `Authorization: Bearer <token>` value (scheme case-
// insensitive), or nullopt.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// The WWW-Authenticate value for a 401: `Bearer` when no token was sent, else
// `Bearer error="invalid_token", error_description="<reason>"` (quotes and
// backslashes in the reason replaced, control characters dropped).
std::string www_authenticate(const Error* error);

// Base64url (RFC 4648 section 5) without padding; strict: rejects '=', other
// alphabets, a length of 4k+1 and non-zero trailing bits.
std::optional<std::string> base64url_decode(std::string_view in);
std::string base64url_encode(std::string_view in);

}  // namespace gantry::filters
