// A worker of the data plane: one thread, its io_context and listeners, its
// pooled upstream connections (HTTP/1.1, per endpoint), its load-balancer,
// breaker, outlier and health-check views, and the list of its sessions whose
// deadlines one sweep timer enforces. Everything here is used from the
// worker's thread only. The HTTP/1.1 codec (net/server.cc) and the exchange
// driver (net/exchange_driver.h) run on it.
#pragma once

#include <sys/socket.h>
#include <time.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream.hpp>
#include "proxy/base/aio.h"
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "proxy/base/last_hit_map.h"
#include "proxy/base/peek.h"
#include "proxy/net/buffer.h"
#include "proxy/net/ext_auth_client.h"
#include "proxy/net/h2_listener.h"
#include "proxy/net/h2_upstream.h"
#include "proxy/net/request_mirror.h"
#include "proxy/net/server.h"
#include "proxy/net/wire.h"
#include "proxy/ratelimit/redis_store.h"
#include "proxy/resilience/retry.h"
#include "proxy/upstream/cluster_state.h"
#include "proxy/upstream/health_checker.h"
#include "proxy/upstream/load_balancer.h"

namespace gantry::net {

using Clock = std::chrono::steady_clock;

// steady_clock's time as of the kernel's last timer tick (CLOCK_MONOTONIC_
// COARSE, steady_clock's own clock read without the TSC: a copy in the vDSO,
// at most a tick, a few milliseconds, behind). For the pool's idle
// bookkeeping, whose limits are a second and more; every request's
// timestamps stay on Clock::now().
inline Clock::time_point coarse_now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return Clock::time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

constexpr size_t kReadChunk = 16 * 1024;
constexpr std::chrono::milliseconds kProbeIdleAfter{1000};

// Is an idle pooled connection still usable? A peer that closed it, or sent
// bytes nobody asked for, makes it unusable.
inline bool idle_connection_alive(aio::tcp_socket& s) { return nothing_to_read(s.native_handle()); }


// TLS to a backend (a cluster with `tls`): OpenSSL over the connection's own socket.
using UpstreamTlsStream = asio::ssl::stream<aio::tcp_socket&>;

struct UpstreamConn {
  explicit UpstreamConn(asio::io_context& io) : sock(io) {}
  UpstreamConn(const UpstreamConn&) = delete;
  UpstreamConn& operator=(const UpstreamConn&) = delete;
  ~UpstreamConn() {
    if (limit) limit->limits.connections.release();
  }
  aio::tcp_socket sock;
  // TLS clusters: the stream every read and write goes through (after `sock`:
  // destroyed first), and the context it was made from (kept alive with it).
  std::shared_ptr<const tls::UpstreamTlsContext> tls_ctx;
  std::unique_ptr<UpstreamTlsStream> tls;
  std::shared_ptr<upstream::Breaker> limit;  // counts this connection in its cluster's maxConnections
  Buffer buf{kReadChunk};
  std::string key;
  bool reused = false;
  Clock::time_point idle_since;
};

// What a worker needs to know of a session of any stream type.
// Sessions of a worker form an intrusive list (no allocation per request)
// that the worker's sweeper walks every kSweepInterval to enforce deadlines:
// one timer per worker instead of one timer operation per read.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  virtual void close_if_idle() = 0;
  virtual void wait_parked() {}  // a parked session's wait for its next request
  virtual void release_driver() {}  // idle: its exchange driver back to the worker's spares

  SessionBase* prev = nullptr;
  SessionBase* next = nullptr;
  Clock::time_point deadline = Clock::time_point::max();
  aio::tcp_socket* deadline_socket = nullptr;  // cancelled when the deadline passes
  bool timed_out = false;
  bool idle = false;  // waiting for the next request with nothing buffered
  const ListenerTag* tag = nullptr;  // the listener it came in on
  Clock::time_point idle_since;
  bool can_release = false;      // plain TCP (a TLS stream keeps its engine's buffers anyway)
  bool release_buffers = false;  // set by the sweeper: give the idle read buffer back
  bool released = false;         // the buffers are given back (until the next request)
  bool parked = false;           // no coroutine: a reactor wait holds it (Session::park)
  bool ended = false;            // counted as ended (Worker::session_ended)

  // One deadline at a time: when it passes, the worker's sweep sets
  // timed_out and cancels `s`'s pending operations.
  void arm(aio::tcp_socket& s, std::chrono::milliseconds d) {
    timed_out = false;
    deadline = Clock::now() + d;
    deadline_socket = &s;
  }
  void disarm() {
    deadline = Clock::time_point::max();
    deadline_socket = nullptr;
  }
};

constexpr std::chrono::milliseconds kSweepInterval{100};

// Opens, binds (SO_REUSEADDR + SO_REUSEPORT: every worker binds the same
// address, the kernel spreads connections) and listens. Errors name `what`.
inline Status bind_acceptor(aio::tcp_acceptor& acc, const tcp::endpoint& ep, const std::string& what) {
  error_code ec;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(aio::tcp_acceptor::reuse_address(true), ec);
  if (!ec) {
    int one = 1;
    if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
      ec = error_code(errno, boost::system::system_category());
  }
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(4096, ec);
  if (ec) {
    error_code ignore;
    acc.close(ignore);
    return Error{"cannot listen on " + what + ": " + ec.message()};
  }
  return ok_status();
}

// A listener of the snapshot on one worker.
// The proxy's own listeners (flags, not the snapshot's): --http-listen,
// --https-listen, --h2c-listen.
enum class OwnListener { kPlain, kTls, kH2c };

struct SnapshotListener {
  explicit SnapshotListener(asio::io_context& io) : acc(io) {}
  aio::tcp_acceptor acc;
  bool tls = false;
  std::shared_ptr<const ListenerTag> tag;
};

class ExchangeDriver;
// The exchange drivers of finished HTTP/2 streams, kept for the next streams
// of the worker (take_driver() in exchange_driver.cc): a stream then starts
// with buffers already grown instead of allocating a driver of its own.
// The list is a stack: the most recently returned driver goes out first, so
// its bottom holds the ones longest unused. trim() (the worker's sweep, once
// a second) deletes as many as the list never went below since the last
// trim: a burst's drivers go once the load falls, a steady load keeps its own.
class SpareDrivers {
 public:
  SpareDrivers() = default;
  SpareDrivers(const SpareDrivers&) = delete;
  SpareDrivers& operator=(const SpareDrivers&) = delete;
  ~SpareDrivers();  // exchange_driver.cc
  std::vector<ExchangeDriver*> free;
  size_t low_water = 0;  // the fewest spares since the last trim()
  void trim();           // exchange_driver.cc
};

class Worker {
 public:
  Worker(Server& server, int id)
      : server_(server),
        id_(id),
        io_(1),
        acceptor_(io_),
        tls_acceptor_(io_),
        h2c_acceptor_(io_),
        view_(server.store_),
        metrics_(server.metrics_),
        h2_(io_, server.opts_, metrics_, server.log_, connections_, [&server] { return server.draining(); }) {}

  // Binds one of this worker's own listeners: plain (HTTP/1.1 and h2c),
  // TLS, or h2c only. Every worker binds the same port with SO_REUSEPORT;
  // the kernel spreads connections.
  Status listen(const HostPort& hp, uint16_t port_override, OwnListener which) {
    error_code ec;
    auto addr = asio::ip::make_address(hp.host, ec);
    if (ec) return Error{"listen address \"" + hp.host + "\" is not an IP address"};
    tcp::endpoint ep(addr, port_override ? port_override : hp.port);
    return bind_acceptor(acceptor(which), ep, hp.str());
  }
  uint16_t bound_port(OwnListener which) {
    error_code ec;
    return acceptor(which).local_endpoint(ec).port();
  }

  void start() {
    sweep();
    asio::co_spawn(io_, accept_loop(acceptor_, false, server_.http_tag_), asio::detached);
    if (tls_acceptor_.is_open())
      asio::co_spawn(io_, accept_loop(tls_acceptor_, true, server_.https_tag_), asio::detached);
    if (h2c_acceptor_.is_open()) asio::co_spawn(io_, accept_h2c(server_.h2c_tag_), asio::detached);
  }
  // A snapshot listener bound for this worker starts accepting (on its thread).
  void open_listener(std::shared_ptr<SnapshotListener> l) {
    asio::post(io_, [this, l = std::move(l)] {
      snapshot_listeners_[l->tag->name] = l;
      asio::co_spawn(io_, [this, l]() -> aio::awaitable<void> {
        co_await accept_loop(l->acc, l->tls, l->tag);
      }, asio::detached);
    });
  }
  // Stops accepting on a snapshot listener and closes its connections at
  // their next request boundary (ListenerTag::closed).
  void close_listener(const std::string& name);
  void run() {
    ExtAuthClient::attach(io_);  // extAuth calls of this thread use io_ and its own pooled connections
    ratelimit::WorkerBinding store_connections(io_);  // global rate limits' Redis connections
    io_.run();
    ExtAuthClient::detach();
    server_.log().flush_thread();  // this worker's last access-log lines
  }
  void stop_accepting() {
    asio::post(io_, [this] {
      error_code ec;
      acceptor_.close(ec);
      tls_acceptor_.close(ec);
      h2c_acceptor_.close(ec);
      for (auto& [name, l] : snapshot_listeners_) l->acc.close(ec);
      snapshot_listeners_.clear();
    });
  }
  void close_idle();  // closes keep-alive connections waiting for a request, drains HTTP/2 ones
  void begin_drain() {  // HTTP/2 connections: the two-step GOAWAY
    asio::post(io_, [this] { h2_.drain_all(); });
  }
  H2Connections& h2() { return h2_; }
  SpareDrivers& spare_drivers() { return spare_drivers_; }
  void stop() {
    asio::post(io_, [this] {
      error_code ec;
      sweep_timer_.cancel(ec);
    });
    io_.stop();
  }

  ~Worker() { alive_->store(false); }

  asio::io_context& io() { return io_; }
  // False once the worker is being destroyed: another worker's cache fill
  // must not post to this io_context any more.
  const std::shared_ptr<std::atomic<bool>>& alive() const { return alive_; }
  RequestMirror::Options mirror_options() const {
    RequestMirror::Options o;
    o.h2_keepalive_interval = server_.options().upstream_h2_keepalive_interval;
    o.h2_keepalive_timeout = server_.options().upstream_h2_keepalive_timeout;
    return o;
  }
  RequestMirror& mirror() {
    if (!mirror_)
      mirror_ = std::make_unique<RequestMirror>(io_, metrics_, mirror_options());
    return *mirror_;
  }
  // Drops this worker's per-cluster state of clusters that are not in `cfg`
  // (balancers, health views, shared-state handles). One compare unless a new
  // Config was published since the last call.
  void forget_stale_clusters(const control::Config* cfg) {
    if (cfg->version == pruned_version_) return;
    pruned_version_ = cfg->version;
    auto gone = [cfg](const auto& kv) { return cfg->clusters.count(kv.first) == 0; };
    lbs_.erase_if(gone);
    std::erase_if(health_, gone);
    std::erase_if(states_, gone);
    std::unordered_set<std::string_view> used;
    for (const auto& [name, lb] : lbs_)
      for (const auto& k : lb.keys) used.insert(k);
    // In-flight requests hold pointers to their endpoint's counter: only idle counters go.
    std::erase_if(active_,
                  [&](const auto& kv) { return kv.second == 0 && used.count(kv.first) == 0; });
  }
  Server& server() { return server_; }
  control::ConfigView& view() { return view_; }
  admin::WorkerMetrics& metrics() { return metrics_; }
  std::atomic<size_t>& connections() { return connections_; }
  void link(SessionBase* s) {
    s->next = sessions_;
    if (sessions_) sessions_->prev = s;
    sessions_ = s;
  }
  void unlink(SessionBase* s) {
    if (s->prev) s->prev->next = s->next;
    else sessions_ = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = nullptr;
  }

  // Per-worker endpoint choice within a cluster (no locks: one thread).
  // `exclude`: the endpoint of the failed try, avoided when another exists.
  // `sticky`: a session cookie's value; the endpoint it names wins while healthy.
  struct Picked {
    size_t index = 0;
    uint32_t* active = nullptr;  // this worker's in-flight requests on the endpoint
    const std::string* cookie = nullptr;  // the endpoint's session-cookie value
  };
  std::optional<Picked> pick_endpoint(const control::ClusterEndpoints& c, size_t exclude,
                                      const snapshot::LoadBalancer& cfg, const upstream::PickContext& ctx,
                                      std::string_view sticky, const std::vector<bool>* ejected) {
    auto& lb = lbs_[c.name];
    if (lb.seen != &c || lb.hosts.size() != c.endpoints.size()) {
      lb.seen = &c;
      if (lb.keys != c.keys) {  // the endpoint list changed: rebuild what depends on it
        lb.keys = c.keys;
        lb.maglev.reset();
        lb.cookies.clear();
        lb.active.clear();
        for (const auto& k : c.keys) {
          char buf[24];
          std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(upstream::hash_key(k)));
          lb.cookies.emplace_back(buf);
          lb.active.push_back(&active_[k]);
        }
      }
      lb.hosts.clear();
      for (size_t i = 0; i < c.endpoints.size(); ++i)
        lb.hosts.push_back({static_cast<uint32_t>(i), 1, 0, true});
    }
    if (lb.hosts.empty()) return std::nullopt;
    if (ejected != nullptr)  // outlier detection: ejected endpoints are not candidates
      for (size_t i = 0; i < lb.hosts.size() && i < ejected->size(); ++i) lb.hosts[i].healthy = !(*ejected)[i];
    if (exclude < lb.hosts.size() && lb.hosts.size() > 1) lb.hosts[exclude].healthy = false;
    std::optional<uint32_t> pick;
    if (!sticky.empty()) {
      for (size_t i = 0; i < lb.cookies.size(); ++i)
        if (lb.hosts[i].healthy && lb.cookies[i] == sticky) pick = static_cast<uint32_t>(i);
    }
    if (!pick) {
      upstream::LoadBalancer* b = nullptr;
      switch (cfg.type) {
        case snapshot::LoadBalancerType::kRoundRobin:
          if (!lb.rr) lb.rr = upstream::make_round_robin();
          b = lb.rr.get();
          break;
        case snapshot::LoadBalancerType::kLeastRequest:
          if (!lb.least) lb.least = upstream::make_least_request(rng_());
          for (size_t i = 0; i < lb.hosts.size(); ++i) lb.hosts[i].active_requests = *lb.active[i];
          b = lb.least.get();
          break;
        case snapshot::LoadBalancerType::kRandom:
          if (!lb.random) lb.random = upstream::make_random(rng_());
          b = lb.random.get();
          break;
        case snapshot::LoadBalancerType::kConsistentHash:
          if (!lb.maglev) lb.maglev = upstream::make_maglev(lb.keys, rng_());
          b = lb.maglev.get();
          break;
      }
      pick = b->pick(lb.hosts, ctx);
    }
    if (exclude < lb.hosts.size()) lb.hosts[exclude].healthy = true;
    if (ejected != nullptr)
      for (auto& h : lb.hosts) h.healthy = true;
    if (!pick || *pick >= lb.hosts.size()) return std::nullopt;
    return Picked{*pick, lb.active[*pick], &lb.cookies[*pick]};
  }

  // Per-cluster state shared by the workers (retry budget), cached per worker.
  // A request keeps its own reference: forget_stale_clusters() may drop the cache's.
  const std::shared_ptr<upstream::ClusterState>& cluster_state(const std::string& name) {
    auto it = states_.find(name);
    if (it == states_.end()) it = states_.emplace(name, upstream::ClusterRegistry::global().get(name)).first;
    return it->second;
  }
  // The circuit breaker of (cluster, circuitBreaker config) for the backend
  // ref `ref` of a rule of Config `cfg`; null when the config is invalid.
  const std::shared_ptr<upstream::Breaker>& breaker(const control::Config* cfg, const void* ref,
                                                    const std::string& cluster,
                                                    const snapshot::CircuitBreaker& c) {
    sync_config(cfg);
    auto it = breakers_.find(ref);
    if (it == breakers_.end() || !it->second || !(it->second->config == c))
      it = breakers_.insert_or_assign(ref, upstream::ClusterRegistry::global().breaker(cluster, c)).first;
    return it->second;
  }
  // The outlier detector of (cluster, outlierDetection config) for backend ref `ref`.
  const std::shared_ptr<upstream::Outlier>& outlier(const control::Config* cfg, const void* ref,
                                                    const std::string& cluster,
                                                    const snapshot::OutlierDetection& c) {
    sync_config(cfg);
    auto it = outliers_.find(ref);
    if (it == outliers_.end() || !it->second || !(it->second->config == c))
      it = outliers_.insert_or_assign(ref, upstream::ClusterRegistry::global().outlier(cluster, c)).first;
    return it->second;
  }
  // Marks in `out` (per endpoint of `c`) the endpoints the active health
  // checker holds unhealthy; false when `c` has no health check. Lock-free
  // unless the checker published new tables since the last call.
  bool unhealthy_mask(const control::ClusterEndpoints& c, std::vector<bool>& out) {
    auto& h = health_[c.name];
    uint64_t g = server_.health_->generation();
    if (g != h.generation) {
      h.generation = g;
      h.table = server_.health_->table(c.name);
      h.mapped = nullptr;
    }
    if (!h.table) return false;
    if (h.mapped != &c || h.map.size() != c.keys.size()) {
      h.mapped = &c;
      h.map.assign(c.keys.size(), -1);
      for (size_t i = 0; i < c.keys.size(); ++i)
        for (size_t j = 0; j < h.table->keys.size(); ++j)
          if (h.table->keys[j] == c.keys[i]) h.map[i] = static_cast<int32_t>(j);
    }
    out.resize(c.keys.size());
    for (size_t i = 0; i < c.keys.size(); ++i)
      out[i] = out[i] || (h.map[i] >= 0 && !h.table->healthy[h.map[i]].load(std::memory_order_relaxed));
    return true;
  }
  void sync_config(const control::Config* cfg) {
    if (cfg != retry_cfg_) {
      retry_policies_.clear();
      breakers_.clear();
      outliers_.clear();
      retry_cfg_ = cfg;
    }
  }
  // The compiled retry policy of a rule of Config `cfg`; nullptr when invalid.
  const resilience::RetryPolicy* retry_policy(const control::Config* cfg, const snapshot::Retry& r) {
    sync_config(cfg);
    auto it = retry_policies_.find(&r);
    if (it != retry_policies_.end() && !(it->second.config() == r)) {
      retry_policies_.erase(it);
      it = retry_policies_.end();
    }
    if (it == retry_policies_.end()) {
      auto p = resilience::RetryPolicy::create(r);
      if (!p.ok()) return nullptr;
      it = retry_policies_.emplace(&r, std::move(p).value()).first;
    }
    return &it->second;
  }
  uint64_t random() { return rng_(); }
  // A session gave its idle buffers back; the sweep returns the freed pages
  // to the system (at most once a second), since glibc keeps freed chunks
  // between live ones otherwise.
  void note_release() { ++released_since_trim_; }

  // `replayable`: the request can be sent again if the connection turns out to
  // be closed (the caller retries once on a fresh one). Such a request skips
  // the liveness probe (a syscall) on connections idle for less than
  // kProbeIdleAfter: a backend closing one in that window is rare and cheap.
  std::unique_ptr<UpstreamConn> take_idle(const std::string& key, bool replayable) {
    auto* found = idle_.find(key);
    if (found == nullptr) return nullptr;
    auto& v = *found;
    const auto now = coarse_now();
    while (!v.empty()) {
      auto c = std::move(v.back());
      v.pop_back();
      // Backends close idle keep-alive connections on their own schedule;
      // never reuse one older than --upstream-idle-timeout.
      const auto idle = now - c->idle_since;
      if (idle >= server_.options().upstream_idle_timeout) continue;
      if ((replayable && idle < kProbeIdleAfter) || idle_connection_alive(c->sock)) {
        c->reused = true;
        return c;
      }
    }
    return nullptr;
  }
  void drop_idle(const std::string& key) { idle_.erase(key); }
  void give_back(std::unique_ptr<UpstreamConn> c) {
    if (server_.draining()) return;
    auto& v = idle_[c->key];
    c->idle_since = coarse_now();
    if (v.size() < server_.options().upstream_max_idle_per_endpoint) v.push_back(std::move(c));
  }

 private:
  aio::awaitable<void> accept_loop(aio::tcp_acceptor& acc, bool tls,
                                    std::shared_ptr<const ListenerTag> tag);
  // --h2c-listen: each connection goes straight to the HTTP/2 codec.
  aio::awaitable<void> accept_h2c(std::shared_ptr<const ListenerTag> tag);
  aio::tcp_acceptor& acceptor(OwnListener which) {
    return which == OwnListener::kTls ? tls_acceptor_ : which == OwnListener::kH2c ? h2c_acceptor_ : acceptor_;
  }
  template <class Stream>
  void spawn_session(Stream stream, std::shared_ptr<const ListenerTag> tag);
  std::function<void(std::exception_ptr)> session_completion(std::shared_ptr<SessionBase> s);

 public:
  template <class S>
  void resume_session(std::shared_ptr<S> s);
  void session_ended(SessionBase& s);  // a connection's end, once: metrics and the worker's count

 private:

  Server& server_;
  int id_;
  asio::io_context io_;

 public:
  // HTTP/2 upstream connections (h2c clusters) per endpoint key, shared by
  // this worker's exchanges; dead ones are dropped when next looked at.
  // Declared after io_, so destroyed before it: a connection's socket and
  // timers deregister from io_'s reactor as they go.
  std::unordered_map<std::string, std::vector<std::shared_ptr<H2UpstreamConn>>> h2_upstreams;

 private:
  aio::tcp_acceptor acceptor_;
  aio::tcp_acceptor tls_acceptor_;
  aio::tcp_acceptor h2c_acceptor_;
  std::unordered_map<std::string, std::shared_ptr<SnapshotListener>> snapshot_listeners_;
  control::ConfigView view_;
  admin::WorkerMetrics metrics_;
  std::atomic<size_t> connections_{0};
  H2Connections h2_;  // HTTP/2 connections handed over by sessions (net/h2_listener.h)
  SessionBase* sessions_ = nullptr;
  aio::steady_timer sweep_timer_{io_};
  uint64_t sweeps_ = 0;
  uint64_t released_since_trim_ = 0;
  void sweep();
  void reap_idle(Clock::time_point now);
  LastHitMap<std::vector<std::unique_ptr<UpstreamConn>>> idle_;
  // One set of balancers per cluster; a rule's policy.loadBalancer.type picks
  // which one serves it (the state of each type is per cluster, per worker).
  struct ClusterLb {
    const control::ClusterEndpoints* seen = nullptr;
    std::vector<std::string> keys;       // the endpoint list the state below was built for
    std::vector<std::string> cookies;    // per endpoint: its session-cookie value
    std::vector<uint32_t*> active;       // per endpoint: into active_
    std::vector<upstream::HostView> hosts;
    std::unique_ptr<upstream::LoadBalancer> rr, least, random, maglev;
  };
  LastHitMap<ClusterLb> lbs_;
  std::unordered_map<std::string, uint32_t> active_;  // in-flight requests per endpoint key
  std::unordered_map<std::string, std::shared_ptr<upstream::ClusterState>> states_;
  const control::Config* retry_cfg_ = nullptr;
  std::unordered_map<const snapshot::Retry*, resilience::RetryPolicy> retry_policies_;
  std::unordered_map<const void*, std::shared_ptr<upstream::Breaker>> breakers_;  // by backend ref
  std::unordered_map<const void*, std::shared_ptr<upstream::Outlier>> outliers_;  // by backend ref
  struct HealthCache {
    uint64_t generation = ~0ull;
    std::shared_ptr<const upstream::HealthTable> table;
    const control::ClusterEndpoints* mapped = nullptr;
    std::vector<int32_t> map;  // endpoint index -> table index, -1: not checked
  };
  std::unordered_map<std::string, HealthCache> health_;  // by cluster name
  std::mt19937_64 rng_{std::random_device{}()};
  std::shared_ptr<std::atomic<bool>> alive_ = std::make_shared<std::atomic<bool>>(true);
  std::unique_ptr<RequestMirror> mirror_;  // filters.requestMirror copies, built on first use
  uint64_t pruned_version_ = ~0ull;
  // Last: destroyed first, while the session list the drivers' deadline
  // nodes unlink from is still there.
  SpareDrivers spare_drivers_;
};


}  // namespace gantry::net
