#include "proxy/control/config_store.h"

#include <algorithm>

#include "proxy/snapshot/codec.h"
#include "proxy/snapshot/validate.h"

namespace gantry::control {

std::string endpoint_key(const snapshot::Endpoint& e) {
  if (e.address.find(':') != std::string::npos) return "[" + e.address + "]:" + std::to_string(e.port);
  return e.address + ":" + std::to_string(e.port);
}

namespace {

std::shared_ptr<const ClusterEndpoints> make_cluster(const snapshot::Cluster& c) {
  auto out = std::make_shared<ClusterEndpoints>();
  out->name = c.name;
  out->endpoints = c.endpoints;
  out->h2c = c.protocol == snapshot::ClusterProtocol::kH2c || c.protocol == snapshot::ClusterProtocol::kH2;
  out->protocol = c.protocol;
  out->keys.reserve(c.endpoints.size());
  for (const auto& e : c.endpoints) out->keys.push_back(endpoint_key(e));
  return out;
}

}  // namespace

snapshot::Snapshot Config::effective_snapshot() const {
  snapshot::Snapshot s;
  if (snapshot) {
    s.routes = snapshot->routes;
    s.certificates = snapshot->certificates;
    s.rate_limit_store = snapshot->rate_limit_store;
    s.passthrough = snapshot->passthrough;
  }
  s.version = version;
  for (const auto& [name, c] : clusters) {
    s.clusters.push_back({c->name, c->endpoints, c->protocol, std::nullopt});
    if (c->tls) s.clusters.back().tls = c->tls->spec();
  }
  std::sort(s.clusters.begin(), s.clusters.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return s;
}

ApplyOutcome ConfigStore::apply_full(std::string_view json) {
  auto snap = snapshot::decode_snapshot(json);
  if (!snap.ok()) return {0, {"decode: " + snap.error().message}};
  return apply_full(std::move(snap).value());
}

ApplyOutcome ConfigStore::apply_full(snapshot::Snapshot snap) {
  ApplyOutcome out{snap.version, snapshot::validate(snap)};
  if (!out.errors.empty()) return out;
  if (auto cur = current(); cur && snap.version <= cur->version) {
    out.errors.push_back("snapshot version " + std::to_string(snap.version) +
                         " is not newer than the applied version " + std::to_string(cur->version));
    return out;
  }
  auto shared = std::make_shared<const snapshot::Snapshot>(std::move(snap));
  auto table = router::RouteTable::create(shared);
  if (!table.ok()) {
    out.errors.push_back(table.error().message);
    return out;
  }
  auto tls = tls::TlsContexts::create(shared->certificates, shared->listeners, shared->host_client_validation);
  if (!tls.ok()) {
    out.errors.push_back(tls.error().message);
    return out;
  }
  auto previous = current();
  auto policies = PolicySet::create(**table, previous ? previous->policies.get() : nullptr,
                                    shared->rate_limit_store);
  if (!policies.ok()) {
    out.errors.push_back(policies.error().message);
    return out;
  }
  auto cfg = std::make_shared<Config>();
  cfg->version = shared->version;
  cfg->snapshot = shared;
  cfg->table = std::move(table).value();
  cfg->tls = std::move(tls).value();
  cfg->policies = std::move(policies).value();
  for (const auto& c : shared->clusters) {
    auto compiled = std::const_pointer_cast<ClusterEndpoints>(make_cluster(c));
    if (c.tls) {
      auto ctx = tls::UpstreamTlsContext::create(c.name, *c.tls, compiled->h2c);
      if (!ctx.ok()) {
        out.errors.push_back(ctx.error().message);
        return out;
      }
      compiled->tls = std::move(ctx).value();
      // "|tls|<cluster>": one pool per cluster (its SNI and trust) per endpoint.
      compiled->pool_suffix = std::string("|tls|").append(c.name);
    }
    cfg->clusters.emplace(c.name, std::move(compiled));
  }
  for (const auto& l : shared->listeners)
    if (!l.hostnames.empty())
      cfg->listener_hosts[l.name].insert(l.hostnames.begin(), l.hostnames.end());
  if (!shared->passthrough.empty()) {
    auto pt = std::make_shared<PassthroughTable>();
    for (const auto& p : shared->passthrough) pt->add(p);
    cfg->passthrough = std::move(pt);
  }
  publish(std::move(cfg));
  return out;
}

ApplyOutcome ConfigStore::apply_delta(std::string_view json) {
  auto delta = snapshot::decode_delta(json);
  if (!delta.ok()) return {0, {"decode: " + delta.error().message}};
  ApplyOutcome out{delta->version, {}};
  auto cur = current();
  if (!cur) {
    out.errors.push_back("endpoint delta before any full snapshot");
    return out;
  }
  // Validate against the clusters the proxy has now. Only the named clusters
  // matter, so the reference snapshot holds just those (no copy of every
  // cluster name: a delta must stay cheap at 100k endpoints).
  snapshot::Snapshot names;
  names.version = cur->version;
  for (const auto& c : delta->clusters)
    if (cur->clusters.count(c.name) != 0) names.clusters.push_back({c.name, {}});
  out.errors = snapshot::validate(*delta, names);
  if (!out.errors.empty()) return out;
  auto cfg = std::make_shared<Config>();
  cfg->version = delta->version;
  cfg->snapshot = cur->snapshot;
  cfg->table = cur->table;
  cfg->tls = cur->tls;
  cfg->policies = cur->policies;
  cfg->listener_hosts = cur->listener_hosts;
  cfg->passthrough = cur->passthrough;
  cfg->clusters = cur->clusters;
  for (const auto& c : delta->clusters) {
    // A delta carries endpoints only: the cluster keeps its protocol.
    auto& slot = cfg->clusters[c.name];
    auto next = std::const_pointer_cast<ClusterEndpoints>(make_cluster(c));
    next->h2c = slot && slot->h2c;
    if (slot) {
      next->protocol = slot->protocol;
      next->tls = slot->tls;
      next->pool_suffix = slot->pool_suffix;
    }
    slot = std::move(next);
  }
  publish(std::move(cfg));
  return out;
}

const std::string* PassthroughTable::find(const std::string& listener, std::string_view sni) const {
  auto l = by_listener_.find(listener);
  if (l == by_listener_.end() || sni.empty()) return nullptr;
  const auto& hosts = l->second;
  std::string key(sni);
  if (auto it = hosts.find(key); it != hosts.end()) return &it->second;
  for (size_t dot = sni.find('.'); dot != std::string_view::npos; dot = sni.find('.', dot + 1)) {
    key.assign("*").append(sni.substr(dot));
    if (auto it = hosts.find(key); it != hosts.end()) return &it->second;
  }
  return nullptr;
}

std::string_view Config::route_listener(std::string_view listener, std::string_view host,
                                        std::string& scratch) const {
  if (listener_hosts.empty() || host.empty()) return listener;
  auto it = listener_hosts.find(std::string(listener));
  if (it == listener_hosts.end()) return listener;
  const auto& hosts = it->second;
  auto compose = [&](std::string_view h) -> std::string_view {
    scratch.assign(listener);
    scratch += '/';
    scratch += h;
    return scratch;
  };
  scratch.assign(host);
  if (hosts.count(scratch) != 0) return compose(host);
  // "*.b.c" then "*.c" for host "a.b.c": the longest wildcard first.
  for (size_t dot = host.find('.'); dot != std::string_view::npos; dot = host.find('.', dot + 1)) {
    scratch.assign("*");
    scratch += host.substr(dot);
    if (hosts.count(scratch) != 0) {
      std::string wildcard = scratch;
      return compose(wildcard);
    }
  }
  return listener;
}

void ConfigStore::publish(std::shared_ptr<const Config> c) {
  {
    std::lock_guard lock(mu_);
    current_ = c;
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
  if (on_publish_) on_publish_(*c);
}

std::shared_ptr<const Config> ConfigStore::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

uint64_t ConfigStore::version() const {
  auto c = current();
  return c ? c->version : 0;
}

}  // namespace gantry::control
