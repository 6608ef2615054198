// filters.extAuth (docs/policies.md): a call to an authorisation service
// before the request goes upstream: HTTP/1.1 (or HTTPS) as ingress-nginx's
// auth-url and Envoy's HTTP ext_authz make it, or Envoy's gRPC ext_authz
// (envoy.service.auth.v3.Authorization/Check over HTTP/2; the messages in
// ext_authz_proto.h). With withRequestBody the driver reads the client's
// body (bounded) before the call starts (Exchange::request_body).
//
// The filter is pure exchange logic: it builds the call, decides from the
// answer, and remembers allowed decisions. The call itself goes through an
// ExtAuthTransport (net/ext_auth_client.h in the proxy: pooled keep-alive
// connections of the calling worker, never blocking it), so the filter waits
// with Verdict::kPending and an ExtAuthOp (exchange.h, PendingOp).
//
// Invariants:
// - A decision-cache hit answers in on_request() without a PendingOp.
// - Only allowed decisions are remembered (a denial must not outlive the
//   user's sign-in), keyed by the values of the configured request headers,
//   for cache_ttl, at most cache_max_entries (16 locked shards; a full shard
//   is emptied).
// - The transport's done() comes on the worker's thread; after cancel() (the
//   driver gave up) or the op's destruction, nothing touches the Exchange.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/exchange/filter.h"
#include "proxy/snapshot/model.h"

namespace gantry::filters {

// One call to the authorisation service: what to send, then what came back.
struct ExtAuthCall {
  // ---- in
  std::string host;
  uint16_t port = 0;
  // HTTP: the whole HTTP/1.1 request (head and body). gRPC: the framed
  // CheckRequest, sent as POST `path` to `authority` over HTTP/2.
  std::string request;
  bool grpc = false;
  std::string authority, path;
  // TLS to the service: the transport's state from prepare() (null: plain).
  std::shared_ptr<const void> tls;
  std::chrono::milliseconds timeout{0};
  size_t max_body = 64 * 1024;  // an answer body larger than this is an error
  bool head_only = false;        // the call is a HEAD: its answer has no body
  // ---- out (set before done())
  bool ok = false;     // a whole answer came
  std::string error;   // why not, when !ok
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased (HTTP/2: trailers too)
  std::string body;
  // ---- set by ExtAuthOp::cancel() / ~ExtAuthOp: nobody waits any more
  bool cancelled = false;
  // The transport's own state of the call (its connection), for abort().
  std::shared_ptr<void> io;
};

class ExtAuthTransport {
 public:
  virtual ~ExtAuthTransport() = default;
  // Sends `call` from the calling worker thread; calls done() on that thread
  // once the outputs are set (also on failure), unless call->cancelled was
  // set first. Must not block.
  virtual void start(std::shared_ptr<ExtAuthCall> call, std::function<void()> done) = 0;
  // Stops the I/O of a call nobody waits for any more (best effort).
  virtual void abort(ExtAuthCall& call) { (void)call; }
  // Once per filter, on the control thread: the state its calls carry in
  // ExtAuthCall::tls (a TLS client context for config.tls). Null with `why`
  // set when it cannot be made (the filter then fails every call).
  virtual std::shared_ptr<const void> prepare(const snapshot::ExtAuth& config, std::string& why) {
    (void)config;
    (void)why;
    return nullptr;
  }
};

// Allowed decisions: key → the fields to set upstream, until `expires`.
class ExtAuthDecisionCache {
 public:
  using Clock = std::chrono::steady_clock;
  using Headers = std::vector<std::pair<std::string, std::string>>;
  using Names = std::vector<std::string>;
  ExtAuthDecisionCache(std::chrono::milliseconds ttl, size_t max_entries);
  // True (and `out`, `remove` filled) when `key` has a live allowed decision.
  bool find(const std::string& key, Clock::time_point now, Headers& out, Names* remove = nullptr) const;
  void put(std::string key, Headers headers, Clock::time_point now, Names remove = {});
  size_t size() const;

 private:
  struct Entry {
    Clock::time_point expires;
    Headers headers;
    Names remove;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, Entry> map;
  };
  Shard& shard(std::string_view key) const;
  std::chrono::milliseconds ttl_;
  size_t max_per_shard_;
  static constexpr size_t kShards = 16;
  mutable std::array<Shard, kShards> shards_;
};

class ExtAuthFilter final : public exchange::Filter {
 public:
  // `transport` outlives the filter (the proxy's is process-wide).
  ExtAuthFilter(const snapshot::ExtAuth& config, ExtAuthTransport* transport);
  std::string_view name() const override { return "ext_auth"; }
  uint8_t phases() const override { return exchange::kOnRequest | exchange::kOnUpstreamRequest; }
  exchange::Verdict on_request(exchange::Exchange& ex) const override;
  exchange::Verdict on_resume(exchange::Exchange& ex) const override;
  void on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const override;

  // ---- the pure steps (unit-tested)
  // The call's request: method, path, Host, the allow-listed client fields,
  // X-Original-URL / X-Original-Method / X-Forwarded-*.
  std::string build_request(const exchange::Exchange& ex) const;
  // The decision-cache key: the allow-listed fields' values (empty: no cache).
  std::string cache_key(const exchange::Exchange& ex) const;
  // The client's URL as ingress-nginx's $scheme://$host$request_uri.
  static std::string original_url(const exchange::Exchange& ex);
  // Applies a finished call to the exchange: allowed (upstream fields in
  // ex.ext_auth_headers), denied (ex.reply) or error (fail open / closed).
  // `key`: the decision-cache key of the request (an allowed decision is
  // remembered under it when the cache is on).
  exchange::Verdict decide(exchange::Exchange& ex, const ExtAuthCall& call, const std::string& key) const;
  // gRPC: the framed CheckRequest of the request (AttributeContext: source,
  // destination, request.http with every field and the body when read).
  std::string build_check_request(const exchange::Exchange& ex) const;
  // Fills `call` for the exchange (HTTP request or gRPC CheckRequest).
  void prepare_call(const exchange::Exchange& ex, ExtAuthCall& call) const;
  const ExtAuthDecisionCache* cache() const { return cache_.get(); }

 private:
  exchange::Verdict fail(exchange::Exchange& ex, std::string_view why) const;
  exchange::Verdict decide_grpc(exchange::Exchange& ex, const ExtAuthCall& call, const std::string& key) const;
  const snapshot::ExtAuth& config_;
  ExtAuthTransport* transport_;
  std::shared_ptr<const void> tls_;  // the transport's TLS state (config_.tls)
  std::string tls_error_;            // why there is none
  std::unique_ptr<ExtAuthDecisionCache> cache_;
};

}  // namespace gantry::filters
