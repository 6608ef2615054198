// ConfigStore: the one place the proxy's routing state changes.
//
// A snapshot is decoded, validated and compiled on the control thread into an
// immutable Config, then published with one atomic pointer swap. Workers read
// it lock-free: each keeps its own shared_ptr and refreshes it only when the
// published generation moved (a relaxed load of one counter per request), so
// requests never contend on a reference count. A request pins the Config it
// started with. Endpoint deltas replace cluster entries without recompiling
// routes; clusters are looked up by name, so route changes never disturb the
// per-worker connection pools that are keyed by endpoint address.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/control/rule_policies.h"
#include "proxy/router/route_table.h"
#include "proxy/snapshot/model.h"
#include "proxy/tls/tls_contexts.h"
#include "proxy/tls/upstream_tls.h"

namespace gantry::control {

// The endpoints of one cluster at one version. Immutable.
struct ClusterEndpoints {
  std::string name;
  std::vector<snapshot::Endpoint> endpoints;  // ready ones, or the serving fallback
  std::vector<std::string> keys;              // "ip:port" / "[ip]:port" per endpoint
  bool h2c = false;                           // snapshot protocol H2C or H2: HTTP/2 upstream (net/h2_upstream.h)
  snapshot::ClusterProtocol protocol = snapshot::ClusterProtocol::kHttp1;
  // TLS to the endpoints (snapshot `tls`), null for plain TCP. Connections
  // of a TLS cluster are pooled under `pool_suffix` appended to the endpoint
  // key, so they are reused only by the same cluster and SNI.
  std::shared_ptr<const tls::UpstreamTlsContext> tls;
  std::string pool_suffix;
};

// TLS passthrough entries (snapshot `passthrough`) by listener, then SNI.
// The listener is a snapshot Listener::name, or "" for the proxy's own
// --https-listen.
class PassthroughTable {
 public:
  void add(const snapshot::Passthrough& p) { by_listener_[p.listener][p.hostname] = p.cluster; }
  // Whether connections on `listener` need their ClientHello read at all.
  bool on(const std::string& listener) const { return by_listener_.count(listener) != 0; }
  // The cluster of `sni` (lower case) on `listener`: the exact hostname, else
  // the longest wildcard ("*.b.c" before "*.c" for "a.b.c"); null otherwise.
  const std::string* find(const std::string& listener, std::string_view sni) const;
  bool empty() const { return by_listener_.empty(); }

 private:
  std::unordered_map<std::string, std::unordered_map<std::string, std::string>> by_listener_;
};

struct Config {
  uint64_t version = 0;
  // Routes and certificates of the last FULL snapshot; its clusters are
  // superseded by `clusters` once a delta arrived.
  std::shared_ptr<const snapshot::Snapshot> snapshot;
  std::shared_ptr<const router::RouteTable> table;
  std::shared_ptr<const tls::TlsContexts> tls;  // SNI -> certificate
  std::shared_ptr<const PolicySet> policies;    // CORS, rate limits, JWT per rule
  std::unordered_map<std::string, std::shared_ptr<const ClusterEndpoints>> clusters;
  // Snapshot listeners with hostnames: name -> those hostnames ("*.x" too).
  std::unordered_map<std::string, std::unordered_set<std::string>> listener_hosts;
  std::shared_ptr<const PassthroughTable> passthrough;  // null: no passthrough entries

  // The listener name routes list for a request on `listener` for `host`
  // (lower-case): "listener/hostname" for its most specific hostname that
  // matches (exact, then the longest wildcard), else `listener` itself.
  // `scratch` holds a composed name; the result views it or `listener`.
  std::string_view route_listener(std::string_view listener, std::string_view host,
                                  std::string& scratch) const;

  const ClusterEndpoints* cluster(const std::string& name) const {
    auto it = clusters.find(name);
    return it == clusters.end() ? nullptr : it->second.get();
  }
  // The applied state as one snapshot (for /config_dump).
  snapshot::Snapshot effective_snapshot() const;
};

struct ApplyOutcome {
  uint64_t version = 0;
  std::vector<std::string> errors;  // empty: applied
};

class ConfigStore {
 public:
  // Control thread only. Each validates first and keeps the current Config on error.
  ApplyOutcome apply_full(std::string_view json);
  ApplyOutcome apply_full(snapshot::Snapshot snap);
  ApplyOutcome apply_delta(std::string_view json);

  // Called on the applying thread after each Config is published (the
  // server binds and closes the snapshot's listeners). Set before any apply.
  void on_publish(std::function<void(const Config&)> f) { on_publish_ = std::move(f); }

  // Any thread.
  std::shared_ptr<const Config> current() const;
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  uint64_t version() const;

 private:
  void publish(std::shared_ptr<const Config> c);
  mutable std::mutex mu_;  // guards current_ (taken only on publish and on refresh)
  std::shared_ptr<const Config> current_;
  std::atomic<uint64_t> generation_{0};
  std::function<void(const Config&)> on_publish_;
};

// A worker's cached view of the store: refresh() costs one relaxed load unless
// a new Config was published.
class ConfigView {
 public:
  explicit ConfigView(const ConfigStore& store) : store_(store) {}
  const std::shared_ptr<const Config>& get() {
    uint64_t g = store_.generation();
    if (g != seen_) {
      cached_ = store_.current();
      seen_ = g;
    }
    return cached_;
  }

 private:
  const ConfigStore& store_;
  uint64_t seen_ = ~0ull;
  std::shared_ptr<const Config> cached_;
};

std::string endpoint_key(const snapshot::Endpoint& e);

}  // namespace gantry::control
