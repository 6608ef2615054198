#include "proxy/admin/admin_server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include "proxy/base/aio.h"
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "proxy/http/parser.h"
#include "proxy/snapshot/codec.h"
#include "proxy/upstream/cluster_state.h"
#include "proxy/upstream/health_checker.h"

namespace gantry::admin {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

AdminServer::AdminServer(asio::io_context& io, control::ConfigStore& store, Metrics& metrics,
                         std::function<std::string()> not_ready_reason, Kind kind)
    : io_(io),
      store_(store),
      metrics_(metrics),
      not_ready_reason_(std::move(not_ready_reason)),
      kind_(kind),
      acceptor_(io) {}

Status AdminServer::listen(const HostPort& hp) {
  error_code ec;
  auto addr = asio::ip::make_address(hp.host, ec);
  const char* what = kind_ == Kind::kStats ? "stats" : "admin";
  if (ec) return Error{std::string(what) + " listen address \"" + hp.host + "\" is not an IP address"};
  tcp::endpoint ep(addr, hp.port);
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(aio::tcp_acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(64, ec);
  if (ec) return Error{std::string("cannot listen on ") + what + " address " + hp.str() + ": " + ec.message()};
  return ok_status();
}

void AdminServer::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

void AdminServer::close() {
  error_code ec;
  acceptor_.close(ec);
}

aio::awaitable<void> AdminServer::accept_loop() {
  while (acceptor_.is_open()) {
    error_code ec;
    aio::tcp_socket sock = co_await acceptor_.async_accept(asio::redirect_error(aio::use_awaitable, ec));
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      continue;
    }
    asio::co_spawn(io_, serve(std::move(sock)), asio::detached);
  }
}

void AdminServer::respond(std::string_view method, std::string_view path, int& status, std::string& type,
                          std::string& body) {
  type = "text/plain; charset=utf-8";
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (method != "GET" && method != "HEAD") {
    status = 405;
    body = "method not allowed\n";
    return;
  }
  if (path == "/healthz") {
    status = 200;
    body = "ok\n";
  } else if (path == "/readyz") {
    std::string why = not_ready_reason_();
    status = why.empty() ? 200 : 503;
    body = why.empty() ? "ready\n" : why + "\n";
  } else if (path == "/metrics") {
    status = 200;
    type = "text/plain; version=0.0.4";
    body = metrics_.serialize();
  } else if (kind_ == Kind::kStats) {
    status = 404;
    body = path == "/config_dump" || path == "/upstreams"
               ? "not found: /config_dump and /upstreams are served on the admin listener only "
                 "(--admin-listen, loopback by default)\n"
               : "not found: try /healthz /readyz /metrics\n";
  } else if (path == "/config_dump") {
    auto cfg = store_.current();
    status = 200;
    type = "application/json";
    if (cfg) {
      // Private keys and shared secrets never leave the proxy through the admin listener.
      auto snap = cfg->effective_snapshot();
      for (auto& c : snap.certificates) c.key_pem = "[redacted]";
      for (auto& c : snap.clusters)
        if (c.tls && !c.tls->client_key_pem.empty()) c.tls->client_key_pem = "[redacted]";
      if (snap.rate_limit_store && !snap.rate_limit_store->password.empty())
        snap.rate_limit_store->password = "[redacted]";
      // API key digests and password hashes too: a digest of a weak key, or
      // a crypt hash, can be attacked offline.
      for (auto& r : snap.routes)
        for (auto& rule : r.rules) {
          if (rule.filters.jwt && !rule.filters.jwt->hmac_secret.empty()) rule.filters.jwt->hmac_secret = "[redacted]";
          if (rule.filters.api_key)
            for (auto& k : rule.filters.api_key->keys) k.sha256 = "[redacted]";
          if (rule.filters.basic_auth)
            for (auto& u : rule.filters.basic_auth->users) u.hash = "[redacted]";
        }
      body = snapshot::to_pretty_json(snap);
    } else {
      body = "{\"version\": 0}";
    }
    body += "\n";
  } else if (path == "/upstreams") {
    auto cfg = store_.current();
    nlohmann::json j = nlohmann::json::object();
    j["version"] = cfg ? cfg->version : 0;
    auto& clusters = j["clusters"] = nlohmann::json::array();
    auto now = std::chrono::steady_clock::now();
    // Per cluster: the breaker's state (the most severe of its configs) and
    // the endpoints outlier detection holds out of rotation, by address.
    std::unordered_map<std::string, std::string> breaker_state;
    std::unordered_map<std::string, std::unordered_set<std::string>> ejected;
    upstream::ClusterRegistry::global().each_breaker(
        [&](const std::string& name, upstream::Breaker& b) {
          std::string st = resilience::to_string(b.breaker->stats(now).state);
          auto& cur = breaker_state[name];
          if (cur.empty() || st == "open" || (st == "half-open" && cur == "closed")) cur = st;
        });
    upstream::ClusterRegistry::global().each_outlier(
        [&](const std::string& name, upstream::Outlier& o) {
          auto keys = o.keys();
          for (size_t i = 0; i < keys.size(); ++i)
            if (o.detector->is_ejected(i, now)) ejected[name].insert(keys[i]);
        });
    if (cfg) {
      std::vector<const control::ClusterEndpoints*> sorted;
      for (const auto& [name, c] : cfg->clusters) sorted.push_back(c.get());
      std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->name < b->name; });
      for (const auto* c : sorted) {
        // health: the active checker's verdict, or "unchecked" when no rule
        // gives this cluster a healthCheck; ejected: by outlier detection.
        auto table = health_ ? health_->table(c->name) : nullptr;
        nlohmann::json cj{{"name", c->name},
                          {"healthChecked", table != nullptr},
                          {"endpoints", nlohmann::json::array()}};
        if (auto b = breaker_state.find(c->name); b != breaker_state.end())
          cj["circuitBreaker"] = b->second;
        auto ej = ejected.find(c->name);
        for (size_t i = 0; i < c->endpoints.size(); ++i) {
          const char* health = "unchecked";
          if (table) {
            auto it = std::find(table->keys.begin(), table->keys.end(), c->keys[i]);
            if (it != table->keys.end())
              health = table->healthy[it - table->keys.begin()].load(std::memory_order_relaxed) ? "healthy"
                                                                                            : "unhealthy";
          }
          cj["endpoints"].push_back(
              {{"address", c->keys[i]},
               {"ready", c->endpoints[i].ready},
               {"health", health},
               {"ejected", ej != ejected.end() && ej->second.count(c->keys[i]) != 0}});
        }
        clusters.push_back(std::move(cj));
      }
    }
    // Circuit breakers (per cluster and circuitBreaker config), from the runtime's registry.
    auto& breakers = j["circuitBreakers"] = nlohmann::json::array();
    upstream::ClusterRegistry::global().each_breaker([&](const std::string& name, upstream::Breaker& b) {
      auto st = b.breaker->stats(now);
      breakers.push_back({{"cluster", name},
                          {"state", resilience::to_string(st.state)},
                          {"consecutiveFailures", st.consecutive_failures},
                          {"windowRequests", st.window_requests},
                          {"windowFailures", st.window_failures},
                          {"openedTotal", st.opened_total},
                          {"rejectedTotal", st.rejected_total},
                          {"connections", b.limits.connections.in_use()},
                          {"pendingRequests", b.limits.pending_requests.in_use()}});
    });
    auto& outliers = j["outlierDetectors"] = nlohmann::json::array();
    upstream::ClusterRegistry::global().each_outlier([&](const std::string& name, upstream::Outlier& o) {
      auto st = o.detector->stats(now);
      nlohmann::json oj{{"cluster", name},
                        {"ejected", st.ejected},
                        {"ejectionsTotal", st.ejections_total},
                        {"ejectionsRefused", st.ejections_refused},
                        {"endpoints", nlohmann::json::array()}};
      auto keys = o.keys();
      for (size_t i = 0; i < keys.size(); ++i)
        oj["endpoints"].push_back({{"address", keys[i]}, {"ejected", o.detector->is_ejected(i, now)}});
      outliers.push_back(std::move(oj));
    });
    status = 200;
    type = "application/json";
    body = j.dump(2) + "\n";
  } else {
    status = 404;
    body = "not found: try /healthz /readyz /metrics /config_dump /upstreams\n";
  }
}

aio::awaitable<void> AdminServer::serve(aio::tcp_socket sock) {
  auto awaitable_ec = [](error_code& ec) { return asio::redirect_error(aio::use_awaitable, ec); };
  aio::steady_timer timer(io_);
  timer.expires_after(std::chrono::seconds(10));
  auto alive = std::make_shared<bool>(true);
  timer.async_wait([&sock, alive](error_code ec) {
    if (!ec && *alive) {
      error_code ignore;
      sock.cancel(ignore);
    }
  });
  std::string buf;
  http::RequestParser parser;
  http::RequestHead head;
  error_code ec;
  std::array<char, 4096> chunk{};
  int status = 400;
  std::string type = "text/plain", body = "bad request\n";
  bool head_only = false;
  while (true) {
    size_t n = co_await sock.async_read_some(asio::buffer(chunk), awaitable_ec(ec));
    if (ec) break;
    buf.append(chunk.data(), n);
    auto st = parser.parse(buf, head);
    if (st == http::ParseState::kIncomplete) continue;
    if (st == http::ParseState::kComplete) {
      head_only = head.method == "HEAD";
      respond(head.method, head.target, status, type, body);
    } else {
      status = parser.error().status;
      body = std::string(parser.error().reason) + "\n";
    }
    break;
  }
  timer.cancel();
  *alive = false;
  if (ec) co_return;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + (status == 200 ? "OK" : "Error") +
                    "\r\ncontent-type: " + type + "\r\ncontent-length: " + std::to_string(body.size()) +
                    "\r\nconnection: close\r\n\r\n";
  if (!head_only) out += body;
  co_await asio::async_write(sock, asio::buffer(out), awaitable_ec(ec));
  *alive = false;
  error_code ignore;
  sock.shutdown(aio::tcp_socket::shutdown_send, ignore);
}

}  // namespace gantry::admin
