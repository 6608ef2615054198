// gantry-controller: watches its source, translates, pushes snapshots to the proxy.
//
// Two sources: `--source kube` (the default) watches the API server through
// controller/kube (kube_mode.h runs that loop); `--source dir:PATH` is the
// standalone mode over a directory of YAML manifests watched with inotify. In
// both, one thread runs a poll loop over the source, the proxy socket, a
// signalfd and timers; the health listener runs on its own thread.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <set>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "controller/cmd/dir_watcher.h"
#include "controller/cmd/health_server.h"
#include "controller/cmd/kube_mode.h"
#include "controller/cmd/pusher.h"
#include "controller/core/decode.h"
#include "controller/core/translate.h"
#include "controller/core/yaml_source.h"
#include "controller/kube/api_client.h"
#include "controller/kube/kubeconfig.h"
#include "proxy/base/flags.h"

namespace gantry::controller {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kDebounce{50};
constexpr milliseconds kRewatchInterval{1000};

struct Options {
  std::string source = "kube";
  std::string kubeconfig;
  std::string proxy_socket = "/var/run/gantry/control.sock";
  std::string ingress_class = "gantry";
  std::string namespace_;
  bool leader_elect = false;
  std::string leader_election_namespace;  // empty: the in-cluster namespace, else default
  std::string ingress_status_address;
  bool gateway_api = false;
  std::string gateway_controller = kDefaultGatewayController;
  std::vector<std::string> gateway_addresses;
  std::vector<std::string> gateway_static_addresses;
  std::string gateway_bind_address;
  uint16_t gateway_proxy_http_port = 80, gateway_proxy_https_port = 443;
  std::string gateway_proxy_service;  // --gateway-bind-address service: "ns/name"
  std::string gateway_service_type = "LoadBalancer";
  uint16_t gateway_port_min = 20000, gateway_port_max = 29999;
  HostPort health_listen{"127.0.0.1", 9902};
  std::optional<HostPort> admin_listen = HostPort{"127.0.0.1", 9903};
  bool hostname_ownership = true;
  std::string log_level = "info";
  // --ingress-nginx-compat: "on" serves the IngressClasses of ingress-nginx's
  // controller (and the class "nginx"); a list serves those classes.
  IngressNginxOptions ingress_nginx;
  bool ingress_nginx_all_classes = false;
  bool ingress_nginx_write_status = false;
  // --ratelimit-store*: the Redis store of global rate limits (unset: none).
  std::optional<snapshot::RateLimitStore> rate_limit_store;
};

// A mounted Secret key: its bytes without one trailing newline.
Result<std::string> read_secret_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path};
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (s.ends_with("\r\n")) s.resize(s.size() - 2);
  else if (s.ends_with('\n')) s.pop_back();
  return s;
}

Options parse_flags(int argc, char** argv) {
  Options o;
  FlagSet flags("gantry-controller",
                "Watches Kubernetes objects (or a directory of manifests) and pushes routing "
                "snapshots to gantry-proxy.");
  // A comma-separated list.
  auto list = [](std::vector<std::string>* target) {
    return [target](std::string_view v) -> Status {
      target->clear();
      size_t start = 0;
      while (start <= v.size()) {
        size_t end = v.find(',', start);
        if (end == std::string_view::npos) end = v.size();
        if (end > start) target->emplace_back(v.substr(start, end - start));
        start = end + 1;
      }
      return ok_status();
    };
  };
  auto str = [](std::string* target, bool allow_empty = false) {
    return [target, allow_empty](std::string_view v) -> Status {
      if (v.empty() && !allow_empty) return Error{"must not be empty"};
      *target = std::string(v);
      return ok_status();
    };
  };
  flags.add("source", "kube|dir:PATH", "kube",
            "where objects come from: the API server, or a directory of YAML (standalone mode)",
            [&o](std::string_view v) -> Status {
              if (v == "kube" || (v.starts_with("dir:") && v.size() > 4)) {
                o.source = std::string(v);
                return ok_status();
              }
              return Error{"expected kube or dir:PATH, got \"" + std::string(v) + "\""};
            });
  flags.add("kubeconfig", "PATH", "in-cluster, $KUBECONFIG, ~/.kube/config",
            "kubeconfig for --source kube", str(&o.kubeconfig));
  flags.add("proxy-socket", "PATH", o.proxy_socket, "the proxy's control socket",
            str(&o.proxy_socket));
  flags.add("ingress-class", "NAME", o.ingress_class, "serve Ingresses of this class",
            str(&o.ingress_class));
  flags.add("namespace", "NS", "all", "use objects of this namespace only",
            str(&o.namespace_, true));
  flags.add_bool("leader-elect", "write status only while holding the Lease", &o.leader_elect);
  flags.add("leader-election-namespace", "NS", "in-cluster namespace, else default",
            "namespace of the gantry-controller Lease", str(&o.leader_election_namespace));
  flags.add("ingress-status-address", "IP|HOSTNAME", "off",
            "write this address to the status.loadBalancer of the Ingresses gantry serves",
            str(&o.ingress_status_address, true));
  flags.add_bool("gateway-api",
                 "serve Gateway API GatewayClasses, Gateways, HTTPRoutes and GRPCRoutes (their CRDs must be installed)",
                 &o.gateway_api);
  flags.add("gateway-controller", "NAME", o.gateway_controller,
            "the GatewayClass controllerName gantry answers to", str(&o.gateway_controller));
  flags.add("gateway-address", "IP|HOSTNAME|CIDR[,...]", "none",
            "the addresses Gateways get (one each while there are enough; spec.addresses must be "
            "among them): where the proxy serves them",
            list(&o.gateway_addresses));
  flags.add("gateway-static-address", "IP|HOSTNAME|CIDR[,...]", "none",
            "more addresses a Gateway may claim in spec.addresses (never given out unasked)",
            list(&o.gateway_static_addresses));
  flags.add("gateway-bind-address", "IP|service|proxy", "each Gateway's address",
            "where the proxy binds Gateway listeners: an IP such as 0.0.0.0 when the Gateway "
            "addresses are not the proxy host's own (Gateways then share a listener per port); "
            "service: a Service per Gateway, each listener port on a proxy port of its own (the "
            "Helm chart; needs --gateway-proxy-service); proxy: serve them on the proxy's own "
            "listeners",
            str(&o.gateway_bind_address));
  flags.add("gateway-proxy-service", "NAMESPACE/NAME", "none",
            "with --gateway-bind-address=service: the proxy pods' Service, whose endpoints each "
            "Gateway's Service gets",
            [&o](std::string_view v) -> Status {
              size_t slash = v.find('/');
              if (slash == 0 || slash == std::string_view::npos || slash + 1 == v.size() ||
                  v.find('/', slash + 1) != std::string_view::npos)
                return Error{"want NAMESPACE/NAME"};
              o.gateway_proxy_service = std::string(v);
              return ok_status();
            });
  flags.add("gateway-service-type", "ClusterIP|NodePort|LoadBalancer", o.gateway_service_type,
            "with --gateway-bind-address=service: the type of each Gateway's Service",
            [&o](std::string_view v) -> Status {
              if (v != "ClusterIP" && v != "NodePort" && v != "LoadBalancer")
                return Error{"want ClusterIP, NodePort or LoadBalancer"};
              o.gateway_service_type = std::string(v);
              return ok_status();
            });
  flags.add("gateway-port-range", "MIN-MAX", "20000-29999",
            "with --gateway-bind-address=service: the proxy ports Gateway listeners are bound on",
            [&o](std::string_view v) -> Status {
              size_t dash = v.find('-');
              if (dash == std::string_view::npos) return Error{"want MIN-MAX"};
              auto lo = parse_uint(v.substr(0, dash), 1, 65535);
              auto hi = parse_uint(v.substr(dash + 1), 1, 65535);
              if (!lo.ok() || !hi.ok() || *lo > *hi) return Error{"want MIN-MAX, ports in 1..65535, MIN <= MAX"};
              o.gateway_port_min = static_cast<uint16_t>(*lo);
              o.gateway_port_max = static_cast<uint16_t>(*hi);
              return ok_status();
            });
  flags.add("gateway-proxy-ports", "HTTP,HTTPS", "80,443",
            "with --gateway-bind-address=proxy: the ports the proxy's own listeners are reached "
            "on (the proxy Service's); listeners on other ports are not Programmed",
            [&o](std::string_view v) -> Status {
              size_t comma = v.find(',');
              if (comma == std::string_view::npos) return Error{"want HTTP_PORT,HTTPS_PORT"};
              auto h = parse_uint(v.substr(0, comma), 1, 65535);
              auto s = parse_uint(v.substr(comma + 1), 1, 65535);
              if (!h.ok() || !s.ok()) return Error{"want two ports in 1..65535"};
              o.gateway_proxy_http_port = static_cast<uint16_t>(*h);
              o.gateway_proxy_https_port = static_cast<uint16_t>(*s);
              return ok_status();
            });
  flags.add("health-listen", "ADDR:PORT", o.health_listen.str(),
            "serves /healthz /readyz /metrics (the chart binds it to the pod address)",
            [&o](std::string_view v) -> Status {
              auto hp = parse_host_port(v);
              if (!hp.ok()) return hp.error();
              o.health_listen = *hp;
              return ok_status();
            });
  flags.add("admin-listen", "ADDR:PORT|off", o.admin_listen->str(),
            "serves /status (every route's conditions) and the health paths; keep it on loopback",
            [&o](std::string_view v) -> Status {
              if (v == "off") {
                o.admin_listen.reset();
                return ok_status();
              }
              auto hp = parse_host_port(v);
              if (!hp.ok()) return hp.error();
              o.admin_listen = *hp;
              return ok_status();
            });
  flags.add("hostname-ownership", "on|off", "on",
            "a hostname belongs to the namespace of its oldest route (and the ConfigMap "
            "gantry-hostname-owners); off for single-tenant clusters",
            [&o](std::string_view v) -> Status {
              if (v == "on" || v == "true") o.hostname_ownership = true;
              else if (v == "off" || v == "false") o.hostname_ownership = false;
              else return Error{"expected on or off, got \"" + std::string(v) + "\""};
              return ok_status();
            });
  flags.add("ingress-nginx-compat", "off|on|CLASS[,CLASS...]", "off",
            "serve Ingresses of ingress-nginx's classes with its annotations' semantics "
            "(on: the IngressClasses whose controller is k8s.io/ingress-nginx, and the class nginx)",
            [&o](std::string_view v) -> Status {
              o.ingress_nginx.classes.clear();
              o.ingress_nginx_all_classes = false;
              if (v == "off") {
                o.ingress_nginx.enabled = false;
                return ok_status();
              }
              o.ingress_nginx.enabled = true;
              if (v == "on") {
                o.ingress_nginx_all_classes = true;
                o.ingress_nginx.classes.insert("nginx");
                return ok_status();
              }
              size_t start = 0;
              while (start <= v.size()) {
                size_t end = v.find(',', start);
                if (end == std::string_view::npos) end = v.size();
                std::string_view name = v.substr(start, end - start);
                bool ok = !name.empty() && name.size() <= 253 &&
                          std::all_of(name.begin(), name.end(), [](char c) {
                            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
                          });
                if (!ok)
                  return Error{"expected off, on or IngressClass names separated by commas, got \"" +
                               std::string(v) + "\""};
                o.ingress_nginx.classes.insert(std::string(name));
                start = end + 1;
              }
              return ok_status();
            });
  flags.add_bool("ingress-nginx-write-status",
                 "write status.loadBalancer (--ingress-status-address) of the ingress-nginx Ingresses too; "
                 "leave off while ingress-nginx still runs, or the two controllers overwrite each other",
                 &o.ingress_nginx_write_status);
  flags.add_bool("ingress-nginx-enable-ssl-passthrough",
                 "honour ssl-passthrough (ingress-nginx's --enable-ssl-passthrough): TLS connections whose SNI "
                 "is a host of such an Ingress go to its backend as raw TCP; without it gantry terminates them",
                 &o.ingress_nginx.ssl_passthrough);
  flags.add_bool("ingress-nginx-watch-without-class",
                 "serve Ingresses without any class (no ingressClassName, no kubernetes.io/ingress.class) "
                 "with ingress-nginx's semantics (its --watch-ingress-without-class); wins over gantry's "
                 "own default IngressClass",
                 &o.ingress_nginx.watch_without_class);
  flags.add_bool("ingress-nginx-serve-refused",
                 "serve ingress-nginx Ingresses whose refused annotations (snippets, authentication, ...) "
                 "would otherwise keep them out, without those annotations",
                 &o.ingress_nginx.serve_refused);
  flags.add("ingress-nginx-body-size", "SIZE", "1m",
            "ingress-nginx's ConfigMap proxy-body-size: the request body limit of Ingresses without the "
            "annotation (nginx units: 1m, 512k, 0 = unlimited)",
            [&o](std::string_view v) -> Status {
              auto n = parse_nginx_size(std::string(v));
              if (!n)
                return Error{std::string("expected an nginx size such as 1m, 512k or 0, got \"").append(v).append("\"")};
              o.ingress_nginx.default_body_size = *n;
              return ok_status();
            });
  flags.add("ingress-nginx-hsts", "VALUE|off", "max-age=31536000; includeSubDomains",
            "ingress-nginx's ConfigMap hsts: the Strict-Transport-Security of TLS answers of those Ingresses",
            [&o](std::string_view v) -> Status {
              if (v == "off") {
                o.ingress_nginx.hsts.clear();
                return ok_status();
              }
              if (!v.starts_with("max-age=") ||
                  std::any_of(v.begin(), v.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20; }))
                return Error{std::string("expected off or a value such as \"max-age=31536000; includeSubDomains\", got \"")
                                 .append(v)
                                 .append("\"")};
              o.ingress_nginx.hsts = std::string(v);
              return ok_status();
            });
  flags.add("ingress-nginx-redirect-code", "CODE", "308",
            "ingress-nginx's ConfigMap http-redirect-code: the status of ssl-redirect and from-to-www-redirect",
            [&o](std::string_view v) -> Status {
              if (v != "301" && v != "302" && v != "307" && v != "308")
                return Error{std::string("expected 301, 302, 307 or 308, got \"").append(v).append("\"")};
              o.ingress_nginx.ssl_redirect_code = v[2] - '0' + (v[1] - '0') * 10 + 300;
              return ok_status();
            });
  // The store of rateLimit.scope global (docs/policies.md). Every setting but
  // the address needs --ratelimit-store; checked after parsing.
  snapshot::RateLimitStore store;
  std::string store_password_file, store_ca_file;
  bool store_tls = false;
  flags.add("ratelimit-store", "HOST:PORT", "none",
            "the Redis server (or Sentinel-managed primary / cluster proxy) shared by every replica's "
            "global rate limits (rateLimit.scope global)",
            [&o, &store](std::string_view v) -> Status {
              if (v.empty()) return Error{"must not be empty"};
              store.address = std::string(v);
              o.rate_limit_store = store;
              return ok_status();
            });
  flags.add_bool("ratelimit-store-tls", "connect to the store over TLS", &store_tls);
  flags.add("ratelimit-store-tls-server-name", "NAME", "the address's host",
            "the name the store's certificate is verified against (and SNI)", str(&store.tls_server_name));
  flags.add("ratelimit-store-ca-file", "PATH", "the system's CAs",
            "PEM CAs the store's certificate is verified with", str(&store_ca_file));
  flags.add("ratelimit-store-username", "NAME", "none", "AUTH user (Redis ACL)", str(&store.username));
  flags.add("ratelimit-store-password-file", "PATH", "none",
            "a file holding the store's password (a mounted Secret key); read at start", str(&store_password_file));
  flags.add("ratelimit-store-database", "N", "0", "the database number (SELECT), 0 to 15",
            [&store](std::string_view v) -> Status {
              auto n = parse_uint(v, 0, 15);
              if (!n.ok()) return n.error();
              store.database = static_cast<uint32_t>(*n);
              return ok_status();
            });
  flags.add("ratelimit-budget", "DURATION", "5ms",
            "how long a request waits for the store's decision before the route's failureMode applies",
            [&store](std::string_view v) -> Status {
              auto d = parse_k8s_duration(v);
              if (!d.ok() || d->count() < 1 || d->count() > 10000)
                return Error{std::string("expected a duration from 1ms to 10s, got \"").append(v).append("\"")};
              store.budget = *d;
              return ok_status();
            });
  flags.add("ratelimit-expected-replicas", "N", "1",
            "proxy replicas sharing the global limits: while the store is unreachable each replica "
            "allows limit / N (fail-open)",
            [&store](std::string_view v) -> Status {
              auto n = parse_uint(v, 1, 10000);
              if (!n.ok()) return n.error();
              store.expected_replicas = static_cast<uint32_t>(*n);
              return ok_status();
            });
  flags.add("ratelimit-lease-percent", "N", "1",
            "the share of a global limit, in percent, that all proxy workers together may reserve "
            "ahead of their requests (leases: fewer store round trips for busy keys); 0: none",
            [&store](std::string_view v) -> Status {
              auto n = parse_uint(v, 0, 100);
              if (!n.ok()) return n.error();
              store.lease_percent = static_cast<uint32_t>(*n);
              return ok_status();
            });
  flags.add("log-level", "LEVEL", o.log_level, "debug, info, warn or error",
            [&o](std::string_view v) -> Status {
              if (v != "debug" && v != "info" && v != "warn" && v != "error")
                return Error{"expected debug, info, warn or error"};
              o.log_level = std::string(v);
              return ok_status();
            });
  flags.parse_or_exit(argc, argv);
  if (o.rate_limit_store) {
    store.tls = store_tls;
    if (!store_password_file.empty()) {
      auto pw = read_secret_file(store_password_file);
      if (!pw.ok()) flags.fail("--ratelimit-store-password-file: " + pw.error().message);
      store.password = std::move(pw).value();
    }
    if (!store_ca_file.empty()) {
      auto ca = read_secret_file(store_ca_file);
      if (!ca.ok()) flags.fail("--ratelimit-store-ca-file: " + ca.error().message);
      store.ca_pem = std::move(ca).value();
    }
    o.rate_limit_store = store;
  } else if (store_tls || !store_password_file.empty() || !store_ca_file.empty() || !store.username.empty() ||
             !store.tls_server_name.empty()) {
    flags.fail("--ratelimit-store-* settings need --ratelimit-store");
  }
  if (o.gateway_bind_address == "service") {
    if (o.source != "kube") flags.fail("--gateway-bind-address service needs --source kube (it writes Services)");
    if (o.gateway_proxy_service.empty())
      flags.fail("--gateway-bind-address service needs --gateway-proxy-service NAMESPACE/NAME");
  }
  if (o.admin_listen && o.health_listen.port != 0 && o.health_listen.port == o.admin_listen->port &&
      (o.health_listen.host == o.admin_listen->host || o.health_listen.host == "0.0.0.0" ||
       o.admin_listen->host == "0.0.0.0"))
    flags.fail("--health-listen and --admin-listen must use different ports (" +
               o.health_listen.str() + ", " + o.admin_listen->str() + ")");
  return o;
}

uint64_t initial_version() {
  auto ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  return static_cast<uint64_t>(ms) * 1000;
}

class Controller {
 public:
  Controller(Options o, std::string dir, std::unique_ptr<DirWatcher> watcher,
             std::unique_ptr<HealthServer> health, int signal_fd)
      : opts_(std::move(o)),
        dir_(std::move(dir)),
        watcher_(std::move(watcher)),
        health_(std::move(health)),
        signal_fd_(signal_fd),
        pusher_(opts_.proxy_socket, initial_version()) {
    translate_opts_.ingress_class = opts_.ingress_class;
    translate_opts_.hostname_ownership = opts_.hostname_ownership;
    translate_opts_.ingress_nginx = opts_.ingress_nginx;
    translate_opts_.rate_limit_store = opts_.rate_limit_store;
    // Gateway API objects in the directory are always read; a Gateway is
    // served on its spec.addresses (any IP of this host: no pool to check
    // against), else on one of --gateway-address.
    translate_opts_.gateway_api.controller_name = opts_.gateway_controller;
    translate_opts_.gateway_api.addresses = opts_.gateway_addresses;
    translate_opts_.gateway_api.static_addresses = opts_.gateway_static_addresses;
    translate_opts_.gateway_api.bind_address = opts_.gateway_bind_address;
    translate_opts_.gateway_api.proxy_http_port = opts_.gateway_proxy_http_port;
    translate_opts_.gateway_api.proxy_https_port = opts_.gateway_proxy_https_port;
    translate_opts_.gateway_api.any_spec_address = true;
  }

  int run() {
    reload(Clock::now());
    while (true) {
      Clock::time_point now = Clock::now();
      std::optional<Clock::time_point> wake = reload_at_;
      if (auto d = pusher_.deadline(); d && (!wake || *d < *wake)) wake = d;
      if (watcher_->lost()) {
        Clock::time_point r = now + kRewatchInterval;
        if (!wake || r < *wake) wake = r;
      }
      int timeout = -1;
      if (wake) {
        auto ms = std::chrono::duration_cast<milliseconds>(*wake - now).count();
        timeout = static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 60000));
      }
      pollfd fds[3] = {{signal_fd_, POLLIN, 0},
                       {watcher_->fd(), POLLIN, 0},
                       {pusher_.fd(), pusher_.events(), 0}};
      int n = ::poll(fds, pusher_.fd() >= 0 ? 3 : 2, timeout);
      if (n < 0 && errno != EINTR) {
        spdlog::critical("poll: {}", std::strerror(errno));
        return 1;
      }
      now = Clock::now();
      if (fds[0].revents & POLLIN) {
        signalfd_siginfo si;
        if (::read(signal_fd_, &si, sizeof(si)) > 0) {
          spdlog::info("signal {}: shutting down", si.ssi_signo);
          return 0;
        }
      }
      if ((fds[1].revents & POLLIN) && watcher_->drain()) {
        if (!reload_at_) reload_at_ = now + kDebounce;
        if (watcher_->lost()) spdlog::warn("directory {} went away; watching for it", dir_);
      }
      if (watcher_->lost() && watcher_->rewatch()) {
        spdlog::info("directory {} is back", dir_);
        reload_at_ = now;
      }
      if (reload_at_ && now >= *reload_at_) reload(now);
      if (pusher_.fd() >= 0 && n > 0 && fds[2].revents) pusher_.on_io(fds[2].revents, now);
      pusher_.tick(now);
      publish();
    }
  }

 private:
  void reload(Clock::time_point now) {
    reload_at_.reset();
    DirectoryLoad load = load_directory(dir_, &last_good_);
    for (const auto& e : load.errors) spdlog::error("{}", e.str());
    for (const auto& w : load.warnings) spdlog::warn("{}", w);
    if (!opts_.namespace_.empty()) filter_namespace(load.cache);
    spdlog::info("loaded {} objects from {} files, {} file{} with errors ({} served from the last good version)",
                 load.cache.size(), load.files, load.files_with_errors, load.files_with_errors == 1 ? "" : "s",
                 load.files_kept);
    ++loads_;
    objects_ = load.cache.size();
    files_with_errors_ = load.files_with_errors;

    TranslateResult r = translate(load.cache, translate_opts_);
    for (const auto& w : r.warnings) spdlog::warn("{}", w);
    for (const auto& line : status_changes(statuses_, r.statuses)) {
      bool bad = line.find("=False") != std::string::npos;
      if (bad)
        spdlog::warn("{}", line);
      else
        spdlog::info("{}", line);
    }
    statuses_ = std::move(r.statuses);
    nginx_json_ = nginx_report_json(r.ingress_nginx);
    nginx_metrics_ = nginx_report_metrics(r.ingress_nginx);
    desired_ = std::move(r.snapshot);
    pusher_.set_desired(desired_, now);
    programmed_generation_ = ~uint64_t{0};  // recompute Programmed
  }

  void filter_namespace(Cache& c) const {
    auto keep = [&](auto& table) {
      std::erase_if(table,
                    [&](const auto& kv) { return kv.second.meta.namespace_ != opts_.namespace_; });
    };
    keep(c.routes);
    keep(c.services);
    keep(c.endpoint_slices);
    keep(c.secrets);
    keep(c.ingresses);
  }

  // Refreshes Programmed conditions and the health listener's view.
  void publish() {
    if (pusher_.generation() != programmed_generation_) {
      programmed_generation_ = pusher_.generation();
      set_programmed(statuses_, desired_, pusher_.applied(), pusher_.rejection());
    }
    const auto& st = pusher_.stats();
    HealthState h;
    h.ready = pusher_.applied() != nullptr;
    if (!h.ready)
      h.not_ready_reason = st.connected ? "waiting for the proxy to acknowledge the first snapshot"
                                        : "proxy not connected at " + opts_.proxy_socket;
    h.pushes = st.pushes;
    h.acks = st.acks;
    h.nacks = st.nacks;
    h.acked_version = st.acked_version;
    h.proxy_connected = st.connected;
    h.loads = loads_;
    h.objects = objects_;
    h.files_with_errors = files_with_errors_;
    for (const auto& s : statuses_)
      if (const Condition* c = s.find("Accepted"); c && !c->status) ++h.routes_not_accepted;
    if (status_json_generation_ != programmed_generation_ || status_loads_ != loads_) {
      status_json_ = statuses_to_json(statuses_);
      status_json_generation_ = programmed_generation_;
      status_loads_ = loads_;
    }
    h.status_json = status_json_;
    h.ingress_nginx_json = nginx_json_;
    h.extra_metrics = nginx_metrics_;
    health_->update(h);
  }

  Options opts_;
  std::string dir_;
  LastGood last_good_;  // per file: its objects as of its last version without errors
  std::unique_ptr<DirWatcher> watcher_;
  std::unique_ptr<HealthServer> health_;
  int signal_fd_;
  Pusher pusher_;
  TranslateOptions translate_opts_;
  std::optional<Clock::time_point> reload_at_;
  snapshot::Snapshot desired_;
  std::vector<RouteStatus> statuses_;
  uint64_t programmed_generation_ = ~uint64_t{0};
  uint64_t status_json_generation_ = ~uint64_t{0};
  uint64_t status_loads_ = 0;
  std::string status_json_;
  std::string nginx_json_ = "{\"ingresses\":[]}";
  std::string nginx_metrics_;
  uint64_t loads_ = 0;
  uint64_t objects_ = 0;
  uint64_t files_with_errors_ = 0;
};

std::string identity() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0 || !host[0]) std::snprintf(host, sizeof(host), "gantry");
  return std::string(host) + "_" + std::to_string(getpid());
}

// "127.0.0.1:9903" (the bound port), or "off"; warns when it is not loopback.
std::string admin_text(const Options& opts, const HealthServer& h) {
  if (!opts.admin_listen) return "off";
  if (!is_loopback_host(opts.admin_listen->host))
    spdlog::warn("--admin-listen {} is not a loopback address: /status reveals every route to whoever "
                 "reaches it (docs/security.md)",
                 opts.admin_listen->str());
  return opts.admin_listen->host + ":" + std::to_string(h.admin_port());
}

int run_kube(Options opts, kube::ClusterAccess access, int sfd) {
  KubeModeConfig cfg;
  cfg.proxy_socket = opts.proxy_socket;
  cfg.first_version = initial_version();
  cfg.source.namespace_ = opts.namespace_;
  cfg.source.ingress_class = opts.ingress_class;
  cfg.source.ingress_status_address = opts.ingress_status_address;
  cfg.source.gateway_api = opts.gateway_api;
  cfg.source.gateway_controller = opts.gateway_controller;
  cfg.source.gateway_addresses = opts.gateway_addresses;
  cfg.source.gateway_static_addresses = opts.gateway_static_addresses;
  cfg.source.gateway_bind_address = opts.gateway_bind_address;
  cfg.source.gateway_proxy_http_port = opts.gateway_proxy_http_port;
  cfg.source.gateway_proxy_https_port = opts.gateway_proxy_https_port;
  cfg.source.gateway_proxy_service = opts.gateway_proxy_service;
  cfg.source.gateway_service_type = opts.gateway_service_type;
  cfg.source.gateway_port_min = opts.gateway_port_min;
  cfg.source.gateway_port_max = opts.gateway_port_max;
  cfg.source.leader_elect = opts.leader_elect;
  cfg.source.hostname_ownership = opts.hostname_ownership;
  cfg.source.ingress_nginx = opts.ingress_nginx;
  cfg.source.ingress_nginx_all_classes = opts.ingress_nginx_all_classes;
  cfg.source.ingress_nginx_write_status = opts.ingress_nginx_write_status;
  cfg.source.rate_limit_store = opts.rate_limit_store;
  cfg.source.leader.identity = identity();
  cfg.source.leader.namespace_ = !opts.leader_election_namespace.empty()
                                     ? opts.leader_election_namespace
                                 : access.in_cluster && !access.namespace_.empty()
                                     ? access.namespace_
                                     : "default";
  cfg.source.owners_namespace = cfg.source.leader.namespace_;  // the controller's namespace
  std::string origin = access.origin, server = access.server;
  auto source = kube::KubeSource::create(std::move(access), cfg.source);
  if (!source.ok()) {
    spdlog::critical("--source kube: {}", source.error().message);
    return 1;
  }
  auto health = HealthServer::start(opts.health_listen, opts.admin_listen);
  if (!health.ok()) {
    spdlog::critical("{}", health.error().message);
    return 1;
  }
  spdlog::info("gantry-controller: watching {} ({}){}; proxy socket {}; health on {}:{}; admin {}",
               server, origin, opts.namespace_.empty() ? "" : " in namespace " + opts.namespace_,
               opts.proxy_socket, opts.health_listen.host, (*health)->port(), admin_text(opts, **health));
  int rc = run_kube_mode(std::move(cfg), std::move(*source), std::move(*health), sfd);
  // The API client's worker threads may still sit in cancelled requests; do not
  // wait for them (or for static destructors) on the way out.
  spdlog::shutdown();
  std::_Exit(rc);
}

// The Ingresses of a live cluster into `cache`, and the names of the
// IngressClasses whose controller is ingress-nginx's.
Status list_cluster(const std::string& kubeconfig, Cache& cache, std::set<std::string>& nginx_classes) {
  auto access = kube::resolve_cluster_access(kubeconfig, [](const char* n) { return getenv(n); });
  if (!access.ok()) return access.error();
  auto api = kube::ApiClient::create(std::move(*access));
  if (!api.ok()) return api.error();
  auto list = [&](const char* path, const char* kind, auto&& each) -> Status {
    std::string cont;
    do {
      std::string q = std::string(path) + "?limit=500";
      if (!cont.empty()) q.append("&continue=").append(cont);
      auto r = (*api)->call("GET", q, "", "");
      if (!r.ok()) return r.error();
      if (r->status != 200)
        return Error{std::string("GET ").append(path).append(": HTTP ").append(std::to_string(r->status))};
      auto j = nlohmann::json::parse(r->body, nullptr, false);
      if (!j.is_object()) return Error{std::string("GET ").append(path).append(": not JSON")};
      for (auto& item : j.value("items", nlohmann::json::array())) {
        item["kind"] = kind;
        item["apiVersion"] = "networking.k8s.io/v1";
        each(item);
      }
      cont = j.value("metadata", nlohmann::json::object()).value("continue", "");
    } while (!cont.empty());
    return ok_status();
  };
  Status st = list("/apis/networking.k8s.io/v1/ingressclasses", "IngressClass", [&](const nlohmann::json& ic) {
    if (ic.value("spec", nlohmann::json::object()).value("controller", "") == kNginxIngressController)
      nginx_classes.insert(ic.value("metadata", nlohmann::json::object()).value("name", ""));
  });
  if (!st.ok()) return st;
  return list("/apis/networking.k8s.io/v1/ingresses", "Ingress", [&](const nlohmann::json& ing) {
    auto o = decode_object(json_to_node(ing));
    if (o.ok()) cache.upsert(std::move(*o));
    else std::fprintf(stderr, "skipped an Ingress: %s\n", o.error().message.c_str());
  });
}

// gantry-controller migrate: the ingress-nginx migration report over a live
// cluster or exported manifests (docs/migrating-from-ingress-nginx.md). Exit 0 when nothing
// reaches --fail-on, 1 when something does, 2 on a usage error.
int run_migrate(int argc, char** argv) {
  std::string source;
  std::string kubeconfig;
  bool json = false;
  std::string fail_on = "refused";
  IngressNginxOptions nginx;
  nginx.enabled = true;
  nginx.classes = {"nginx"};
  nginx.ssl_passthrough = true;  // the report says what gantry serves, the flag being one to set
  FlagSet flags("gantry-controller migrate",
                "Lists, per Ingress of an ingress-nginx class, each nginx.ingress.kubernetes.io "
                "annotation as served, partial (what differs), refused or unknown (why).",
                "GANTRY_MIGRATE_");
  flags.add("source", "kube|dir:PATH", "kube",
            "the cluster (through the kubeconfig), or a directory of exported manifests (as in standalone mode)",
            [&source](std::string_view v) -> Status {
              if (v == "kube") {
                source.clear();
                return ok_status();
              }
              if (!v.starts_with("dir:") || v.size() <= 4)
                return Error{std::string("expected kube or dir:PATH, got \"").append(v).append("\"")};
              source = std::string(v.substr(4));
              return ok_status();
            });
  flags.add("kubeconfig", "PATH", "in-cluster, $KUBECONFIG, ~/.kube/config", "kubeconfig for --source kube",
            [&kubeconfig](std::string_view v) -> Status {
              kubeconfig = std::string(v);
              return ok_status();
            });
  bool classes_named = false;
  flags.add("ingress-nginx-compat", "CLASS[,CLASS...]", "nginx and ingress-nginx's IngressClasses",
            "the ingress-nginx classes to report on",
            [&nginx, &classes_named](std::string_view v) -> Status {
              classes_named = true;
              nginx.classes.clear();
              size_t start = 0;
              while (start <= v.size()) {
                size_t end = v.find(',', start);
                if (end == std::string_view::npos) end = v.size();
                if (end > start) nginx.classes.insert(std::string(v.substr(start, end - start)));
                start = end + 1;
              }
              if (nginx.classes.empty()) return Error{"expected class names"};
              return ok_status();
            });
  flags.add_bool("json", "print JSON instead of text", &json);
  flags.add("fail-on", "partial|refused|never", fail_on,
            "exit 1 when an annotation is at least this bad (refused includes unknown annotations and "
            "Ingresses that would not be served)",
            [&fail_on](std::string_view v) -> Status {
              if (v != "partial" && v != "refused" && v != "never")
                return Error{"expected partial, refused or never, got \"" + std::string(v) + "\""};
              fail_on = std::string(v);
              return ok_status();
            });
  flags.add_bool("serve-refused", "judge as with --ingress-nginx-serve-refused", &nginx.serve_refused);
  flags.add_bool("watch-without-class", "judge Ingresses without a class too, as with "
                 "--ingress-nginx-watch-without-class", &nginx.watch_without_class);
  flags.parse_or_exit(argc, argv);
  DirectoryLoad load;
  if (source.empty()) {
    std::set<std::string> classes;
    Status st = list_cluster(kubeconfig, load.cache, classes);
    if (!st.ok()) {
      std::fprintf(stderr, "gantry-controller migrate: --source kube: %s\n", st.error().message.c_str());
      return 2;
    }
    if (!classes_named) nginx.classes.insert(classes.begin(), classes.end());
  } else {
    std::error_code ec;
    if (!std::filesystem::is_directory(source, ec)) flags.fail("--source: " + source + " is not a directory");
    load = load_directory(source);
    for (const auto& e : load.errors) std::fprintf(stderr, "%s\n", e.str().c_str());
  }
  TranslateOptions t;
  t.ingress_nginx = nginx;
  TranslateResult r = translate(load.cache, t);
  std::string out = json ? nginx_report_json(r.ingress_nginx) + "\n" : nginx_report_text(r.ingress_nginx);
  std::fwrite(out.data(), 1, out.size(), stdout);
  bool fail = !load.errors.empty() && fail_on != "never";
  for (const auto& rep : r.ingress_nginx) {
    if (fail_on == "never") break;
    if (!rep.served) fail = true;
    for (const auto& a : rep.annotations) {
      if (a.support == NginxSupport::kRefused || a.support == NginxSupport::kUnknown) fail = true;
      if (fail_on == "partial" && a.support == NginxSupport::kPartial) fail = true;
    }
  }
  return fail ? 1 : 0;
}

int main_impl(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "migrate") return run_migrate(argc - 1, argv + 1);
  Options opts = parse_flags(argc, argv);
  auto logger = spdlog::stderr_color_mt("gantry-controller");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %^%l%$ %v");
  spdlog::set_level(spdlog::level::from_str(opts.log_level));

  std::string dir;
  std::optional<kube::ClusterAccess> access;
  if (opts.source == "kube") {
    auto a = kube::resolve_cluster_access(opts.kubeconfig, [](const char* n) { return getenv(n); });
    if (!a.ok()) {
      spdlog::critical("--source kube: {}", a.error().message);
      return 1;
    }
    access = std::move(*a);
  } else {
    dir = opts.source.substr(4);
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      spdlog::critical("--source {}: {} is not a directory", opts.source, dir);
      return 1;
    }
  }

  // Signals are read from a signalfd by the main loop; block them in every thread.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  signal(SIGPIPE, SIG_IGN);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) {
    spdlog::critical("signalfd: {}", std::strerror(errno));
    return 1;
  }

  if (access) return run_kube(std::move(opts), std::move(*access), sfd);

  auto watcher = DirWatcher::create(dir);
  if (!watcher.ok()) {
    spdlog::critical("{}", watcher.error().message);
    return 1;
  }
  auto health = HealthServer::start(opts.health_listen, opts.admin_listen);
  if (!health.ok()) {
    spdlog::critical("{}", health.error().message);
    return 1;
  }
  spdlog::info("gantry-controller: standalone mode over {}; proxy socket {}; health on {}:{}; admin {}",
               dir, opts.proxy_socket, opts.health_listen.host, (*health)->port(),
               admin_text(opts, **health));
  Controller c(std::move(opts), dir, std::move(*watcher), std::move(*health), sfd);
  return c.run();
}

}  // namespace
}  // namespace gantry::controller

int main(int argc, char** argv) { return gantry::controller::main_impl(argc, argv); }
