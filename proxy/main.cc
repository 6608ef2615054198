// gantry-proxy: the data plane process.
//
// Threads: one per worker (traffic), plus the main thread, which runs the
// control socket, the admin listener and signal handling. The proxy never
// talks to the Kubernetes API: it serves the last snapshot it applied until a
// controller (or --snapshot-file) gives it a newer valid one.
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include "proxy/base/aio.h"
#include <fstream>
#include <iostream>
#include <optional>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sstream>
#include <thread>

#include "proxy/admin/admin_server.h"
#include "proxy/admin/metrics.h"
#include "proxy/admin/policy_metrics.h"
#include "proxy/base/flags.h"
#include "proxy/control/config_store.h"
#include "proxy/control/control_server.h"
#include "proxy/net/access_log.h"
#include "proxy/net/server.h"
#include "proxy/tracing/exporter.h"

namespace {

using namespace gantry;

struct Options {
  net::ServerOptions server;
  std::optional<HostPort> stats_listen = HostPort{"127.0.0.1", 9901};
  std::optional<HostPort> admin_listen = HostPort{"127.0.0.1", 9900};
  std::string control_socket = "/var/run/gantry/control.sock";
  std::string snapshot_file;
  std::chrono::milliseconds drain{10000};
  std::string access_log = "stdout";
  std::string log_level = "info";
  std::optional<tracing::Endpoint> tracing_endpoint;  // none: tracing off
  std::string tracing_service_name = "gantry-proxy";
};

Options parse_flags(int argc, char** argv) {
  Options o;
  o.server.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  FlagSet fs("gantry-proxy", "Gantry data plane: serves HTTP traffic from the routing snapshot its controller pushes.");
  auto host_port = [](HostPort* target) {
    return [target](std::string_view v) -> Status {
      auto hp = parse_host_port(v);
      if (!hp.ok()) return hp.error();
      *target = *hp;
      return ok_status();
    };
  };
  auto duration_flag = [](std::chrono::milliseconds* target) {  // a positive duration
    return [target](std::string_view v) -> Status {
      auto d = parse_duration(v);
      if (!d.ok()) return d.error();
      if (d->count() <= 0) return Error{"must be above 0"};
      *target = *d;
      return ok_status();
    };
  };
  auto string_flag = [](std::string* target) {
    return [target](std::string_view v) -> Status {
      if (v.empty()) return Error{"must not be empty"};
      *target = std::string(v);
      return ok_status();
    };
  };
  auto listener_or_off = [](std::optional<HostPort>* target) {
    return [target](std::string_view v) -> Status {
      if (v == "off") {
        target->reset();
        return ok_status();
      }
      auto hp = parse_host_port(v);
      if (!hp.ok()) return hp.error();
      *target = *hp;
      return ok_status();
    };
  };
  fs.add("http-listen", "ADDR:PORT", "0.0.0.0:8080", "plain HTTP listener", host_port(&o.server.http_listen));
  fs.add("https-listen", "ADDR:PORT|off", "off", "TLS listener; certificates come from the snapshot",
         listener_or_off(&o.server.https_listen));
  fs.add("h2c-listen", "ADDR:PORT|off", "off",
         "cleartext listener for HTTP/2 only, with prior knowledge (gRPC clients): no HTTP/1.1 on it",
         listener_or_off(&o.server.h2c_listen));
  fs.add("stats-listen", "ADDR:PORT|off", "127.0.0.1:9901",
         "/healthz /readyz /metrics (the chart binds it to the pod address)",
         listener_or_off(&o.stats_listen));
  fs.add("admin-listen", "ADDR:PORT|off", "127.0.0.1:9900",
         "/config_dump /upstreams (and /healthz /readyz /metrics); keep it on loopback",
         listener_or_off(&o.admin_listen));
  fs.add("control-socket", "PATH", o.control_socket, "unix socket the controller connects to",
         string_flag(&o.control_socket));
  fs.add("snapshot-file", "PATH", "none", "boot from a snapshot file (JSON, as in /config_dump)",
         string_flag(&o.snapshot_file));
  fs.add("workers", "N", "number of CPUs", "worker threads", [&o](std::string_view v) -> Status {
    auto n = parse_uint(v, 1, 1024);
    if (!n.ok()) return n.error();
    o.server.workers = static_cast<int>(*n);
    return ok_status();
  });
  fs.add("drain-seconds", "N", "10", "after SIGTERM: keep serving this long with /readyz failing",
         [&o](std::string_view v) -> Status {
           auto n = parse_uint(v, 0, 3600);
           if (!n.ok()) return n.error();
           o.drain = std::chrono::seconds(*n);
           return ok_status();
         });
  fs.add("http2", "on|off", "on",
         "HTTP/2 on the listeners: h2c with prior knowledge on --http-listen, ALPN h2 on --https-listen",
         [&o](std::string_view v) -> Status {
           if (v != "on" && v != "off") return Error{"expected on or off"};
           o.server.http2 = v == "on";
           return ok_status();
         });
  fs.add_bool("debug-headers", "add X-Gateway-Route, X-Gateway-Upstream, X-Gateway-Response-Time",
              &o.server.debug_headers);
  fs.add("passthrough-idle-timeout", "DUR", "1h",
         "TLS passthrough connections (snapshot passthrough) idle this long in both directions are closed",
         duration_flag(&o.server.passthrough_idle_timeout));
  fs.add("request-header-timeout", "DUR", "10s", "time allowed to receive a request head (408 after)",
         duration_flag(&o.server.request_header_timeout));
  fs.add("upstream-timeout", "DUR", "60s",
         "wait for an upstream answer when the route sets no backendRequest timeout, and the longest "
         "pause allowed between response body bytes (a stalled body closes the client connection)",
         duration_flag(&o.server.upstream_timeout));
  fs.add("upstream-connect-timeout", "DUR", "5s",
         "time allowed to connect to an upstream endpoint (TCP, TLS handshake; HTTP/2: the server's SETTINGS)",
         duration_flag(&o.server.upstream_connect_timeout));
  fs.add("upstream-idle-timeout", "DUR", "30s", "close pooled upstream connections idle longer than this",
         duration_flag(&o.server.upstream_idle_timeout));
  fs.add("upstream-max-idle-per-endpoint", "N", "1024",
         "idle keep-alive connections each worker keeps per upstream endpoint (more are closed when "
         "given back)",
         [&o](std::string_view v) -> Status {
           auto n = parse_uint(v, 1, 1000000);
           if (!n.ok()) return n.error();
           o.server.upstream_max_idle_per_endpoint = static_cast<size_t>(*n);
           return ok_status();
         });
  fs.add("upstream-h2-keepalive-interval", "DUR|off", "30s",
         "PING an HTTP/2 upstream connection after this long with nothing received from the backend",
         [&o](std::string_view v) -> Status {
           if (v == "off") {
             o.server.upstream_h2_keepalive_interval = std::chrono::milliseconds(0);
             return ok_status();
           }
           auto d = parse_duration(v);
           if (!d.ok()) return d.error();
           if (d->count() <= 0) return Error{"must be above 0 (or off)"};
           o.server.upstream_h2_keepalive_interval = *d;
           return ok_status();
         });
  fs.add("upstream-h2-keepalive-timeout", "DUR", "10s",
         "close an HTTP/2 upstream connection (its requests fail as on a dead connection) when nothing "
         "arrives this long after a keepalive PING",
         duration_flag(&o.server.upstream_h2_keepalive_timeout));
  fs.add("trusted-proxies", "CIDR,...", "none", "trust X-Forwarded-For only from these peers",
         [&o](std::string_view v) -> Status {
           auto l = net::parse_cidr_list(v);
           if (!l.ok()) return l.error();
           o.server.trusted_proxies = *l;
           return ok_status();
         });
  fs.add("access-log", "PATH|stdout|off", "stdout", "JSON-lines access log", string_flag(&o.access_log));
  fs.add("log-level", "LEVEL", "info", "trace, debug, info, warn, error", [&o](std::string_view v) -> Status {
    if (v != "trace" && v != "debug" && v != "info" && v != "warn" && v != "error")
      return Error{"expected trace, debug, info, warn or error"};
    o.log_level = std::string(v);
    return ok_status();
  });
  fs.add("tracing-endpoint", "URL|off", "off",
         "export one span per request by OTLP/HTTP (JSON) to this collector, e.g. "
         "http://127.0.0.1:4318/v1/traces (docs/tracing.md); off: no tracing, trace headers pass through",
         [&o](std::string_view v) -> Status {
           if (v == "off") {
             o.tracing_endpoint.reset();
             return ok_status();
           }
           auto e = tracing::parse_endpoint(v);
           if (!e.ok()) return e.error();
           o.tracing_endpoint = *e;
           return ok_status();
         });
  fs.add("tracing-sampling", "RATIO", "1.0",
         "share of new traces sampled, 0..1 (a caller's sampled flag is followed; 5xx answers are always "
         "exported; a route's policy.tracing.sampling replaces it)",
         [&o](std::string_view v) -> Status {
           double d = 0;
           std::string s(v);
           char* end = nullptr;
           d = std::strtod(s.c_str(), &end);
           if (s.empty() || end != s.c_str() + s.size() || !(d >= 0 && d <= 1))
             return Error{"expected a ratio from 0 to 1"};
           o.server.tracing_sampling = d;
           return ok_status();
         });
  fs.add("tracing-service-name", "NAME", o.tracing_service_name, "service.name of the exported spans",
         string_flag(&o.tracing_service_name));
  fs.parse_or_exit(argc, argv);
  if (o.stats_listen && o.admin_listen && o.stats_listen->port != 0 &&
      o.stats_listen->port == o.admin_listen->port &&
      (o.stats_listen->host == o.admin_listen->host || o.stats_listen->host == "0.0.0.0" ||
       o.admin_listen->host == "0.0.0.0"))
    fs.fail("--stats-listen and --admin-listen must use different ports (" + o.stats_listen->str() +
            ", " + o.admin_listen->str() + ")");
  if (o.server.h2c_listen && !o.server.http2) fs.fail("--h2c-listen needs --http2=on");
  return o;
}

std::string read_file(const std::string& path, std::string& err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = "cannot open " + path;
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  Options opts = parse_flags(argc, argv);
  auto logger = spdlog::stderr_color_mt("gantry-proxy");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(opts.log_level));

  control::ConfigStore store;
  admin::Metrics metrics;
  metrics.add_collector([&store] { return admin::collect_policy_metrics(store); });
  auto access_log = net::AccessLog::open(opts.access_log);
  std::unique_ptr<tracing::Exporter> tracer;
  if (opts.tracing_endpoint) {
    tracing::ExporterOptions eo;
    eo.endpoint = *opts.tracing_endpoint;
    eo.service_name = opts.tracing_service_name;
    tracer = std::make_unique<tracing::Exporter>(std::move(eo));
    opts.server.tracer = tracer.get();
    metrics.add_collector([t = tracer.get()] { return admin::collect_tracing_metrics(*t); });
    tracer->start();
  }

  if (!opts.snapshot_file.empty()) {
    std::string err;
    std::string json = read_file(opts.snapshot_file, err);
    if (!err.empty()) {
      spdlog::error("--snapshot-file: {}", err);
      return 1;
    }
    auto out = control::apply_and_record(store, metrics, true, json);
    if (!out.errors.empty()) {
      for (const auto& e : out.errors) spdlog::error("--snapshot-file {}: {}", opts.snapshot_file, e);
      return 1;
    }
  }

  net::Server server(opts.server, store, metrics, *access_log);
  if (auto st = server.listen(); !st.ok()) {
    spdlog::error("{}", st.error().message);
    return 1;
  }

  boost::asio::io_context io(1);
  control::ControlServer control(io, store, metrics, "gantry-proxy-" + std::to_string(::getpid()));
  if (auto st = control.listen(opts.control_socket); !st.ok()) {
    spdlog::error("{}", st.error().message);
    return 1;
  }
  std::atomic<bool> draining{false};
  auto not_ready = [&]() -> std::string {
    if (draining.load()) return "draining";
    if (!store.current()) return "no snapshot applied yet";
    return {};
  };
  admin::AdminServer stats(io, store, metrics, not_ready, admin::AdminServer::Kind::kStats);
  admin::AdminServer admin(io, store, metrics, not_ready, admin::AdminServer::Kind::kAdmin);
  admin.set_health(&server.health());
  if (opts.stats_listen) {
    if (auto st = stats.listen(*opts.stats_listen); !st.ok()) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
  }
  if (opts.admin_listen) {
    if (auto st = admin.listen(*opts.admin_listen); !st.ok()) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
    if (!is_loopback_host(opts.admin_listen->host))
      spdlog::warn("--admin-listen {} is not a loopback address: /config_dump and /upstreams reveal "
                   "every route and pod address to whoever reaches it (docs/security.md)",
                   opts.admin_listen->str());
  }

  server.start();
  control.start();
  if (opts.stats_listen) stats.start();
  if (opts.admin_listen) admin.start();
  spdlog::info("gantry-proxy listening: http {}:{}{}{}, stats {}, admin {}, control {}, {} workers",
               opts.server.http_listen.host, server.http_port(),
               opts.server.https_listen ? ", https " + opts.server.https_listen->host + ":" +
                                              std::to_string(server.https_port())
                                        : std::string(),
               opts.server.h2c_listen
                   ? ", h2c " + opts.server.h2c_listen->host + ":" + std::to_string(server.h2c_port())
                   : std::string(),
               opts.stats_listen ? opts.stats_listen->str() : "off",
               opts.admin_listen ? opts.admin_listen->str() : "off", opts.control_socket, opts.server.workers);

  // SIGTERM/SIGINT: /readyz fails at once, traffic is served for
  // --drain-seconds, then listeners close and in-flight requests finish.
  boost::asio::signal_set signals(io, SIGTERM, SIGINT);
  ::gantry::aio::steady_timer drain_timer(io);
  std::thread stopper;
  std::function<void()> finish = [&] {
    if (stopper.joinable()) return;
    server.stop_accepting();
    control.close();
    stats.close();
    admin.close();
    stopper = std::thread([&] {
      server.shutdown(std::chrono::seconds(30));
      access_log->flush();
      io.stop();
    });
  };
  signals.async_wait([&](boost::system::error_code ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: draining for {} s", sig,
                 std::chrono::duration_cast<std::chrono::seconds>(opts.drain).count());
    draining = true;
    server.begin_drain();
    drain_timer.expires_after(opts.drain);
    drain_timer.async_wait([&](boost::system::error_code e) {
      if (!e) finish();
    });
    signals.async_wait([&](boost::system::error_code e2, int) {
      if (e2) return;
      spdlog::info("second signal: stopping now");
      drain_timer.cancel();
      finish();
    });
  });
  io.run();
  if (stopper.joinable()) stopper.join();
  spdlog::info("gantry-proxy stopped");
  return 0;
}
