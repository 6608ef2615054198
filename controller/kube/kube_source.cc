// The Kubernetes source; see kube_source.h.
#include "controller/kube/kube_source.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>
#include <set>

#include <spdlog/spdlog.h>

#include "controller/core/decode.h"
#include "controller/core/ingress_nginx.h"
#include "controller/kube/backoff.h"
#include "controller/kube/status_patch.h"
#include "controller/kube/watch_protocol.h"

namespace gantry::controller::kube {

namespace {

enum Kind : size_t {
  kRoutes,
  kServices,
  kSlices,
  kSecrets,
  kIngresses,
  kIngressClasses,
  kOwners,
  // Gateway API (--gateway-api): informers only when enabled.
  kGatewayClasses,
  kNamespaces,
  kGateways,
  kHttpRoutes,
  kReferenceGrants,
  kGrpcRoutes,
  kListenerSets,
  kConfigMaps,
  kBackendTlsPolicies,
  kKinds
};
constexpr size_t kFirstGatewayApiKind = kGatewayClasses;
// Informers of single Secrets (by name) get indexes from here on; informers of
// Secrets selected by labels (apiKey consumers) from kSelectedSecretBase on.
constexpr size_t kNamedSecretBase = 1000;
constexpr size_t kSelectedSecretBase = size_t{1} << 40;

constexpr const char* kOwnersConfigMap = "gantry-hostname-owners";
constexpr const char* kTlsType = "kubernetes.io/tls";

const Resource kResources[kKinds] = {
    {"GatewayRoute", "gantry.dev/v1alpha1", "gatewayroutes", true, ""},
    {"Service", "v1", "services", true, ""},
    {"EndpointSlice", "discovery.k8s.io/v1", "endpointslices", true, ""},
    {"Secret", "v1", "secrets", true, std::string("type=") + kTlsType},
    {"Ingress", "networking.k8s.io/v1", "ingresses", true, ""},
    {"IngressClass", "networking.k8s.io/v1", "ingressclasses", false, ""},
    {"ConfigMap", "v1", "configmaps", true, std::string("metadata.name=") + kOwnersConfigMap},
    {"GatewayClass", "gateway.networking.k8s.io/v1", "gatewayclasses", false, ""},
    {"Namespace", "v1", "namespaces", false, ""},
    {"Gateway", "gateway.networking.k8s.io/v1", "gateways", true, ""},
    {"HTTPRoute", "gateway.networking.k8s.io/v1", "httproutes", true, ""},
    {"ReferenceGrant", "gateway.networking.k8s.io/v1", "referencegrants", true, ""},
    {"GRPCRoute", "gateway.networking.k8s.io/v1", "grpcroutes", true, ""},
    // Optional: Gateway API CRDs before v1.5 have no ListenerSet (absent = none).
    {"ListenerSet", "gateway.networking.k8s.io/v1", "listenersets", true, "", "", true},
    // BackendTLSPolicies' caCertificateRefs (only their ca.crt is kept).
    {"ConfigMap", "v1", "configmaps", true, ""},
    {"BackendTLSPolicy", "gateway.networking.k8s.io/v1", "backendtlspolicies", true, ""},
};

// Kinds whose status gantry writes as a whole object (gateway_api.h).
bool has_object_status(size_t r) {
  return r == kGatewayClasses || r == kGateways || r == kHttpRoutes || r == kGrpcRoutes ||
         r == kListenerSets || r == kBackendTlsPolicies;
}

bool is_secret_event(size_t resource) { return resource == kSecrets || resource >= kNamedSecretBase; }

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
    if (i >= kFirstGatewayApiKind && !opts_.gateway_api) break;
    informers_.push_back(std::make_unique<Informer>(
        *api_, kResources[i], i, i == kOwners ? opts_.owners_namespace : opts_.namespace_,
        [this](InformerEvent e) { push(std::move(e)); }, (uint64_t{rd()} << 32) ^ rd()));
  }
  if (opts_.leader_elect) elector_ = std::make_unique<LeaderElector>(*api_, opts_.leader);
}

KubeSource::~KubeSource() {
  shutdown();
  if (writer_.joinable()) writer_.join();
  informers_.clear();
  named_.clear();
  selected_.clear();
  retired_.clear();
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
  for (auto& [index, n] : named_) n.informer->stop();
  for (auto& [index, n] : selected_) n.informer->stop();
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
  // Not the watches by name: a route whose Secret is still being listed is
  // translated at once (ResolvedRefs=False, JWT failing closed) and again
  // when it arrives; readiness never waits for a tenant's Secret.
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
  o.hostname_ownership = opts_.hostname_ownership;
  o.hostname_owners = owners_;
  o.gateway_api.controller_name = opts_.gateway_controller;
  o.gateway_api.addresses = opts_.gateway_addresses;
  o.gateway_api.static_addresses = opts_.gateway_static_addresses;
  o.gateway_api.bind_address = opts_.gateway_bind_address;
  o.gateway_api.proxy_http_port = opts_.gateway_proxy_http_port;
  o.gateway_api.proxy_https_port = opts_.gateway_proxy_https_port;
  o.gateway_api.proxy_service = opts_.gateway_proxy_service;
  o.gateway_api.service_type = opts_.gateway_service_type;
  o.gateway_api.service_port_min = opts_.gateway_port_min;
  o.gateway_api.service_port_max = opts_.gateway_port_max;
  for (const auto& [name, ic] : ingress_classes_)
    if (ic.is_default && ic.controller == opts_.ingress_controller) o.claim_classless_ingresses = true;
  o.ingress_nginx = opts_.ingress_nginx;
  o.rate_limit_store = opts_.rate_limit_store;
  if (opts_.ingress_nginx.enabled && opts_.ingress_nginx_all_classes)
    for (const auto& [name, ic] : ingress_classes_)
      if (ic.controller == kNginxIngressController) o.ingress_nginx.classes.insert(name);
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
  s.secrets_held = all_secrets_.size();
  s.secrets_known_by_name = tls_known_.size();
  s.secret_watches = named_.size() + selected_.size();
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
  // Routes first, so that a Secret arriving with the route that references it
  // is held at once; then the Secrets, judged against the new references.
  for (auto& e : batch)
    if (!is_secret_event(e.resource)) changed |= apply(e);
  refs_ = secret_refs();
  selectors_ = secret_selectors();
  for (auto& e : batch)
    if (is_secret_event(e.resource)) changed |= apply(e);
  changed |= refresh_secrets();
  sync_named_secrets();
  sync_selected_secrets();
  TranslateOptions after = translate_options();
  if (after.hostname_owners != before.hostname_owners) changed = true;
  if (after.ingress_nginx != before.ingress_nginx) {
    std::string classes;
    for (const auto& c : after.ingress_nginx.classes) classes.append(classes.empty() ? "" : ", ").append(c);
    spdlog::info("ingress-nginx compatibility: serving the Ingress classes {}", classes);
    changed = true;
  }
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
      case kSecrets:
        // The TLS watch relisted: TLS Secrets it did not list are gone (the
        // Secrets held through their own watch by name are not its business).
        std::erase_if(tls_known_, [&](const std::string& k) { return !seen.count(k); });
        for (auto it = all_secrets_.begin(); it != all_secrets_.end();) {
          if (it->second.type == kTlsType && !seen.count(it->first)) {
            it = all_secrets_.erase(it);
            changed = true;
          } else {
            ++it;
          }
        }
        break;
      case kOwners:
        if (e.objects.empty()) changed |= apply_owners(nullptr);
        break;
      case kIngresses:
        prune(cache_.ingresses);
        std::erase_if(ingress_status_, [&](const auto& kv) { return !seen.count(kv.first); });
        break;
      case kIngressClasses: prune(ingress_classes_); break;
      case kGatewayClasses: prune(cache_.gateway_classes); break;
      case kNamespaces: prune(cache_.namespaces); break;
      case kGateways: prune(cache_.gateways); break;
      case kHttpRoutes: prune(cache_.http_routes); break;
      case kReferenceGrants: prune(cache_.reference_grants); break;
      case kGrpcRoutes: prune(cache_.grpc_routes); break;
      case kListenerSets: prune(cache_.listener_sets); break;
      case kConfigMaps: prune(cache_.config_maps); break;
      case kBackendTlsPolicies: prune(cache_.backend_tls_policies); break;
      default:
        if (auto sel = selected_.find(e.resource); sel != selected_.end()) {
          // A selector's watch relisted: its Secrets it did not list are gone
          // (unless a route names one, or another selector still has it).
          const auto& [ns, labels] = sel->second.selector;
          for (auto it = all_secrets_.begin(); it != all_secrets_.end();) {
            const Secret& sec = it->second;
            bool mine = sec.meta.namespace_ == ns &&
                        std::all_of(labels.begin(), labels.end(), [&](const auto& kv) {
                          auto l = sec.meta.labels.find(kv.first);
                          return l != sec.meta.labels.end() && l->second == kv.second;
                        });
            if (mine && !seen.count(it->first) && !refs_.count(it->first)) {
              it = all_secrets_.erase(it);
              changed = true;
            } else {
              ++it;
            }
          }
          break;
        }
        if (auto n = named_.find(e.resource); n != named_.end() && e.objects.empty()) {
          // Listed by name and absent (a TLS one the TLS watch still knows stays).
          auto it = all_secrets_.find(n->second.key);
          if (it != all_secrets_.end() && it->second.type != kTlsType) {
            all_secrets_.erase(it);
            changed = true;
          }
        }
        break;
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
  if (resource == kOwners) {
    if (deleted) return apply_owners(nullptr);
    return apply_owners(&obj);
  }
  bool secret = is_secret_event(resource);
  // Cluster-scoped kinds (GatewayClass, Namespace) are keyed by name alone.
  std::string key = secret || kResources[resource].namespaced ? key_of(obj)
                                                               : str_at(obj, "metadata", "name");
  const std::string& kind = secret ? kResources[kSecrets].kind : kResources[resource].kind;
  if (!secret && has_object_status(resource) && deleted) object_status_.erase(kind + "/" + key);
  if (deleted) {
    decode_failed_.erase(kind + "/" + key);
    // What was written to this object is not what an object created again
    // under its name has: forget it, or an identical status is never written
    // to the new one (an HTTPRoute deleted and created again at once).
    if (!secret && has_object_status(resource)) written_.erase(kind + "/" + key);
    if (resource == kRoutes) {
      route_status_.erase(key);
      written_.erase("gatewayroute/" + key);
    }
    if (resource == kIngresses) {
      ingress_status_.erase(key);
      written_.erase("ingress/" + key);
    }
    if (secret) {
      tls_known_.erase(key);
      return all_secrets_.erase(key) > 0;
    }
    return cache_.erase(kind, key);
  }
  if (seen) seen->insert(key);
  if (secret && !hold_secret(obj, key)) return all_secrets_.erase(key) > 0;
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
  if (!secret && has_object_status(resource)) {
    nlohmann::json status = nlohmann::json();
    if (auto s = obj.find("status"); s != obj.end()) {
      status = std::move(*s);
      obj.erase(s);
    }
    object_status_[kind + "/" + key] = std::move(status);
  }
  if (resource == kConfigMaps) {
    // Only ca.crt is read (a BackendTLSPolicy's or a Gateway frontend's CA
    // bundle): the rest is neither held nor
    // a reason to translate again.
    obj.erase("binaryData");
    if (auto d = obj.find("data"); d != obj.end() && d->is_object())
      for (auto it = d->begin(); it != d->end();)
        it = it.key() == "ca.crt" ? std::next(it) : d->erase(it);
  }
  auto decoded = decode_object(json_to_node(obj));
  if (!decoded.ok()) {
    ++decode_errors_;
    std::string& logged = decode_failed_[kind + "/" + key];
    if (logged != rv) {
      spdlog::warn("{} {}: cannot use it: {}", kind, key, decoded.error().message);
      logged = rv;
    }
    if (secret) return all_secrets_.erase(key) > 0;
    return cache_.erase(kind, key);
  }
  decode_failed_.erase(kind + "/" + key);
  if (secret) {
    Secret& slot = all_secrets_[key];
    Secret& s = std::get<Secret>(*decoded);
    if (slot == s) return false;
    slot = std::move(s);
    return true;  // refresh_secrets() decides whether the cache changed
  }
  return cache_.upsert(std::move(*decoded));
}

// Whether a delivered Secret's data is to be held: only when a route
// references it (and its type is one gantry reads). An unreferenced TLS
// Secret leaves only its key, so that a later reference knows to fetch it.
bool KubeSource::hold_secret(nlohmann::json& obj, const std::string& key) {
  auto t = obj.find("type");  // the API server makes it a string; a wrong type is not held
  std::string type = t == obj.end() ? "Opaque" : t->is_string() ? t->get<std::string>() : "";
  if (type != kTlsType && type != "Opaque") return false;
  bool by_label = false;
  if (auto m = obj.find("metadata"); m != obj.end() && m->is_object() && !selectors_.empty()) {
    std::map<std::string, std::string> labels;
    if (auto l = m->find("labels"); l != m->end() && l->is_object())
      for (auto it = l->begin(); it != l->end(); ++it)
        if (it.value().is_string()) labels[it.key()] = it.value().get<std::string>();
    by_label = type == "Opaque" && selected(key.substr(0, key.find('/')), labels);
  }
  if (refs_.count(key) || by_label) {
    tls_known_.erase(key);
    return true;
  }
  if (type == kTlsType) tls_known_.insert(key);
  obj.erase("data");  // dropped before anything decodes or copies it
  obj.erase("stringData");
  return false;
}

// Referenced Secrets gantry does not hold get a watch by name: Opaque ones
// (the TLS watch never lists them) and TLS ones known by key only. A watch
// whose Secret is no longer referenced, or now held from the TLS watch, ends.
void KubeSource::sync_named_secrets() {
  std::set<std::string> want;
  for (const auto& k : refs_) {
    auto held = all_secrets_.find(k);
    bool tls_held = held != all_secrets_.end() && held->second.type == kTlsType;
    if (tls_known_.count(k) || !tls_held) want.insert(k);
  }
  // A TLS Secret that does not exist yet: the TLS watch will deliver it, but a
  // watch by name costs little and also finds an Opaque one of that name.
  std::set<std::string> have;
  for (auto it = named_.begin(); it != named_.end();) {
    if (!want.count(it->second.key)) {
      it->second.informer->stop();
      retired_.push_back(std::move(it->second.informer));
      it = named_.erase(it);
    } else {
      have.insert(it->second.key);
      ++it;
    }
  }
  std::erase_if(retired_, [](const std::unique_ptr<Informer>& i) { return i->done(); });
  for (const auto& k : want) {
    if (have.count(k)) continue;
    auto slash = k.find('/');
    Resource r = kResources[kSecrets];
    r.field_selector = "metadata.name=" + k.substr(slash + 1);
    size_t index = kNamedSecretBase + next_named_++;
    auto inf = std::make_unique<Informer>(*api_, r, index, k.substr(0, slash),
                                          [this](InformerEvent e) { push(std::move(e)); },
                                          std::random_device{}());
    inf->start();
    spdlog::debug("watching secret {} by name", k);
    named_[index] = NamedSecret{k, std::move(inf)};
  }
}

// The operator's hostname assignments; nullptr: the ConfigMap is absent.
bool KubeSource::apply_owners(const nlohmann::json* obj) {
  HostnameOwners next;
  next.source = std::string("ConfigMap ") + opts_.owners_namespace + "/" + kOwnersConfigMap;
  if (obj) {
    std::string text;
    if (auto d = obj->find("data"); d != obj->end() && d->is_object())
      if (auto o = d->find("owners"); o != d->end() && o->is_string()) text = o->get<std::string>();
    auto parsed = parse_hostname_owners(text);
    if (!parsed.ok()) {
      spdlog::warn("{}: key owners: {}; hostnames are owned by age alone until it is fixed",
                   next.source, parsed.error().message);
    } else {
      next.allowed = std::move(parsed->allowed);
    }
  }
  if (next == owners_) return false;
  spdlog::info("{}: {} hostname assignment{}", next.source, next.allowed.size(),
               next.allowed.size() == 1 ? "" : "s");
  owners_ = std::move(next);
  return true;
}

std::set<KubeSource::Selector> KubeSource::secret_selectors() const {
  std::set<Selector> out;
  for (const auto& [key, r] : cache_.routes)
    for (const auto& rule : r.rules)
      if (rule.filters.api_key && !rule.filters.api_key->match_labels.empty())
        out.insert({r.meta.namespace_, rule.filters.api_key->match_labels});
  return out;
}

bool KubeSource::selected(const std::string& ns, const std::map<std::string, std::string>& labels) const {
  for (const auto& [sns, want] : selectors_) {
    if (sns != ns) continue;
    bool all = true;
    for (const auto& [k, v] : want) {
      auto l = labels.find(k);
      all = all && l != labels.end() && l->second == v;
    }
    if (all) return true;
  }
  return false;
}

// One watch per selector; a watch whose selector no route uses any more ends.
void KubeSource::sync_selected_secrets() {
  std::set<Selector> have;
  for (auto it = selected_.begin(); it != selected_.end();) {
    if (!selectors_.count(it->second.selector)) {
      it->second.informer->stop();
      retired_.push_back(std::move(it->second.informer));
      it = selected_.erase(it);
    } else {
      have.insert(it->second.selector);
      ++it;
    }
  }
  for (const auto& sel : selectors_) {
    if (have.count(sel)) continue;
    Resource r = kResources[kSecrets];
    r.field_selector = "type=Opaque";
    for (const auto& [k, v] : sel.second) r.label_selector.append(r.label_selector.empty() ? "" : ",").append(k + "=" + v);
    size_t index = kSelectedSecretBase + next_selected_++;
    auto inf = std::make_unique<Informer>(*api_, r, index, sel.first,
                                          [this](InformerEvent e) { push(std::move(e)); },
                                          std::random_device{}());
    inf->start();
    spdlog::info("watching Secrets of namespace {} labelled {}", sel.first, r.label_selector);
    selected_[index] = SelectedSecrets{sel, std::move(inf)};
  }
}

std::set<std::string> KubeSource::secret_refs() const {
  std::set<std::string> refs;
  for (const auto& [key, r] : cache_.routes) {
    const std::string& ns = r.meta.namespace_;
    if (r.tls_secret_name) refs.insert(ns + "/" + *r.tls_secret_name);
    for (const auto& rule : r.rules) {
      if (rule.filters.basic_auth) refs.insert(ns + "/" + rule.filters.basic_auth->secret_ref.name);
      if (rule.filters.ext_auth && rule.filters.ext_auth->ca_secret_ref)
        refs.insert(ns + "/" + rule.filters.ext_auth->ca_secret_ref->name);
      // protocol h2's trust anchors, on backendRefs, the requestMirror's and the defaultBackend's
      auto ca_of = [&](const GrBackendRef& b) {
        if (b.tls_ca_secret_ref) refs.insert(ns + "/" + b.tls_ca_secret_ref->name);
      };
      for (const auto& b : rule.backend_refs) ca_of(b);
      for (const auto& m : rule.filters.request_mirrors) ca_of(m.backend_ref);
      if (rule.filters.default_backend) ca_of(rule.filters.default_backend->backend_ref);
      if (!rule.filters.jwt) continue;
      if (rule.filters.jwt->hmac_secret_ref)
        refs.insert(ns + "/" + rule.filters.jwt->hmac_secret_ref->name);
      if (rule.filters.jwt->jwks_secret_ref)
        refs.insert(ns + "/" + rule.filters.jwt->jwks_secret_ref->name);
    }
  }
  for (const auto& [key, gw] : cache_.gateways) {  // HTTPS listeners' certificateRefs
    for (const auto& l : gw.listeners)
      for (const auto& c : l.certificate_refs)
        refs.insert(c.namespace_.value_or(gw.meta.namespace_) + "/" + c.name);
    if (const auto& c = gw.backend_client_certificate)  // spec.tls.backend
      refs.insert(c->namespace_.value_or(gw.meta.namespace_) + "/" + c->name);
  }
  TranslateOptions to = translate_options();
  for (const auto& [key, ing] : cache_.ingresses) {
    if (!ingress_is_ours(ing, to)) continue;
    for (const auto& t : ing.tls)
      if (!t.secret_name.empty()) refs.insert(ing.meta.namespace_ + "/" + t.secret_name);
    if (!ingress_is_nginx(ing, to)) continue;
    // ingress-nginx's Secrets, in the Ingress's own namespace only: auth-secret (auth-type: basic).
    NginxParse p = parse_nginx_annotations(ing.meta.annotations);
    const auto& b = p.config.basic_auth;
    if (b && (b->secret_namespace.empty() || b->secret_namespace == ing.meta.namespace_))
      refs.insert(ing.meta.namespace_ + "/" + b->secret);
    // proxy-ssl-secret (backend-protocol HTTPS / GRPCS), likewise.
    const auto& ps = p.config.proxy_ssl;
    if (ps && ps->secret_namespace == ing.meta.namespace_) refs.insert(ing.meta.namespace_ + "/" + ps->secret);
    // auth-tls-secret (ca.crt, ca.crl), likewise.
    const auto& at = p.config.auth_tls;
    if (at && (at->secret_namespace.empty() || at->secret_namespace == ing.meta.namespace_))
      refs.insert(ing.meta.namespace_ + "/" + at->secret);
  }
  return refs;
}

bool KubeSource::refresh_secrets() {
  // A Secret no longer referenced nor selected: its data goes now.
  for (auto it = all_secrets_.begin(); it != all_secrets_.end();) {
    if (refs_.count(it->first) ||
        (it->second.type == "Opaque" && selected(it->second.meta.namespace_, it->second.meta.labels))) {
      ++it;
      continue;
    }
    if (it->second.type == kTlsType) tls_known_.insert(it->first);
    it = all_secrets_.erase(it);
  }
  std::map<std::string, Secret> wanted = all_secrets_;
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
      // An ingress-nginx Ingress: only when told to, or the two controllers
      // would overwrite each other's address while both run.
      if (s.find("IngressNginxAnnotations") != nullptr && !opts_.ingress_nginx_write_status) continue;
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

void KubeSource::sync_object_statuses(const std::vector<ObjectStatus>& statuses) {
  if (!may_write_status()) return;
  std::string now = format_rfc3339(static_cast<int64_t>(std::time(nullptr)));
  for (const auto& s : statuses) {
    std::string key = s.kind + "/" + s.key();
    auto obs = object_status_.find(key);
    if (obs == object_status_.end()) continue;  // not seen by the informer (yet)
    auto upd = object_status_update(s, opts_.gateway_controller, obs->second, now);
    if (!upd) {
      written_.erase(key);
      continue;
    }
    std::string fp = fingerprint_deep(*upd);
    if (written_[key] == fp) continue;
    written_[key] = fp;
    size_t r = s.kind == "GatewayClass" ? kGatewayClasses
               : s.kind == "Gateway"    ? kGateways
               : s.kind == "GRPCRoute"  ? kGrpcRoutes
               : s.kind == "ListenerSet" ? kListenerSets
               : s.kind == "BackendTLSPolicy" ? kBackendTlsPolicies
                                        : kHttpRoutes;
    queue_write(key, Write{s.kind + " " + s.key(),
                           kResources[r].object_path(s.namespace_, s.name) + "/status",
                           nlohmann::json{{"status", *upd}}.dump()});
  }
}

void KubeSource::sync_infrastructure(const std::vector<nlohmann::json>& objects,
                                     const std::vector<ObjectKey>& stale) {
  if (!opts_.gateway_api || !may_write_status()) return;
  auto path = [](const std::string& kind, const std::string& ns, const std::string& name) {
    return kind == "Service" ? "/api/v1/namespaces/" + ns + "/services/" + name
                             : "/apis/discovery.k8s.io/v1/namespaces/" + ns + "/endpointslices/" + name;
  };
  const auto now = std::chrono::steady_clock::now();
  for (const auto& o : objects) {
    const std::string kind = o["kind"].get<std::string>();
    const std::string ns = o["metadata"]["namespace"].get<std::string>();
    const std::string name = o["metadata"]["name"].get<std::string>();
    const std::string key = "infra/" + kind + "/" + ns + "/" + name;
    std::string body = o.dump();
    bool seen = kind == "Service" ? cache_.services.count(ns + "/" + name) != 0
                                  : cache_.endpoint_slices.count(ns + "/" + name) != 0;
    auto w = written_.find(key);
    if (w != written_.end() && w->second == body &&
        (seen || now - applied_at_[key] < std::chrono::seconds(10)))
      continue;
    written_[key] = body;
    applied_at_[key] = now;
    queue_write(key, Write{kind + " " + ns + "/" + name,
                           path(kind, ns, name) + "?fieldManager=gantry-controller&force=true",
                           std::move(body), "PATCH", "application/apply-patch+yaml"});
  }
  for (const auto& k : stale) {
    const std::string key = "infra/" + k.kind + "/" + k.namespace_ + "/" + k.name;
    auto at = applied_at_.find("delete/" + key);
    if (at != applied_at_.end() && now - at->second < std::chrono::seconds(10)) continue;
    applied_at_["delete/" + key] = now;
    written_.erase(key);
    spdlog::info("deleting {} {}/{}: no Gateway of gantry's wants it", k.kind, k.namespace_, k.name);
    queue_write(key, Write{k.kind + " " + k.namespace_ + "/" + k.name, path(k.kind, k.namespace_, k.name), "",
                           "DELETE", "application/json"});
  }
}

// One Event per change of a GatewayRoute's verdict (status_patch.h says which).
// Keyed per route in the write queue, so a route flapping faster than the
// write rate limit emits its latest verdict, not a backlog.
void KubeSource::sync_events(const std::vector<RouteStatus>& statuses) {
  const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  std::set<std::string> present;
  for (const auto& s : statuses) {
    // GatewayRoutes, and the Ingresses of ingress-nginx mode (their annotations' verdicts).
    bool ingress = s.kind == "Ingress" && s.find("IngressNginxAnnotations") != nullptr;
    if (s.kind != "GatewayRoute" && !ingress) continue;
    std::string id = s.id();
    std::string uid;
    if (ingress) {
      auto it = cache_.ingresses.find(id);
      if (it == cache_.ingresses.end()) continue;
      uid = it->second.meta.uid;
      id = "ingress/" + id;
    } else {
      auto route = cache_.routes.find(id);
      if (route == cache_.routes.end()) continue;
      uid = route->second.meta.uid;
    }
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
    // Strictly increasing, so a route's events sort in the order they were
    // decided even within one clock tick or across a clock step back.
    last_event_us_ = std::max(now_us, last_event_us_ + 1);
    auto body = event_object(e, s.namespace_, s.name, uid, last_event_us_, instance,
                             ingress ? "Ingress" : "GatewayRoute");
    Write w{std::string(ingress ? "event for " : "event for gatewayroute ") + id,
            "/api/v1/namespaces/" + s.namespace_ + "/events", body.dump()};
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
    const bool infra = key.starts_with("infra/");
    if (ok && infra) {
      ++writes_ok_;
      spdlog::info("{} {}", w.what, w.method == "DELETE" ? "deleted" : "applied");
    } else if (infra && r.ok() && r->status == 404 && w.method == "DELETE") {
      spdlog::debug("{}: already gone", w.what);
    } else if (ok && key.starts_with("event/")) {
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
              std::string(infra                         ? "\"patch\" and \"delete\" on services and endpointslices"
                          : key.starts_with("event/")     ? "\"create\" on events"
                          : key.starts_with("ingress/") ? "\"patch\" on ingresses/status"
                                                        : "\"patch\" on gatewayroutes/status") +
              ": " + status_message(r->body);
      else
        why = "HTTP " + std::to_string(r->status) + ": " + status_message(r->body);
      spdlog::warn("cannot write {}{}: {}", key.starts_with("event/") || infra ? "" : "the status of ", w.what,
                   why);
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
