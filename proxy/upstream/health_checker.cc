#include "proxy/upstream/health_checker.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include "proxy/base/aio.h"
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <random>

#include "proxy/control/config_store.h"
#include "proxy/exchange/grpc.h"
#include "proxy/net/h2_upstream.h"

namespace gantry::upstream {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {

auto awaitable_ec(error_code& ec) { return asio::redirect_error(aio::use_awaitable, ec); }

bool expected(const snapshot::HealthCheck& c, int status) {
  if (c.expected_statuses.empty()) return status >= 200 && status < 400;
  for (int s : c.expected_statuses)
    if (s == status) return true;
  return false;
}

// Reads the status line of an HTTP/1.1 answer from `stream`: NNN, or 0.
template <typename Stream>
aio::awaitable<int> read_status(Stream& stream, const bool& expired) {
  std::string buf;
  char chunk[512];
  error_code ec;
  while (!ec && !expired && buf.find("\r\n") == std::string::npos && buf.size() < 4096) {
    size_t n = co_await stream.async_read_some(asio::buffer(chunk), awaitable_ec(ec));
    if (!ec) buf.append(chunk, n);
  }
  // "HTTP/1.x NNN ..."
  int status = 0;
  if (buf.size() >= 12 && buf.compare(0, 7, "HTTP/1.") == 0 && buf[8] == ' ') {
    for (int i = 9; i < 12; ++i)
      status = (buf[i] >= '0' && buf[i] <= '9') ? status * 10 + (buf[i] - '0') : -1000;
  }
  co_return status;
}

// One GET, over TLS when the cluster has it; true when the status is
// expected. Never throws.
aio::awaitable<bool> check_http(const snapshot::HealthCheck& c, const snapshot::Endpoint& ep, const std::string& host,
                                 const std::shared_ptr<const tls::UpstreamTlsContext>& tls) {
  auto ex = co_await asio::this_coro::executor;
  aio::tcp_socket sock(ex);
  aio::steady_timer timer(ex);
  bool expired = false;
  timer.expires_after(c.timeout);
  timer.async_wait([&sock, &expired](error_code ec) {
    if (ec) return;  // cancelled: the check ended first (sock may be gone)
    expired = true;
    error_code ignore;
    sock.close(ignore);
  });
  error_code ec;
  auto addr = asio::ip::make_address(ep.address, ec);
  int status = 0;
  if (!ec) co_await sock.async_connect(tcp::endpoint(addr, ep.port), awaitable_ec(ec));
  if (!ec && !expired) {
    std::string req = "GET " + c.path + " HTTP/1.1\r\nhost: " + host +
                      "\r\nuser-agent: gantry-health-check\r\nconnection: close\r\n\r\n";
    if (tls) {
      asio::ssl::stream<aio::tcp_socket&> stream(sock, tls->context());
      std::string why;
      // The check speaks HTTP/1.1 whatever the cluster's ALPN list offers.
      static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
      if (tls->prepare(stream.native_handle(), why) &&
          SSL_set_alpn_protos(stream.native_handle(), kHttp11, sizeof kHttp11) == 0) {
        co_await stream.async_handshake(asio::ssl::stream_base::client, awaitable_ec(ec));
        if (!ec && !expired && tls->check_names(stream.native_handle()).empty()) {
          co_await asio::async_write(stream, asio::buffer(req), awaitable_ec(ec));
          if (!ec && !expired) status = co_await read_status(stream, expired);
        }
      }
    } else {
      co_await asio::async_write(sock, asio::buffer(req), awaitable_ec(ec));
      if (!ec && !expired) status = co_await read_status(sock, expired);
    }
  }
  timer.cancel();
  error_code ignore;
  sock.close(ignore);
  co_return !expired && status > 0 && expected(c, status);
}

// One grpc.health.v1.Health/Check call on a connection of its own: h2c with
// prior knowledge, or h2 over TLS (ALPN) when the cluster has TLS. True when
// the answer is HTTP 200, grpc-status 0 and ServingStatus SERVING.
aio::awaitable<bool> check_grpc(asio::io_context& io, const snapshot::HealthCheck& c, const snapshot::Endpoint& ep,
                                 const std::string& host, const std::shared_ptr<const tls::UpstreamTlsContext>& tls) {
  const auto deadline = std::chrono::steady_clock::now() + c.timeout;
  error_code ec;
  auto addr = asio::ip::make_address(ep.address, ec);
  if (ec) co_return false;
  auto conn = co_await net::H2UpstreamConn::connect(io, tcp::endpoint(addr, ep.port), c.timeout, ec, tls);
  if (!conn) co_return false;
  net::H2Call call(io.get_executor());
  http2::RequestHead head;
  head.method = "POST";
  head.scheme = tls ? "https" : "http";
  head.authority = host;
  head.path = "/grpc.health.v1.Health/Check";
  const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
  head.headers = {{"content-type", "application/grpc"},
                  {"te", "trailers"},
                  {"grpc-timeout", exchange::format_grpc_timeout(left)},
                  {"user-agent", "gantry-health-check"}};
  const std::string message = exchange::grpc_health_check_request(c.grpc->service);
  bool ok = false;
  if (conn->open(call, head, false) && conn->send_data(call, message) == message.size()) {
    conn->end_request(call);
    aio::steady_timer limit(io);
    bool expired = false;
    limit.expires_at(deadline);
    limit.async_wait([&](error_code e) {
      if (e) return;
      expired = true;
      conn->close();  // wakes the call: closed
    });
    while (!call.ended && !call.closed) {
      co_await call.wait(false);
      if (call.data.size() > 4096) break;  // not a health answer (it stays within the stream window)
    }
    limit.cancel();
    if (!expired && call.ended && call.status == 200) {
      // grpc-status in the trailers, or in the head of a trailers-only answer.
      const std::vector<http2::Field>& fields = call.trailers.empty() ? call.headers : call.trailers;
      const http2::Field* grpc_status = nullptr;
      for (const auto& f : fields)
        if (f.name == "grpc-status") grpc_status = &f;
      ok = grpc_status != nullptr && grpc_status->value == "0" && exchange::grpc_health_status(call.data) == 1;
    }
  }
  conn->release(call);
  conn->shutdown();  // GOAWAY(NO_ERROR), then closed (already closed when the check expired)
  co_return ok;
}

aio::awaitable<void> probe(asio::io_context& io, std::shared_ptr<HealthTable> t, size_t i, snapshot::Endpoint ep,
                            uint64_t seed) {
  auto ex = co_await asio::this_coro::executor;
  aio::steady_timer timer(ex);
  std::mt19937_64 rng(seed);
  const auto& c = t->config;
  int64_t interval = std::max<int64_t>(1, c.interval.count());
  timer.expires_after(milliseconds(static_cast<int64_t>(rng() % static_cast<uint64_t>(interval))));
  error_code ec;
  co_await timer.async_wait(awaitable_ec(ec));
  uint32_t ok_run = 0, fail_run = 0;
  while (!t->stopped.load(std::memory_order_relaxed)) {
    bool ok = c.grpc ? co_await check_grpc(io, c, ep, t->keys[i], t->tls)
                     : co_await check_http(c, ep, t->keys[i], t->tls);
    if (t->stopped.load(std::memory_order_relaxed)) break;
    if (ok) {
      fail_run = 0;
      if (++ok_run >= std::max<uint32_t>(1, c.healthy_threshold)) t->healthy[i].store(true, std::memory_order_relaxed);
    } else {
      ok_run = 0;
      if (++fail_run >= std::max<uint32_t>(1, c.unhealthy_threshold))
        t->healthy[i].store(false, std::memory_order_relaxed);
    }
    int64_t jitter = interval / 10;
    int64_t wait = interval - jitter + (jitter > 0 ? static_cast<int64_t>(rng() % (2 * jitter + 1)) : 0);
    timer.expires_after(milliseconds(wait));
    co_await timer.async_wait(awaitable_ec(ec));
  }
}

}  // namespace

struct HealthChecker::Impl {
  asio::io_context io{1};
  aio::steady_timer poll{io};
  uint64_t seen_generation = ~0ull;
  std::mt19937_64 rng{std::random_device{}()};
};

HealthChecker::HealthChecker(const control::ConfigStore& store) : store_(store), impl_(std::make_unique<Impl>()) {}

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start() {
  auto tick = std::make_shared<std::function<void()>>();
  *tick = [this, weak = std::weak_ptr<std::function<void()>>(tick)] {
    uint64_t g = store_.generation();
    if (g != impl_->seen_generation) {
      impl_->seen_generation = g;
      auto cfg = store_.current();
      // cluster -> the health check of the first rule naming it
      std::unordered_map<std::string, const snapshot::HealthCheck*> wanted;
      if (cfg && cfg->table) {
        for (const auto& cr : cfg->table->rules()) {
          if (!cr.rule->policy.health_check) continue;
          for (const auto& ref : cr.rule->backends)
            if (ref.unresolved.empty()) wanted.emplace(ref.cluster, &*cr.rule->policy.health_check);
        }
      }
      std::unordered_map<std::string, std::shared_ptr<HealthTable>> next;
      bool changed = false;
      {
        std::lock_guard<std::mutex> lock(mu_);
        for (const auto& [name, hc] : wanted) {
          const control::ClusterEndpoints* c = cfg->cluster(name);
          if (c == nullptr) continue;
          auto it = tables_.find(name);
          if (it != tables_.end() && it->second->config == *hc && it->second->keys == c->keys &&
              it->second->tls == c->tls) {
            next.emplace(name, it->second);
            continue;
          }
          auto t = std::make_shared<HealthTable>(*hc, c->keys, c->tls);
          for (size_t i = 0; i < c->endpoints.size(); ++i)
            asio::co_spawn(impl_->io, probe(impl_->io, t, i, c->endpoints[i], impl_->rng()), asio::detached);
          next.emplace(name, std::move(t));
          changed = true;
        }
        for (auto& [name, t] : tables_) {
          auto it = next.find(name);
          if (it == next.end() || it->second != t) {
            t->stopped.store(true);
            changed = true;
          }
        }
        if (changed) {
          tables_ = std::move(next);
          generation_.fetch_add(1, std::memory_order_acq_rel);
        }
      }
    }
    impl_->poll.expires_after(milliseconds(200));
    impl_->poll.async_wait([weak](error_code ec) {
      if (ec) return;
      if (auto f = weak.lock()) (*f)();
    });
  };
  asio::post(impl_->io, [tick] { (*tick)(); });
  thread_ = std::thread([this, tick] {  // `tick` lives as long as the thread
    impl_->io.run();
    (void)tick;
  });
}

void HealthChecker::stop() {
  impl_->io.stop();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const HealthTable> HealthChecker::table(const std::string& cluster) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tables_.find(cluster);
  return it == tables_.end() ? nullptr : it->second;
}

}  // namespace gantry::upstream
