// The Kubernetes source; see kube_source.h.
#include "controller/kube/kube_source.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "controller/core/decode.h"
#include "controller/kube/backoff.h"
#include "controller/kube/status_patch.h"
#include "controller/kube/watch_protocol.h"

namespace gantry::controller::kube {

namespace {

enum Kind : size_t { kRoutes, kServices, kSlices, kSecrets, kIngresses, kIngressClasses, kKinds };

const Resource kResources[kKinds] = {
    {"GatewayRoute", "gantry.dev/v1alpha1", "gatewayroutes", true},
    {"Service", "v1", "services", true},
    {"EndpointSlice", "discovery.k8s.io/v1", "endpointslices", true},
    {"Secret", "v1", "secrets", true},
    {"Ingress", "networking.k8s.io/v1", "ingresses", true},
    {"IngressClass", "networking.k8s.io/v1", "ingressclasses", false},
};

constexpr const char* kDefaultClassAnnotation = "ingressclass.kubernetes.io/is-default-class";

std::string str_at(const nlohmann::json& j, const char* a, const char* b) {
  auto x = j.find(a);
  if (x == j.end() || !x->is_object()) return "";
  auto y = x->find(b);
  return y != x->end() && y->is_string() ? y->get<std::string>() : "";
}

std::string key_of(const nlohmann::json& obj) {
  std::string ns = str_at(obj, "metadata", "namespace");
  return (ns.empty() ? std::string("default") : ns) + "/" + str_at(obj, "metadata", "name");
}

// The status as a write would carry it, minus the times: equal fingerprints,
// equal writes.
std::string fingerprint(const nlohmann::json& status) {
  nlohmann::json s = status;
  if (auto c = s.find("conditions"); c != s.end() && c->is_array())
    for (auto& cond : *c)
      if (cond.is_object()) cond.erase("lastTransitionTime");
  return s.dump();
}

}  // namespace

Result<std::unique_ptr<KubeSource>> KubeSource::create(ClusterAccess access,
                                                       KubeSourceOptions opts) {
  auto api = ApiClient::create(std::move(access));
  if (!api.ok()) return api.error();
  std::unique_ptr<KubeSource> s(new KubeSource(std::move(*api), std::move(opts)));
  s->event_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (s->event_fd_ < 0) return Error{std::string("eventfd: ") + std::strerror(errno)};
  return s;
}

KubeSource::KubeSource(std::unique_ptr<ApiClient> api, KubeSourceOptions opts)
    : api_(std::move(api)), opts_(std::move(opts)) {
  std::random_device rd;
  for (size_t i = 0; i < kKinds; ++i) {
    informers_.push_back(std::make_unique<Informer>(
        *api_, kResources[i], i, opts_.namespace_, [this](InformerEvent e) { push(std::move(e)); },
        (uint64_t{rd()} << 32) ^ rd()));
  }
  if (opts_.leader_elect) elector_ = std::make_unique<LeaderElector>(*api_, opts_.leader);
}

KubeSource::~KubeSource() {
  shutdown();
  if (writer_.joinable()) writer_.join();
  informers_.clear();
  elector_.reset();
  if (event_fd_ >= 0) ::close(event_fd_);
}

void KubeSource::start() {
  for (auto& i : informers_) i->start();
  if (elector_) elector_->start();
  writer_ = std::thread([this] { writer_loop(); });
}

void KubeSource::shutdown() {
  {
    std::lock_guard<std::mutex> lock(w_mu_);
    if (w_stop_) return;
    w_stop_ = true;
  }
  w_cv_.notify_all();
  for (auto& i : informers_) i->stop();
  if (elector_) elector_->release();
  api_->shutdown();
}

void KubeSource::push(InformerEvent e) {
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    queue_.push_back(std::move(e));
  }
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof(one));
}

bool KubeSource::synced() const {
  for (const auto& i : informers_)
    if (!i->synced()) return false;
  return true;
}

std::string KubeSource::not_synced() const {
  std::string out;
  for (const auto& i : informers_) {
    if (i->synced()) continue;
    if (!out.empty()) out += ", ";
    out += i->resource().plural;
  }
  return out;
}

bool KubeSource::may_write_status() const { return !elector_ || elector_->leading(); }

TranslateOptions KubeSource::translate_options() const {
  TranslateOptions o;
  o.ingress_class = opts_.ingress_class;
  for (const auto& [name, ic] : ingress_classes_)
    if (ic.is_default && ic.controller == opts_.ingress_controller) o.claim_classless_ingresses = true;
  return o;
}

KubeSourceStats KubeSource::stats() const {
  KubeSourceStats s;
  s.events = events_;
  s.decode_errors = decode_errors_;
  for (const auto& i : informers_) {
    s.relists += i->relists();
    s.watch_restarts += i->watch_restarts();
  }
  s.status_writes = writes_ok_;
  s.status_write_errors = writes_failed_;
  s.leading = may_write_status();
  s.synced = synced();
  return s;
}

bool KubeSource::drain() {
  uint64_t count;
  while (::read(event_fd_, &count, sizeof(count)) > 0) {
  }
  std::deque<InformerEvent> batch;
  std::vector<std::string> failed;
  {
    std::lock_guard<std::mutex> lock(q_mu_);
    batch.swap(queue_);
    failed.swap(failed_writes_);
  }
  for (const auto& k : failed) written_.erase(k);
  TranslateOptions before = translate_options();
  bool changed = false;
  bool refs_may_change = false;
  for (auto& e : batch) {
    if (e.resource == kRoutes || e.resource == kIngresses || e.resource == kSecrets)
      refs_may_change = true;
    changed |= apply(e);
  }
  if (refs_may_change) changed |= refresh_secrets();
  TranslateOptions after = translate_options();
  if (after.claim_classless_ingresses != before.claim_classless_ingresses) {
    spdlog::info("Ingresses without a class are {} (IngressClass with {}=true and controller {})",
                 after.claim_classless_ingresses ? "now served" : "no longer served",
                 kDefaultClassAnnotation, opts_.ingress_controller);
    changed = true;
  }
  return changed;
}

bool KubeSource::apply(InformerEvent& e) {
  bool changed = false;
  if (e.type == InformerEvent::Type::kReplace) {
    std::set<std::string> seen;
    for (auto& obj : e.objects) changed |= apply_object(e.resource, obj, false, &seen);
    // Everything not in the list is gone.
    auto prune = [&](auto& table) {
      for (auto it = table.begin(); it != table.end();) {
        if (!seen.count(it->first)) {
          it = table.erase(it);
          changed = true;
        } else {
          ++it;
        }
      }
    };
    switch (e.resource) {
      case kRoutes:
        prune(cache_.routes);
        std::erase_if(route_status_, [&](const auto& kv) { return !seen.count(kv.first); });
        break;
      case kServices: prune(cache_.services); break;
      case kSlices: prune(cache_.endpoint_slices); break;
      case kSecrets: prune(all_secrets_); break;
      case kIngresses:
        prune(cache_.ingresses);
        std::erase_if(ingress_status_, [&](const auto& kv) { return !seen.count(kv.first); });
        break;
      case kIngressClasses: prune(ingress_classes_); break;
      default: break;
    }
    return changed;
  }
  for (auto& obj : e.objects)
    changed |= apply_object(e.resource, obj, e.type == InformerEvent::Type::kDelete, nullptr);
  return changed;
}

bool KubeSource::apply_object(size_t resource, nlohmann::json& obj, bool deleted,
                              std::set<std::string>* seen) {
  ++events_;
  if (resource == kIngressClasses) {
    std::string name = str_at(obj, "metadata", "name");
    if (deleted) return ingress_classes_.erase(name) > 0;
    if (seen) seen->insert(name);
    IngressClassInfo info;
    info.controller = str_at(obj, "spec", "controller");
    if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) {
      if (auto a = m->find("annotations"); a != m->end() && a->is_object())
        info.is_default = a->value(kDefaultClassAnnotation, std::string()) == "true";
    }
    ingress_classes_[name] = info;
    return false;  // translate_options() is compared by drain()
  }
  std::string key = key_of(obj);
  const std::string& kind = kResources[resource].kind;
  if (deleted) {
    decode_failed_.erase(kind + "/" + key);
    if (resource == kRoutes) route_status_.erase(key);
    if (resource == kIngresses) ingress_status_.erase(key);
    if (resource == kSecrets) return all_secrets_.erase(key) > 0;
    return cache_.erase(kind, key);
  }
  if (resource == kSecrets) {
    auto t = obj.find("type");  // the API server makes it a string; a wrong type is not held
    std::string type = t == obj.end() ? "Opaque" : t->is_string() ? t->get<std::string>() : "";
    if (type != "kubernetes.io/tls" && type != "Opaque") return false;  // not held (see header)
  }
  if (seen) seen->insert(key);
  std::string rv = str_at(obj, "metadata", "resourceVersion");
  if (auto m = obj.find("metadata"); m != obj.end() && m->is_object()) m->erase("managedFields");
  if (resource == kRoutes || resource == kIngresses) {
    nlohmann::json status = nlohmann::json();
    if (auto s = obj.find("status"); s != obj.end()) {
      status = std::move(*s);
      obj.erase(s);
    }
    (resource == kRoutes ? route_status_ : ingress_status_)[key] = std::move(status);
  }
  auto decoded = decode_object(json_to_node(obj));
  if (!decoded.ok()) {
    ++decode_errors_;
    std::string& logged = decode_failed_[kind + "/" + key];
    if (logged != rv) {
      spdlog::warn("{} {}: cannot use it: {}", kind, key, decoded.error().message);
      logged = rv;
    }
    if (resource == kSecrets) return all_secrets_.erase(key) > 0;
    return cache_.erase(kind, key);
  }
  decode_failed_.erase(kind + "/" + key);
  if (resource == kSecrets) {
    Secret& slot = all_secrets_[key];
    Secret& s = std::get<Secret>(*decoded);
    if (slot == s) return false;
    slot = std::move(s);
    return true;  // refresh_secrets() decides whether the cache changed
  }
  return cache_.upsert(std::move(*decoded));
}

bool KubeSource::refresh_secrets() {
  std::set<std::string> refs;
  for (const auto& [key, r] : cache_.routes) {
    const std::string& ns = r.meta.namespace_;
    if (r.tls_secret_name) refs.insert(ns + "/" + *r.tls_secret_name);
    for (const auto& rule : r.rules) {
      if (!rule.filters.jwt) continue;
      if (rule.filters.jwt->hmac_secret_ref)
        refs.insert(ns + "/" + rule.filters.jwt->hmac_secret_ref->name);
      if (rule.filters.jwt->jwks_secret_ref)
        refs.insert(ns + "/" + rule.filters.jwt->jwks_secret_ref->name);
    }
  }
  TranslateOptions to = translate_options();
  for (const auto& [key, ing] : cache_.ingresses) {
    if (!ingress_is_ours(ing, to)) continue;
    for (const auto& t : ing.tls)
      if (!t.secret_name.empty()) refs.insert(ing.meta.namespace_ + "/" + t.secret_name);
  }
  std::map<std::string, Secret> wanted;
  for (const auto& k : refs)
    if (auto it = all_secrets_.find(k); it != all_secrets_.end()) wanted.emplace(k, it->second);
  if (wanted == cache_.secrets) return false;
  cache_.secrets = std::move(wanted);
  return true;
}

void KubeSource::sync_statuses(const std::vector<RouteStatus>& statuses) {
  if (!may_write_status()) {
    written_.clear();
    evented_.clear();
    return;
  }
  sync_events(statuses);
  std::string now = format_rfc3339(static_cast<int64_t>(std::time(nullptr)));
  for (const auto& s : statuses) {
    std::string id = s.id();
    if (s.kind == "GatewayRoute") {
      auto obs = route_status_.find(id);
      if (obs == route_status_.end()) continue;  // not seen by the informer (yet)
      std::string key = "gatewayroute/" + id;
      auto upd = route_status_update(s, obs->second, now);
      if (!upd) {
        written_.erase(key);
        continue;
      }
      std::string fp = fingerprint(*upd);
      if (written_[key] == fp) continue;  // written; its echo has not come back yet
      written_[key] = fp;
      queue_write(key, Write{"gatewayroute " + id,
                             kResources[kRoutes].object_path(s.namespace_, s.name) + "/status",
                             nlohmann::json{{"status", *upd}}.dump()});
    } else if (s.kind == "Ingress" && !opts_.ingress_status_address.empty()) {
      auto obs = ingress_status_.find(id);
      if (obs == ingress_status_.end()) continue;
      std::string key = "ingress/" + id;
      auto upd = ingress_status_update(opts_.ingress_status_address, obs->second);
      if (!upd) {
        written_.erase(key);
        continue;
      }
      std::string fp = upd->dump();
      if (written_[key] == fp) continue;
      written_[key] = fp;
      queue_write(key, Write{"ingress " + id,
                             kResources[kIngresses].object_path(s.namespace_, s.name) + "/status",
                             nlohmann::json{{"status", *upd}}.dump()});
    }
  }
}

// One Event per change of a GatewayRoute's verdict (status_patch.h says which).
// Keyed per route in the write queue, so a route flapping faster than the
// write rate limit emits its latest verdict, not a backlog.
void KubeSource::sync_events(const std::vector<RouteStatus>& statuses) {
  std::string now = format_rfc3339(static_cast<int64_t>(std::time(nullptr)));
  std::set<std::string> present;
  for (const auto& s : statuses) {
    if (s.kind != "GatewayRoute") continue;
    std::string id = s.id();
    auto route = cache_.routes.find(id);
    if (route == cache_.routes.end()) continue;
    present.insert(id);
    RouteEvent e = route_event(s);
    auto [last, fresh] = evented_.try_emplace(id, e);
    if (!fresh) {
      if (last->second == e) continue;
      last->second = e;
    } else if (e.type == "Normal") {
      continue;  // a healthy route at start-up is not news
    }
    const std::string& instance = opts_.leader.identity.empty() ? std::string("gantry-controller")
                                                                : opts_.leader.identity;
    auto body = event_object(e, s.namespace_, s.name, route->second.meta.uid, now, instance);
    Write w{"event for gatewayroute " + id, "/api/v1/namespaces/" + s.namespace_ + "/events", body.dump()};
    w.method = "POST";
    w.content_type = "application/json";
    queue_write("event/" + id, std::move(w));
  }
  for (auto it = evented_.begin(); it != evented_.end();)
    it = present.count(it->first) ? std::next(it) : evented_.erase(it);
}

void KubeSource::queue_write(const std::string& key, Write w) {
  {
    std::lock_guard<std::mutex> lock(w_mu_);
    pending_[key] = std::move(w);
  }
  w_cv_.notify_all();
}

void KubeSource::writer_loop() {
  TokenBucket bucket(opts_.write_qps, opts_.write_burst, TokenBucket::Clock::now());
  std::unique_lock<std::mutex> lock(w_mu_);
  while (true) {
    w_cv_.wait(lock, [this] { return w_stop_ || !pending_.empty(); });
    if (w_stop_) return;
    auto wait = bucket.take(TokenBucket::Clock::now());
    if (wait > TokenBucket::Clock::duration::zero()) {
      w_cv_.wait_for(lock, wait, [this] { return w_stop_; });
      if (w_stop_) return;
    }
    auto it = pending_.begin();
    std::string key = it->first;
    Write w = std::move(it->second);
    pending_.erase(it);
    lock.unlock();
    auto r = api_->call(w.method, w.path, w.body, w.content_type);
    bool ok = r.ok() && r->status >= 200 && r->status < 300;
    if (ok && key.starts_with("event/")) {
      spdlog::debug("{} emitted", w.what);  // not a status write: not counted as one
    } else if (ok) {
      ++writes_ok_;
      spdlog::debug("status of {} written", w.what);
      uint64_t one = 1;  // wake the main loop: its metrics show the write
      [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof(one));
    } else if (r.ok() && r->status == 404) {
      spdlog::debug("status of {}: the object is gone", w.what);
    } else {
      ++writes_failed_;
      std::string why;
      if (!r.ok())
        why = r.error().message;
      else if (r->status == 403)
        why = "forbidden (403): grant the controller " +
              std::string(key.starts_with("event/")     ? "\"create\" on events"
                          : key.starts_with("ingress/") ? "\"patch\" on ingresses/status"
                                                        : "\"patch\" on gatewayroutes/status") +
              ": " + status_message(r->body);
      else
        why = "HTTP " + std::to_string(r->status) + ": " + status_message(r->body);
      spdlog::warn("cannot write {}{}: {}", key.starts_with("event/") ? "" : "the status of ", w.what, why);
      {
        std::lock_guard<std::mutex> q(q_mu_);
        failed_writes_.push_back(key);
      }
      uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(event_fd_, &one, sizeof(one));
    }
    lock.lock();
  }
}

}  // namespace gantry::controller::kube
