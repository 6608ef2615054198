// The filters of the request phase that may answer (exchange/filter.h): CORS,
// rate limit, request body size limit, JWT, redirect. One class per filter,
// each implemented in its own file (<name>_filter.cc) over the pure policy
// objects of this folder (cors.h, rate_limiter.h, jwt.h).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/exchange/filter.h"
#include "proxy/net/cidr.h"
#include "proxy/snapshot/model.h"

namespace re2 {
class RE2;
}

namespace gantry::filters {

class CorsPolicy;
class RateLimiter;
class RateLimitStore;
class JwtVerifier;

// filters.cors: a preflight is answered here (204 with the Access-Control-*
// fields, or 403 when the origin or method is not allowed); a CORS request
// goes on and its answer gets the Access-Control-* fields.
class CorsFilter final : public exchange::Filter {
 public:
  explicit CorsFilter(const CorsPolicy& policy) : policy_(policy) {}
  std::string_view name() const override { return "cors"; }
  uint8_t phases() const override { return exchange::kOnRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;

 private:
  const CorsPolicy& policy_;
};

// filters.rateLimit: counts the request against the client's key (its IP, or
// the configured header's value when present); 429 with Retry-After when the
// key is out of quota. Every answer from upstream carries RateLimit-*.
// Clients inside `exemptSources` are not counted; the refusal's status is
// `statusCode` (429 unless set).
// With key Consumer the filter counts per authenticated consumer (apiKey,
// basicAuth; the client IP when nobody authenticated) and so runs after the
// authentication filters, under the name consumer_rate_limit.
// With scope global (a `store`), the decision is the store's: the filter
// waits for it (Verdict::kPending, at most the store's budget); when the
// store cannot decide, failureMode open counts on `limiter` (built with the
// fallback limit, global_rate_limit.h) and closed answers 503 with
// x-gateway-reason: ratelimit-store-unavailable.
class RateLimitFilter final : public exchange::Filter {
 public:
  RateLimitFilter(std::shared_ptr<RateLimiter> limiter, const snapshot::RateLimit& config,
                  std::shared_ptr<RateLimitStore> store = nullptr, std::string rule_label = {});
  ~RateLimitFilter() override;
  std::string_view name() const override { return by_consumer_ ? "consumer_rate_limit" : "rate_limit"; }
  uint8_t phases() const override { return exchange::kOnRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;
  exchange::Verdict on_resume(exchange::Exchange& ex) const override;

 private:
  // The key the request counts against (its buffer: `scratch`).
  std::string_view key_of(const exchange::Exchange& ex, std::string& scratch) const;
  exchange::Verdict local(exchange::Exchange& ex, std::string_view key) const;

  std::shared_ptr<RateLimiter> limiter_;
  int status_code_ = 429;
  bool by_consumer_ = false;
  std::vector<net::Cidr> exempt_;
  // scope global
  std::shared_ptr<RateLimitStore> store_;
  snapshot::RateLimit config_;
  std::string rule_label_;
  bool fail_closed_ = false;
};

// filters.apiKey: the key is read from the configured header, else the query
// parameter; its SHA-256 is looked up among the consumers' (the full digests
// compared in constant time). Missing: 401; unknown: 401 or 403 as
// configured. Upstream: the consumer's name in the consumer header (replacing
// the client's), the key's header field and query parameter removed.
class ApiKeyFilter final : public exchange::Filter {
 public:
  explicit ApiKeyFilter(const snapshot::ApiKey& config);
  std::string_view name() const override { return "api_key"; }
  uint8_t phases() const override { return exchange::kOnRequest | exchange::kOnUpstreamRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;
  void on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const override;

  // The consumer whose key has SHA-256 `digest` (32 bytes), or empty.
  std::string_view lookup(const unsigned char* digest) const;

 private:
  struct Entry {
    std::array<unsigned char, 32> digest;
    std::string_view consumer;  // into the snapshot
  };
  const snapshot::ApiKey& config_;
  // Buckets by the digest's first 8 bytes (which say nothing of a key); the
  // whole digest is then compared with CRYPTO_memcmp.
  std::unordered_multimap<uint64_t, Entry> by_prefix_;
};

class BasicAuthVerifier;

// filters.basicAuth: Authorization: Basic user:password, verified against the
// user's crypt(3) hash (bcrypt, SHA-256/512 crypt) with crypt_rn; successful
// verifications are remembered (basic_auth.h). 401 with WWW-Authenticate:
// Basic realm="..." otherwise. Upstream: the user in the consumer header,
// Authorization removed.
class BasicAuthFilter final : public exchange::Filter {
 public:
  explicit BasicAuthFilter(const snapshot::BasicAuth& config);
  ~BasicAuthFilter() override;
  std::string_view name() const override { return "basic_auth"; }
  uint8_t phases() const override { return exchange::kOnRequest | exchange::kOnUpstreamRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;
  void on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const override;

 private:
  const snapshot::BasicAuth& config_;
  std::string challenge_;  // the WWW-Authenticate value
  std::unique_ptr<BasicAuthVerifier> verifier_;
};

// filters.httpsRedirect: a request that did not come over TLS is answered
// with a redirect to https:// (same host, path and query), except under
// /.well-known/acme-challenge/, which ACME HTTP-01 validation must reach.
class HttpsRedirectFilter final : public exchange::Filter {
 public:
  explicit HttpsRedirectFilter(const snapshot::HttpsRedirect& config) : config_(config) {}
  std::string_view name() const override { return "https_redirect"; }
  uint8_t phases() const override { return exchange::kOnRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;

 private:
  const snapshot::HttpsRedirect& config_;
};

// filters.sourceRange: 403 for a client address in `deny`, or outside a
// non-empty `allow` (the client address after trusted proxies).
class SourceRangeFilter final : public exchange::Filter {
 public:
  explicit SourceRangeFilter(const snapshot::SourceRange& config);
  std::string_view name() const override { return "source_range"; }
  uint8_t phases() const override { return exchange::kOnRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;

 private:
  std::vector<net::Cidr> allow_, deny_;
};

// filters.grpcWeb (docs/policies.md, "gRPC-Web"): a request whose
// content-type is application/grpc-web* is marked (ex.grpc_web) so that the
// gateway's own answers are gRPC-Web trailers-only and the driver translates
// the bodies; its upstream request becomes gRPC (content-type
// application/grpc[+suffix], te: trailers set by the driver, no
// content-length for a -text body, whose length changes) and the answer's
// content-type the client's gRPC-Web type again (the framing:
// grpc_web.h). Any other request passes untouched.
class GrpcWebFilter final : public exchange::Filter {
 public:
  std::string_view name() const override { return "grpc_web"; }
  uint8_t phases() const override {
    return exchange::kOnRequest | exchange::kOnUpstreamRequest | exchange::kOnResponse;
  }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;
  void on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const override;
  void on_response(exchange::Exchange& ex, const exchange::ResponseInfo& resp,
                   exchange::HeaderEdits& edits) const override;
};

// filters.hsts: Strict-Transport-Security on the answers to requests that
// came over TLS (replacing the upstream's).
class HstsFilter final : public exchange::Filter {
 public:
  explicit HstsFilter(const snapshot::Hsts& config) : config_(config) {}
  std::string_view name() const override { return "hsts"; }
  uint8_t phases() const override { return exchange::kOnResponse; }
  void on_response(exchange::Exchange& ex, const exchange::ResponseInfo& resp,
                   exchange::HeaderEdits& edits) const override;

 private:
  const snapshot::Hsts& config_;
};

// filters.maxRequestBodySize: a Content-Length over the limit is answered
// 413 at once; a streamed (chunked) body is held to the limit by the
// exchange as it relays it (ex.body_limit).
class BodyLimitFilter final : public exchange::Filter {
 public:
  explicit BodyLimitFilter(uint64_t limit) : limit_(limit) {}
  std::string_view name() const override { return "body_limit"; }
  uint8_t phases() const override { return exchange::kOnRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;

 private:
  uint64_t limit_;
};

// filters.transform: decides which bodies of the exchange are converted
// between JSON and XML (ex.transform; the exchange driver buffers and converts
// them) from the request's Content-Type and Accept (docs/policies.md,
// "transform", has the rules). A request body over maxBodyBytes that would be
// converted is answered 413 at once (Content-Length) or while it is read.
// Upstream-request phase: Content-Type of a converted body and Accept of the
// backend's format.
class TransformFilter final : public exchange::Filter {
 public:
  explicit TransformFilter(const snapshot::Transform& config) : config_(config) {}
  std::string_view name() const override { return "transform"; }
  uint8_t phases() const override { return exchange::kOnRequest | exchange::kOnUpstreamRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;
  void on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const override;

 private:
  const snapshot::Transform& config_;
};

// filters.jwt: a bearer token must verify (401 + WWW-Authenticate otherwise);
// the configured claims are set on the upstream request, replacing any field
// of the same name the client sent.
class JwtFilter final : public exchange::Filter {
 public:
  explicit JwtFilter(std::shared_ptr<const JwtVerifier> verifier) : verifier_(std::move(verifier)) {}
  std::string_view name() const override { return "jwt"; }
  uint8_t phases() const override { return exchange::kOnRequest | exchange::kOnUpstreamRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;
  void on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const override;

 private:
  std::shared_ptr<const JwtVerifier> verifier_;
};

// filters.requestRedirect: answered by the gateway with Location built from
// the request and the redirect's scheme, hostname, port and path.
// With `location`, Location is that URL (or, with `locationPattern`, the
// rewrite of the request path; a path without the pattern passes on).
class RedirectFilter final : public exchange::Filter {
 public:
  explicit RedirectFilter(const snapshot::RequestRedirect& config);
  ~RedirectFilter() override;
  std::string_view name() const override { return "redirect"; }
  uint8_t phases() const override { return exchange::kOnRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;

 private:
  const snapshot::RequestRedirect& config_;
  std::unique_ptr<const re2::RE2> re_;  // locationPattern, compiled once per snapshot
};

// `path` with its first `matched` bytes (a PathPrefix match) replaced by
// `replacement`, never with a doubled '/' at the seam, "/" when empty.
void rewrite_prefix(std::string_view path, size_t matched, std::string_view replacement, std::string& out);

}  // namespace gantry::filters
