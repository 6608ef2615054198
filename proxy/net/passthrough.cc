#include "proxy/net/passthrough.h"

#include <boost/asio/co_spawn.hpp>
#include "proxy/base/aio.h"
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include "proxy/net/worker.h"

namespace gantry::net {

namespace {

constexpr int kMaxConnectTries = 3;
constexpr size_t kRelayChunk = 16 * 1024;

// Connects `up` to an endpoint of `c`: "" on success, else the result label.
aio::awaitable<const char*> connect_endpoint(Worker& w, SessionBase& s, const control::ClusterEndpoints& c,
                                              aio::tcp_socket& up) {
  std::vector<bool> unhealthy;
  bool masked = w.unhealthy_mask(c, unhealthy);
  if (masked) {  // fewer than half healthy: all of them (panic), as for requests
    size_t out = 0;
    for (bool u : unhealthy) out += u ? 1 : 0;
    if ((unhealthy.size() - out) * 2 < unhealthy.size()) masked = false;
  }
  const snapshot::LoadBalancer round_robin;
  size_t exclude = static_cast<size_t>(-1);
  const char* result = "no_endpoint";
  for (int attempt = 0; attempt < kMaxConnectTries; ++attempt) {
    auto picked = w.pick_endpoint(c, exclude, round_robin, upstream::PickContext{}, {},
                                  masked ? &unhealthy : nullptr);
    if (!picked) break;
    const auto& ep = c.endpoints[picked->index];
    error_code ec;
    auto addr = asio::ip::make_address(ep.address, ec);
    if (!ec) {
      up.open(addr.is_v6() ? tcp::v6() : tcp::v4(), ec);
      if (!ec) {
        s.arm(up, w.server().options().upstream_connect_timeout);
        co_await up.async_connect(tcp::endpoint(addr, ep.port), awaitable_ec(ec));
        s.disarm();
      }
    }
    if (!ec) co_return "";
    w.metrics().upstream_error(c.name, s.timed_out ? "connect_timeout" : "connect");
    result = "connect_failed";
    error_code ignore;
    up.close(ignore);
    exclude = picked->index;
  }
  co_return result;
}

}  // namespace

aio::awaitable<void> relay_passthrough(Worker& w, SessionBase& s, aio::tcp_socket& client, std::string hello,
                                        std::string cluster) {
  auto& metrics = w.metrics();
  aio::tcp_socket up(w.io());
  const char* failed = "no_endpoint";
  {
    // The Config is pinned while the endpoint is chosen and connected to only.
    std::shared_ptr<const control::Config> cfg = w.view().get();
    const control::ClusterEndpoints* c = cfg ? cfg->cluster(cluster) : nullptr;
    if (c != nullptr) {
      w.forget_stale_clusters(cfg.get());
      failed = co_await connect_endpoint(w, s, *c, up);
    }
  }
  metrics.passthrough_result(cluster, *failed ? failed : "relayed");
  error_code ec;
  if (*failed) {
    spdlog::warn("passthrough to {}: {}", cluster, failed);
    client.close(ec);
    co_return;
  }
  set_nodelay(up);
  auto& m = metrics.global();
  m.passthrough_active.Increment();
  co_await asio::async_write(up, asio::buffer(hello), awaitable_ec(ec));
  if (!ec) m.passthrough_bytes_to_upstream.Increment(static_cast<double>(hello.size()));
  hello = std::string();

  const auto idle = w.server().options().passthrough_idle_timeout;
  Clock::time_point last = Clock::now();  // the last byte relayed, either way
  bool reset = !!ec;                      // a side failed: both end
  bool timed_out = false;
  bool finished = false;  // both directions ended: the watchdog stops
  bool to_client_done = false, watch_done = false;  // the spawned coroutines
  aio::steady_timer done(w.io(), Clock::time_point::max());  // woken as each one finishes
  auto end_both = [&] {
    error_code ignore;
    client.cancel(ignore);
    up.cancel(ignore);
  };
  auto pump = [&](aio::tcp_socket& from, aio::tcp_socket& to, prometheus::Counter& relayed) -> aio::awaitable<void> {
    std::unique_ptr<char[]> buf(new char[kRelayChunk]);
    error_code e;
    while (!reset) {
      size_t n = co_await from.async_read_some(asio::buffer(buf.get(), kRelayChunk), awaitable_ec(e));
      if (e == asio::error::eof) {
        to.shutdown(aio::tcp_socket::shutdown_send, e);  // half-close: the other direction goes on
        co_return;
      }
      if (e) break;
      last = Clock::now();
      co_await asio::async_write(to, asio::buffer(buf.get(), n), awaitable_ec(e));
      if (e) break;
      last = Clock::now();
      relayed.Increment(static_cast<double>(n));
    }
    reset = true;
    end_both();
  };
  // One timer per relayed connection, woken once per idle period (not per
  // read): it ends both directions when nothing moved for `idle`, a write
  // the peer never takes included.
  aio::steady_timer watchdog(w.io());
  auto watch = [&]() -> aio::awaitable<void> {
    while (!finished) {
      watchdog.expires_at(last + idle);
      error_code e;
      co_await watchdog.async_wait(awaitable_ec(e));
      if (!finished && Clock::now() >= last + idle) {
        timed_out = reset = true;
        end_both();
        co_return;
      }
    }
  };
  if (!reset) {
    asio::co_spawn(w.io(), watch(), [&](std::exception_ptr) {
      watch_done = true;
      done.cancel();
    });
    asio::co_spawn(w.io(), pump(up, client, m.passthrough_bytes_to_client), [&](std::exception_ptr) {
      to_client_done = true;
      done.cancel();
    });
    co_await pump(client, up, m.passthrough_bytes_to_upstream);
    while (!to_client_done) {
      error_code ignore;
      co_await done.async_wait(awaitable_ec(ignore));
    }
    finished = true;
    watchdog.cancel();
    while (!watch_done) {
      error_code ignore;
      co_await done.async_wait(awaitable_ec(ignore));
    }
  }
  const char* how = timed_out ? "idle_timeout" : reset ? "reset" : "closed";
  m.passthrough_closed.Add({{"reason", how}}).Increment();
  m.passthrough_active.Decrement();
  up.close(ec);
  client.close(ec);
}

}  // namespace gantry::net
