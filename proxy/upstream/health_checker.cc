#include "proxy/upstream/health_checker.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <functional>
#include <random>

#include "proxy/control/config_store.h"

namespace gantry::upstream {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;

namespace {

auto awaitable_ec(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

bool expected(const snapshot::HealthCheck& c, int status) {
  if (c.expected_statuses.empty()) return status >= 200 && status < 400;
  for (int s : c.expected_statuses)
    if (s == status) return true;
  return false;
}

// One GET; true when the status is expected. Never throws.
asio::awaitable<bool> check_once(const snapshot::HealthCheck& c, const snapshot::Endpoint& ep,
                                 const std::string& host) {
  auto ex = co_await asio::this_coro::executor;
  tcp::socket sock(ex);
  asio::steady_timer timer(ex);
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
    co_await asio::async_write(sock, asio::buffer(req), awaitable_ec(ec));
    std::string buf;
    char chunk[512];
    while (!ec && !expired && buf.find("\r\n") == std::string::npos && buf.size() < 4096) {
      size_t n = co_await sock.async_read_some(asio::buffer(chunk), awaitable_ec(ec));
      if (!ec) buf.append(chunk, n);
    }
    // "HTTP/1.x NNN ..."
    if (buf.size() >= 12 && buf.compare(0, 7, "HTTP/1.") == 0 && buf[8] == ' ') {
      int s = 0;
      for (int i = 9; i < 12; ++i)
        s = (buf[i] >= '0' && buf[i] <= '9') ? s * 10 + (buf[i] - '0') : -1000;
      status = s;
    }
  }
  timer.cancel();
  error_code ignore;
  sock.close(ignore);
  co_return !expired && status > 0 && expected(c, status);
}

asio::awaitable<void> probe(std::shared_ptr<HealthTable> t, size_t i, snapshot::Endpoint ep, uint64_t seed) {
  auto ex = co_await asio::this_coro::executor;
  asio::steady_timer timer(ex);
  std::mt19937_64 rng(seed);
  const auto& c = t->config;
  int64_t interval = std::max<int64_t>(1, c.interval.count());
  timer.expires_after(milliseconds(static_cast<int64_t>(rng() % static_cast<uint64_t>(interval))));
  error_code ec;
  co_await timer.async_wait(awaitable_ec(ec));
  uint32_t ok_run = 0, fail_run = 0;
  while (!t->stopped.load(std::memory_order_relaxed)) {
    bool ok = co_await check_once(c, ep, t->keys[i]);
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
  asio::steady_timer poll{io};
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
          if (it != tables_.end() && it->second->config == *hc && it->second->keys == c->keys) {
            next.emplace(name, it->second);
            continue;
          }
          auto t = std::make_shared<HealthTable>(*hc, c->keys);
          for (size_t i = 0; i < c->endpoints.size(); ++i)
            asio::co_spawn(impl_->io, probe(t, i, c->endpoints[i], impl_->rng()), asio::detached);
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
