// The Kubernetes source: informers for every kind gantry uses, feeding the
// controller's Cache, plus status write-back and leader election.
//
// Threads: one informer per kind (list + watch), one status writer, one leader
// elector. Informers push events onto a queue and make fd() readable; the
// main loop calls drain() from its own thread, which decodes the objects with
// the same decoder the standalone source uses (decode_object) and applies
// them to the Cache. Everything else here (cache(), sync_statuses()) is also
// called from the main thread only.
//
// Kinds: gantry.dev/v1alpha1 gatewayroutes, v1 services, discovery.k8s.io/v1
// endpointslices, v1 secrets, networking.k8s.io/v1 ingresses and
// ingressclasses (cluster-scoped). `namespace_` limits the namespaced kinds.
//
// Secrets (docs/security.md): the controller never lists a Secret it does not
// need, and holds the data of referenced Secrets only.
//  - One watch of Secrets of type kubernetes.io/tls (fieldSelector
//    type=kubernetes.io/tls): the data of those a GatewayRoute or gantry
//    Ingress references is held; of the others only the key is remembered.
//  - Each other referenced Secret (JWT keys, normally Opaque) gets its own list
//    + watch by name (fieldSelector metadata.name=NAME in its namespace), as
//    does a TLS Secret that becomes referenced while only its key is known,
//    until the TLS watch delivers it again; the watch ends when the reference
//    goes away.
//  - A Secret that stops being referenced has its data dropped at once.
// So Secrets of other types are never listed, and RBAC needs list and watch
// on Secrets but no get.
//
// Hostname ownership: the ConfigMap gantry-hostname-owners in
// `owners_namespace` (the controller's namespace) is watched by name; its
// `owners` key assigns hostnames to namespaces (hostname_ownership.h). A
// malformed one is logged and ignored (age decides alone) until fixed.
//
// Status: sync_statuses() compares what translate (and the proxy's ACK) say
// with the status the informer last saw and queues a merge-patch of the
// /status subresource only for what differs (status_patch.h); a write whose
// echo has not come back yet is not repeated. Writes are rate-limited (token
// bucket, 20 QPS, burst 30) and happen only while leading (or always without
// --leader-elect).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "controller/core/objects.h"
#include "controller/core/status.h"
#include "controller/core/translate.h"
#include "controller/kube/api_client.h"
#include "controller/kube/informer.h"
#include "controller/kube/status_patch.h"
#include "controller/kube/leader_elector.h"

namespace gantry::controller::kube {

struct KubeSourceOptions {
  std::string namespace_;  // empty: all namespaces
  std::string ingress_class = "gantry";
  std::string ingress_controller = "gantry.dev/ingress-controller";
  std::string ingress_status_address;  // empty: Ingress status is not written
  // ingress-nginx compatibility: the classes served; with all_classes, also
  // every IngressClass whose controller is k8s.io/ingress-nginx. Their status
  // is written only with write_status (two controllers would flap it).
  IngressNginxOptions ingress_nginx;
  bool ingress_nginx_all_classes = false;
  bool ingress_nginx_write_status = false;
  bool leader_elect = false;
  LeaderElectionConfig leader;
  bool hostname_ownership = true;
  std::optional<snapshot::RateLimitStore> rate_limit_store;  // TranslateOptions::rate_limit_store
  std::string owners_namespace = "default";  // of the ConfigMap gantry-hostname-owners
  double write_qps = 20;
  double write_burst = 30;
  // Gateway API (--gateway-api): watch GatewayClasses, Gateways, HTTPRoutes,
  // GRPCRoutes, ReferenceGrants, BackendTLSPolicies, Namespaces and ConfigMaps
  // (their CRDs must be installed).
  bool gateway_api = false;
  std::string gateway_controller = kDefaultGatewayController;
  std::vector<std::string> gateway_addresses;
  std::vector<std::string> gateway_static_addresses;
  std::string gateway_bind_address;  // empty: each Gateway's own address
  uint16_t gateway_proxy_http_port = 80, gateway_proxy_https_port = 443;
  std::string gateway_proxy_service;  // gateway_bind_address "service" (GatewayApiOptions)
  std::string gateway_service_type = "LoadBalancer";
  uint16_t gateway_port_min = 20000, gateway_port_max = 29999;
};

struct KubeSourceStats {
  uint64_t events = 0;           // informer events applied
  uint64_t decode_errors = 0;    // objects the decoder rejected
  uint64_t relists = 0;          // lists after the first (410 Gone, ...)
  uint64_t watch_restarts = 0;   // watches that ended and were resumed
  uint64_t status_writes = 0;    // status PATCHes that succeeded
  uint64_t status_write_errors = 0;
  bool leading = false;
  bool synced = false;
  uint64_t secrets_held = 0;           // referenced Secrets, with data
  uint64_t secrets_known_by_name = 0;  // unreferenced TLS Secrets: key only
  uint64_t secret_watches = 0;         // watches by name
};

class KubeSource {
 public:
  static Result<std::unique_ptr<KubeSource>> create(ClusterAccess access, KubeSourceOptions opts);
  ~KubeSource();

  void start();
  int fd() const { return event_fd_; }
  // Applies what the informers delivered; true when the cache or the translate
  // options changed.
  bool drain();
  const Cache& cache() const { return cache_; }
  TranslateOptions translate_options() const;
  bool synced() const;
  std::string not_synced() const;  // "services, secrets" not listed yet
  bool may_write_status() const;
  // Queues the writes that bring the API server's statuses to `statuses`.
  void sync_statuses(const std::vector<RouteStatus>& statuses);
  // The same for GatewayClasses, Gateways, HTTPRoutes and GRPCRoutes.
  void sync_object_statuses(const std::vector<ObjectStatus>& statuses);
  // --gateway-bind-address service: applies the Services and EndpointSlices
  // of Gateways (server-side apply, field manager gantry-controller) and
  // deletes the stale ones; leader only, a write only when the object
  // changed (or is missing from the informer's view for 10 s).
  void sync_infrastructure(const std::vector<nlohmann::json>& objects, const std::vector<ObjectKey>& stale);
  // Releases the lease (if held) and cancels every request in flight.
  void shutdown();
  KubeSourceStats stats() const;

 private:
  struct Write {
    std::string what;  // "gatewayroute default/shop", for logs
    std::string path;
    std::string body;
    std::string method = "PATCH";  // POST for events
    std::string content_type = "application/merge-patch+json";
  };
  struct IngressClassInfo {
    std::string controller;
    bool is_default = false;
  };

  KubeSource(std::unique_ptr<ApiClient> api, KubeSourceOptions opts);
  void push(InformerEvent e);
  bool apply(InformerEvent& e);
  bool apply_object(size_t resource, nlohmann::json& obj, bool deleted,
                    std::set<std::string>* seen);
  bool refresh_secrets();
  std::set<std::string> secret_refs() const;
  bool hold_secret(nlohmann::json& obj, const std::string& key);
  void sync_named_secrets();
  // apiKey consumers' Secrets: one watch per (namespace, label selector) routes use.
  using Selector = std::pair<std::string, std::map<std::string, std::string>>;  // namespace, matchLabels
  std::set<Selector> secret_selectors() const;
  bool selected(const std::string& ns, const std::map<std::string, std::string>& labels) const;
  void sync_selected_secrets();
  bool apply_owners(const nlohmann::json* obj);
  void writer_loop();
  void queue_write(const std::string& key, Write w);
  void sync_events(const std::vector<RouteStatus>& statuses);

  std::unique_ptr<ApiClient> api_;
  KubeSourceOptions opts_;
  std::vector<std::unique_ptr<Informer>> informers_;
  std::unique_ptr<LeaderElector> elector_;
  int event_fd_ = -1;

  // Informer threads -> main thread.
  std::mutex q_mu_;
  std::deque<InformerEvent> queue_;
  std::vector<std::string> failed_writes_;  // keys whose write failed: retry

  // Main thread state.
  Cache cache_;
  std::map<std::string, Secret> all_secrets_;  // referenced Secrets, with their data
  std::set<std::string> tls_known_;             // unreferenced TLS Secrets: keys only
  std::set<std::string> refs_;                  // Secrets routes reference, "ns/name"
  struct NamedSecret {
    std::string key;
    std::unique_ptr<Informer> informer;
  };
  std::map<size_t, NamedSecret> named_;                 // informer index -> its Secret
  std::set<Selector> selectors_;                        // what apiKey filters select
  struct SelectedSecrets {
    Selector selector;
    std::unique_ptr<Informer> informer;
  };
  std::map<size_t, SelectedSecrets> selected_;          // informer index -> its selector
  size_t next_selected_ = 0;
  std::vector<std::unique_ptr<Informer>> retired_;      // stopped, their threads ending
  size_t next_named_ = 0;
  HostnameOwners owners_;
  std::map<std::string, IngressClassInfo> ingress_classes_;
  std::map<std::string, nlohmann::json> route_status_;    // ns/name -> observed status
  std::map<std::string, nlohmann::json> ingress_status_;  // ns/name -> observed status
  std::map<std::string, nlohmann::json> object_status_;   // "Kind/key" -> observed status
  std::map<std::string, std::string> written_;            // key -> fingerprint of the last write
  std::map<std::string, std::chrono::steady_clock::time_point> applied_at_;  // infra key -> last apply
  std::map<std::string, RouteEvent> evented_;             // ns/name -> the last event emitted
  int64_t last_event_us_ = 0;  // eventTime of the last event: the next one is later
  std::map<std::string, std::string> decode_failed_;      // key -> resourceVersion logged
  uint64_t events_ = 0;
  uint64_t decode_errors_ = 0;

  // Status writer.
  std::mutex w_mu_;
  std::condition_variable w_cv_;
  std::map<std::string, Write> pending_;  // latest write per object
  bool w_stop_ = false;
  std::thread writer_;
  std::atomic<uint64_t> writes_ok_{0};
  std::atomic<uint64_t> writes_failed_{0};
};

}  // namespace gantry::controller::kube
