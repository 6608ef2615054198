#include "proxy/net/server.h"

#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <array>
#include <cstring>
#include <random>
#include <spdlog/spdlog.h>
#include <unordered_map>
#include <unordered_set>

#include "proxy/exchange/chain.h"
#include "proxy/exchange/exchange.h"
#include "proxy/filters/cache_control.h"
#include "proxy/filters/response_cache.h"
#include "proxy/filters/response_capture.h"
#include "proxy/http/message.h"
#include "proxy/http/parser.h"
#include "proxy/http/path.h"
#include "proxy/net/buffer.h"
#include "proxy/net/request_mirror.h"
#include "proxy/tls/tls_contexts.h"
#include "proxy/resilience/retry.h"
#include "proxy/upstream/cluster_state.h"
#include "proxy/upstream/health_checker.h"
#include "proxy/upstream/load_balancer.h"

namespace gantry::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using TlsStream = asio::ssl::stream<tcp::socket>;

namespace {

constexpr size_t kReadChunk = 16 * 1024;
constexpr uint64_t kGatherBody = 32 * 1024;  // response bodies gathered before the head goes out
constexpr size_t kMaxIdlePerEndpoint = 64;
constexpr int kMaxConnectAttempts = 3;
constexpr int kMaxStaleRetries = 2;
constexpr std::chrono::milliseconds kProbeIdleAfter{1000};
constexpr uint64_t kMaxReplayBody = 64 * 1024;  // request bodies buffered for retries
// A keep-alive connection idle this long gives its read buffer back (and
// waits for the next request with a one-byte read): an idle connection then
// holds about 1-2 KiB instead of ~17 KiB. Busy connections never pay for it.
constexpr std::chrono::milliseconds kReleaseIdleAfter{1000};

// The value of cookie `name` in a Cookie header value ("a=1; b=2").
std::optional<std::string_view> cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    auto semi = header.find(';');
    std::string_view item = header.substr(0, semi);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    auto eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name) return item.substr(eq + 1);
    if (semi == std::string_view::npos) break;
    header.remove_prefix(semi + 1);
  }
  return std::nullopt;
}

// One admitted request of a cluster's circuit breaker and its pending-request
// slot: the result is recorded when the exchange ends, from the status the
// client got (0: cancelled; 502/503/504: failure; else success).
class BreakerCall {
 public:
  BreakerCall() = default;
  BreakerCall(const BreakerCall&) = delete;
  BreakerCall& operator=(const BreakerCall&) = delete;
  ~BreakerCall() {
    release_pending();
    if (!admitted_) return;
    auto r = resilience::CallResult::kSuccess;
    if (*status_ == 0 || cancelled_) r = resilience::CallResult::kCancelled;
    else if (*status_ == 502 || *status_ == 503 || *status_ == 504) r = resilience::CallResult::kFailure;
    breaker_->breaker->record(admission_, r, std::chrono::steady_clock::now());
  }
  // Why the request may not go ("" when it may): pending limit or open circuit.
  std::string_view admit(std::shared_ptr<upstream::Breaker> b, const int* status) {
    breaker_ = std::move(b);
    status_ = status;
    if (!breaker_->limits.pending_requests.try_acquire()) return "pending-limit";
    pending_ = true;
    admission_ = breaker_->breaker->try_admit(std::chrono::steady_clock::now());
    if (!admission_.allowed) return "circuit-open";
    admitted_ = true;
    return {};
  }
  void release_pending() {
    if (pending_) breaker_->limits.pending_requests.release();
    pending_ = false;
  }
  void cancel() { cancelled_ = true; }
  const std::shared_ptr<upstream::Breaker>& breaker() const { return breaker_; }

 private:
  std::shared_ptr<upstream::Breaker> breaker_;
  resilience::Admission admission_;
  const int* status_ = nullptr;
  bool pending_ = false;
  bool admitted_ = false;
  bool cancelled_ = false;
};

// Counts one in-flight request on an endpoint (for the least-request
// balancer) while it lives; set() moves the count to another endpoint.
class ActiveRequest {
 public:
  ActiveRequest() = default;
  ActiveRequest(const ActiveRequest&) = delete;
  ActiveRequest& operator=(const ActiveRequest&) = delete;
  ~ActiveRequest() { set(nullptr); }
  void set(uint32_t* counter) {
    if (counter_ != nullptr) --*counter_;
    counter_ = counter;
    if (counter_ != nullptr) ++*counter_;
  }

 private:
  uint32_t* counter_ = nullptr;
};

auto awaitable_ec(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

// Fills `out` with 32 random hex digits.
void new_request_id(std::string& out) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  out.resize(32);
  uint64_t a = rng(), b = rng();
  for (int i = 0; i < 16; ++i) {
    out[i] = hex[(a >> (i * 4)) & 0xf];
    out[16 + i] = hex[(b >> (i * 4)) & 0xf];
  }
}

// True when `name` appears as a token of any Connection header (those headers
// are hop-by-hop for this message, RFC 9110 7.6.1).
bool named_by_connection(const std::vector<http::Header>& headers, std::string_view name) {
  for (const auto& h : headers) {
    if (!http::iequals(h.name, "connection")) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      auto comma = v.find(',');
      std::string_view tok = v.substr(0, comma);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (http::iequals(tok, name)) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

void append_header(std::string& out, std::string_view name, std::string_view value) {
  size_t at = out.size();
  out.resize(at + name.size() + value.size() + 4);
  char* p = out.data() + at;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p = '\n';
}

bool has_connection_header(const std::vector<http::Header>& headers) {
  for (const auto& h : headers)
    if (h.name.size() == 10 && http::iequals(h.name, "connection")) return true;
  return false;
}

// Writes as much as the socket takes now without blocking. Returns true when
// all of `data` went out (the common case: no coroutine suspension, no
// asynchronous operation); otherwise `data` keeps the rest for async_write.
bool try_write(tcp::socket& s, std::string_view& data, error_code& ec) {
  size_t n = s.write_some(asio::buffer(data.data(), data.size()), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) ec = {};
  data.remove_prefix(std::min(n, data.size()));
  return ec || data.empty();
}
bool try_write(TlsStream&, std::string_view&, error_code&) { return false; }

// Writes as much of `a` then `b` (either may be empty) as the socket takes now,
// in one gather write (sendmsg), so a small response head and its body leave
// in one syscall. Returns true when all went out (or on error); otherwise `a`
// and `b` keep the rest for write_rest. A plain function, not a coroutine: the
// common case allocates no coroutine frame.
bool try_write_two(tcp::socket& s, std::string_view& a, std::string_view& b, error_code& ec) {
  std::array<asio::const_buffer, 2> bufs{asio::buffer(a.data(), a.size()), asio::buffer(b.data(), b.size())};
  size_t n = s.write_some(bufs, ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again) {
    ec = {};
    n = 0;
  }
  if (ec || n == a.size() + b.size()) return true;
  if (n < a.size()) {
    a.remove_prefix(n);
  } else {
    b.remove_prefix(n - a.size());
    a = {};
  }
  return false;
}
bool try_write_two(TlsStream&, std::string_view&, std::string_view&, error_code&) { return false; }

template <class S>
asio::awaitable<void> write_rest(S& s, std::string_view a, std::string_view b, error_code& ec) {
  std::array<asio::const_buffer, 2> rest{asio::buffer(a.data(), a.size()), asio::buffer(b.data(), b.size())};
  co_await asio::async_write(s, rest, awaitable_ec(ec));
}

// RFC 9110 9.2.2: methods a client may repeat without changing the outcome.
bool idempotent_method(std::string_view m) {
  return m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "PUT" || m == "DELETE" || m == "TRACE";
}

// Is an idle pooled connection still usable? A peer that closed it, or sent
// bytes nobody asked for, makes it unusable.
bool idle_connection_alive(tcp::socket& s) {
  char b;
  ssize_t n = ::recv(s.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

tcp::socket& lowest(tcp::socket& s) { return s; }
tcp::socket& lowest(TlsStream& s) { return s.next_layer(); }

void set_nodelay(tcp::socket& s) {
  error_code ec;
  s.set_option(tcp::no_delay(true), ec);
}

// A GET on a rule with filters.cache that may store its response: the key,
// the leader's ticket (waiters wake when it is finished or destroyed), and
// the response as it is captured while relayed to the client.
struct CacheFill {
  std::shared_ptr<filters::ResponseCache> cache;
  snapshot::Cache config;
  std::string key;
  bool had_authorization = false;
  filters::FillTicket ticket;
  // Set when the response head says it may be stored:
  bool capturing = false;
  bool chunked = false;  // body holds the raw chunked framing until the end
  int status = 0;
  milliseconds ttl{0};
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> request_headers;  // those the response varies on
  std::string body;
};

}  // namespace

// ------------------------------------------------------------------ Worker

struct UpstreamConn {
  explicit UpstreamConn(asio::io_context& io) : sock(io) {}
  UpstreamConn(const UpstreamConn&) = delete;
  UpstreamConn& operator=(const UpstreamConn&) = delete;
  ~UpstreamConn() {
    if (limit) limit->limits.connections.release();
  }
  tcp::socket sock;
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

  SessionBase* prev = nullptr;
  SessionBase* next = nullptr;
  Clock::time_point deadline = Clock::time_point::max();
  tcp::socket* deadline_socket = nullptr;  // cancelled when the deadline passes
  bool timed_out = false;
  bool idle = false;  // waiting for the next request with nothing buffered
  Clock::time_point idle_since;
  bool can_release = false;      // plain TCP (a TLS stream keeps its engine's buffers anyway)
  bool release_buffers = false;  // set by the sweeper: give the idle read buffer back
  bool released = false;         // the buffers are given back (until the next request)
};

constexpr milliseconds kSweepInterval{100};

class Worker {
 public:
  Worker(Server& server, int id)
      : server_(server),
        id_(id),
        io_(1),
        acceptor_(io_),
        tls_acceptor_(io_),
        view_(server.store_),
        metrics_(server.metrics_) {}

  // Binds the plain (tls = false) or the TLS listener of this worker. Every
  // worker binds the same port with SO_REUSEPORT; the kernel spreads connections.
  Status listen(const HostPort& hp, uint16_t port_override, bool tls) {
    tcp::acceptor& acc = tls ? tls_acceptor_ : acceptor_;
    error_code ec;
    auto addr = asio::ip::make_address(hp.host, ec);
    if (ec) return Error{"listen address \"" + hp.host + "\" is not an IP address"};
    tcp::endpoint ep(addr, port_override ? port_override : hp.port);
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) {
      int one = 1;
      if (::setsockopt(acc.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        ec = error_code(errno, boost::system::system_category());
    }
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(4096, ec);
    if (ec) return Error{"cannot listen on " + hp.str() + ": " + ec.message()};
    return ok_status();
  }
  uint16_t bound_port(bool tls) const {
    error_code ec;
    return (tls ? tls_acceptor_ : acceptor_).local_endpoint(ec).port();
  }

  void start() {
    sweep();
    asio::co_spawn(io_, accept_loop(acceptor_, false), asio::detached);
    if (tls_acceptor_.is_open()) asio::co_spawn(io_, accept_loop(tls_acceptor_, true), asio::detached);
  }
  void run() {
    io_.run();
    server_.log().flush_thread();  // this worker's last access-log lines
  }
  void stop_accepting() {
    asio::post(io_, [this] {
      error_code ec;
      acceptor_.close(ec);
      tls_acceptor_.close(ec);
    });
  }
  void close_idle();  // closes keep-alive connections waiting for a request
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
  RequestMirror& mirror() {
    if (!mirror_)
      mirror_ = std::make_unique<RequestMirror>(io_, metrics_, RequestMirror::Options{});
    return *mirror_;
  }
  // Drops this worker's per-cluster state of clusters that are not in `cfg`
  // (balancers, health views, shared-state handles). One compare unless a new
  // Config was published since the last call.
  void forget_stale_clusters(const control::Config* cfg) {
    if (cfg->version == pruned_version_) return;
    pruned_version_ = cfg->version;
    auto gone = [cfg](const auto& kv) { return cfg->clusters.count(kv.first) == 0; };
    std::erase_if(lbs_, gone);
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
    auto it = idle_.find(key);
    if (it == idle_.end()) return nullptr;
    auto& v = it->second;
    const auto now = Clock::now();
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
    c->idle_since = Clock::now();
    if (v.size() < kMaxIdlePerEndpoint) v.push_back(std::move(c));
  }

 private:
  asio::awaitable<void> accept_loop(tcp::acceptor& acc, bool tls);
  template <class Stream>
  void spawn_session(Stream stream);

  Server& server_;
  int id_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  tcp::acceptor tls_acceptor_;
  control::ConfigView view_;
  admin::WorkerMetrics metrics_;
  std::atomic<size_t> connections_{0};
  SessionBase* sessions_ = nullptr;
  asio::steady_timer sweep_timer_{io_};
  uint64_t sweeps_ = 0;
  uint64_t released_since_trim_ = 0;
  void sweep();
  void reap_idle(Clock::time_point now);
  std::unordered_map<std::string, std::vector<std::unique_ptr<UpstreamConn>>> idle_;
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
  std::unordered_map<std::string, ClusterLb> lbs_;
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
};

// ------------------------------------------------------------------ Session

// One client connection. Owned by a shared_ptr so that timer handlers can
// outlive a phase safely (they check a generation number before acting).
template <class Stream>
class Session : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(Worker& w, Stream stream) : w_(w), client_(std::move(stream)) {
    can_release = !kTls;
    w_.link(this);
    error_code ec;
    auto ep = lowest(client_).remote_endpoint(ec);
    if (!ec) {
      auto a = ep.address();
      peer_ip_ = a.is_v6() && a.to_v6().is_v4_mapped()
                     ? asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string()
                     : a.to_string();
    }
    set_nodelay(lowest(client_));
    lowest(client_).non_blocking(true, ec);
  }
  ~Session() override { w_.unlink(this); }

  asio::awaitable<void> run() {
    if constexpr (kTls) {
      error_code ec;
      arm(lowest(client_), w_.server().options().request_header_timeout);
      co_await client_.async_handshake(asio::ssl::stream_base::server, awaitable_ec(ec));
      disarm();
      if (ec) {
        error_code ignore;
        lowest(client_).close(ignore);
        co_return;
      }
    }
    bool first = true;
    while (true) {
      bool keep = co_await handle_one(first);
      first = false;
      if (!keep || client_broken_) break;
    }
    error_code ec;
    lowest(client_).shutdown(tcp::socket::shutdown_send, ec);
    lowest(client_).close(ec);
  }

  // The client's address for rate limiting: the peer, or, when the peer is a
  // trusted proxy, the right-most X-Forwarded-For entry that is not trusted.
  std::string_view client_ip() {
    const auto& trusted = w_.server().options().trusted_proxies;
    if (trusted.empty() || !contains(trusted, peer_ip_)) return peer_ip_;
    auto xff = http::find_header(req_.headers, "x-forwarded-for");
    if (!xff) return peer_ip_;
    std::string_view list = *xff;
    while (!list.empty()) {
      auto comma = list.rfind(',');
      std::string_view item = comma == std::string_view::npos ? list : list.substr(comma + 1);
      while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
      while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
      if (!item.empty() && !contains(trusted, item)) return item;
      if (comma == std::string_view::npos) return item.empty() ? std::string_view(peer_ip_) : item;
      list = list.substr(0, comma);
    }
    return peer_ip_;
  }

  void close_if_idle() override {
    error_code ec;
    lowest(client_).cancel(ec);
    closing_ = true;
  }

 private:
  // ---- timers
  void arm(tcp::socket& s, milliseconds d) {
    timed_out = false;
    deadline = Clock::now() + d;
    deadline_socket = &s;
  }
  void disarm() {
    deadline = Clock::time_point::max();
    deadline_socket = nullptr;
  }

  // Reads what is there (at least one byte) into `b`, waiting up to `timeout`.
  // Asio tries the read at once and queues it on EAGAIN. (Measured: a sync read
  // then async_wait costs more, because every non-speculative wait re-arms the
  // descriptor with epoll_ctl.)
  template <class S>
  asio::awaitable<size_t> read_some(S& s, Buffer& b, milliseconds timeout, error_code& ec) {
    char* p = b.prepare(kReadChunk);
    arm(lowest(s), timeout);
    size_t n = co_await s.async_read_some(asio::buffer(p, b.writable()), awaitable_ec(ec));
    disarm();
    if (!ec) b.commit(n);
    co_return n;
  }

  // ---- the gateway's own answers
  asio::awaitable<void> local_reply(int status, std::string_view body, bool close,
                                    std::string_view extra_headers = {}) {
    out_.clear();
    out_.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reason_phrase(status));
    bool no_body = status == 204 || status == 304;
    if (no_body) {
      out_.append("\r\nx-request-id: ").append(request_id_);
    } else {
      out_.append("\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
      out_.append(std::to_string(body.size() + 1)).append("\r\nx-request-id: ").append(request_id_);
    }
    out_.append("\r\n");
    out_.append(extra_headers);
    if (close) out_.append("connection: close\r\n");
    out_.append("\r\n");
    if (!no_body) out_.append(body).append("\n");
    status_ = status;
    error_code ec;
    {
      std::string_view pending(out_);
      if (!try_write(client_, pending, ec))
        co_await asio::async_write(client_, asio::buffer(pending.data(), pending.size()), awaitable_ec(ec));
    }
    if (ec) client_broken_ = true;
    bytes_out_ += out_.size();
  }

  // A LocalReply (a filter's answer) in HTTP/1.1 words.
  asio::awaitable<void> local_reply(const exchange::LocalReply& r, bool close) {
    reply_fields_.clear();
    for (const auto& [name, value] : r.headers) append_header(reply_fields_, name, value);
    if (!r.gateway_reason.empty()) append_header(reply_fields_, "x-gateway-reason", r.gateway_reason);
    co_await local_reply(r.status, r.body, close, reply_fields_);
  }

  // Reads and answers one request. Returns whether the connection stays open.
  asio::awaitable<bool> handle_one(bool first);
  asio::awaitable<bool> forward(const std::shared_ptr<const control::Config>& cfg,
                                const router::CompiledRule& cr, const http::Target& target,
                                std::string_view host, size_t matched_prefix);
  asio::awaitable<bool> relay_request_body(UpstreamConn& up, error_code& ec, bool& client_failed);
  // `sent`: Content-Length body bytes that already went out with the head.
  asio::awaitable<bool> relay_response_body(UpstreamConn& up, bool& upstream_reusable, uint64_t sent);
  asio::awaitable<void> tunnel(UpstreamConn& up, milliseconds idle_timeout);
  void finish_request();
  // The upstream ended a response before the body its framing promised
  // (EOF, reset, or no bytes within the timeout): counted, logged, and marked
  // on the access-log line. `got`: body bytes received; `want`: 0 if unknown.
  void upstream_truncated(bool timeout, uint64_t got, uint64_t want);

  // ---- response cache (filters.cache): lookup before the upstream phase,
  // capture while relaying, store at the end. Answers a hit itself: the
  // result is then whether the connection stays open.
  asio::awaitable<std::optional<bool>> cache_lookup(const control::RulePolicies& pol,
                                                    const http::Target& target,
                                                    std::string_view host, milliseconds wait_limit,
                                                    std::unique_ptr<CacheFill>& fill);
  asio::awaitable<bool> serve_cached(const filters::CachedResponse& r, const control::RulePolicies& pol);
  void cache_begin_fill(CacheFill& f, bool is_upgrade);
  void cache_capture(std::string_view bytes);
  void cache_end_fill(CacheFill& f, bool complete);
  // ---- request mirroring (filters.requestMirror): a copy of the upstream
  // request (out_ + a buffered body) handed to the worker's RequestMirror.
  void mirror_request(const snapshot::RequestMirror& m, const control::Config& cfg,
                      std::string_view upstream_host, http::BodyKind body_kind, bool body_buffered,
                      bool upgrade);

  Worker& w_;
  Stream client_;
  bool closing_ = false;
  bool client_broken_ = false;  // a write to the client failed: stop serving it
  std::string peer_ip_;

  Buffer in_{kReadChunk};
  std::string out_;
  http::RequestParser req_parser_;
  http::RequestHead req_;
  http::ResponseParser resp_parser_;
  http::ResponseHead resp_;
  http::ChunkedDecoder chunked_;
  bool dechunk_ = false;    // relaying a chunked response to an HTTP/1.0 client
  std::string dechunked_;   // its data, one read's worth at a time

  // per request
  Clock::time_point started_;
  std::string request_id_;
  std::string method_, host_, path_, route_label_, upstream_key_;
  int status_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
  double upstream_ms_ = -1;
  uint64_t req_body_left_ = 0;  // Content-Length body bytes still to relay
  exchange::Exchange ex_;              // the request's exchange context (filters' inputs and outputs)
  exchange::UpstreamRequest upreq_;   // the upstream request as the upstream-request filters leave it
  exchange::HeaderEdits resp_edits_;  // the response filters' edits of the answer's fields
  std::string reply_fields_;          // a LocalReply's fields, serialised
  std::vector<http::Header> cached_fields_;  // a cached answer's fields, for the response filters
  std::string sticky_;      // the request's session-cookie value
  std::vector<bool> ejected_;  // outlier detection: per endpoint, out of rotation
  std::string set_cookie_;  // a session cookie value to issue (consistent hash on a cookie)
  CacheFill* capture_ = nullptr;  // set while relay_response_body feeds a cache fill
  const std::string* cluster_ = nullptr;  // the chosen backend's cluster (lives in the pinned Config)
  const char* error_kind_ = nullptr;      // access-log "error": why the answer ended abnormally
};

template <class Stream>
asio::awaitable<bool> Session<Stream>::handle_one(bool first) {
  auto& opts = w_.server().options();
  milliseconds first_byte_timeout = first ? opts.request_header_timeout : opts.client_idle_timeout;
  req_parser_.reset();
  req_.clear();
  request_id_.clear();
  route_label_.clear();
  upstream_key_.clear();
  cluster_ = nullptr;
  error_kind_ = nullptr;
  status_ = 0;
  bytes_in_ = bytes_out_ = 0;
  upstream_ms_ = -1;

  // ---- read the head
  auto deadline = Clock::now() + first_byte_timeout;
  bool got_bytes = !in_.empty();
  if (got_bytes) deadline = Clock::now() + opts.request_header_timeout;
  while (true) {
    if (!in_.empty()) {
      auto st = req_parser_.parse(in_.view(), req_);
      if (st == http::ParseState::kComplete) break;
      if (st == http::ParseState::kError) {
        started_ = Clock::now();
        new_request_id(request_id_);
        const auto& e = req_parser_.error();
        co_await local_reply(e.status, e.reason, true);
        finish_request();
        co_return false;
      }
    }
    // While draining, a keep-alive connection is still served (its answers
    // carry Connection: close): closing it between requests races with a
    // request the client may already have sent. Idle ones are closed when the
    // drain window ends (close_if_idle sets closing_).
    if (closing_) co_return false;
    auto now = Clock::now();
    if (now >= deadline) {
      timed_out = true;
    } else {
      bool idle = in_.empty();
      this->idle = idle;
      if (idle) this->idle_since = now;
      error_code ec;
      // read_some(), inlined on this hot path: one coroutine frame fewer per request.
      char* p = in_.prepare(kReadChunk);
      arm(lowest(client_), std::chrono::duration_cast<milliseconds>(deadline - now));
      size_t n = co_await client_.async_read_some(asio::buffer(p, in_.writable()), awaitable_ec(ec));
      disarm();
      if (!ec) in_.commit(n);
      if (ec == asio::error::operation_aborted && release_buffers && !timed_out && !closing_) {
        // Idle for kReleaseIdleAfter: the sweeper cancelled the read so that
        // the buffers can go. Wait for the next request's first byte with a
        // one-byte read (Asio reads speculatively first, so a byte that came
        // meanwhile is not missed), then read on into a fresh buffer.
        release_buffers = false;
        released = true;
        w_.note_release();
        in_.release();
        std::string().swap(out_);
        std::string().swap(dechunked_);
        std::vector<http::Header>().swap(req_.headers);
        std::vector<http::Header>().swap(resp_.headers);
        std::vector<http::Header>().swap(cached_fields_);
        std::string().swap(reply_fields_);
        std::string().swap(upreq_.path);
        char first = 0;
        ec = {};
        arm(lowest(client_), std::chrono::duration_cast<milliseconds>(deadline - Clock::now()));
        n = co_await client_.async_read_some(asio::buffer(&first, 1), awaitable_ec(ec));
        disarm();
        released = false;
        if (!ec && n == 1) {
          *in_.prepare(kReadChunk) = first;
          in_.commit(1);
        }
      }
      this->idle = false;
      if (!ec) {
        w_.metrics().global().bytes_received.Increment(static_cast<double>(n));
        if (!got_bytes) {
          got_bytes = true;
          deadline = Clock::now() + opts.request_header_timeout;
        }
        continue;
      }
      if (!timed_out) co_return false;  // peer closed or reset: nothing to answer
    }
    // Timed out: a partial head gets 408; an idle connection just closes.
    if (in_.empty()) co_return false;
    started_ = Clock::now();
    new_request_id(request_id_);
    co_await local_reply(408, "request header timeout", true);
    finish_request();
    co_return false;
  }

  // The head leaves the buffer now, so that whatever path answers this
  // request, the next one starts at the right byte. req_'s views stay valid
  // until the next read into in_ (forward() copies what it needs before that).
  in_.consume(req_parser_.head_size());
  started_ = Clock::now();
  if (auto id = http::find_header(req_.headers, "x-request-id"); id && !id->empty() && id->size() <= 128)
    request_id_ = std::string(*id);
  else
    new_request_id(request_id_);
  method_.assign(req_.method);
  bytes_in_ = req_parser_.head_size();

  auto target = http::parse_target(req_.method, req_.target);
  if (!target.ok()) {
    path_.assign(req_.target.substr(0, 256));
    co_await local_reply(400, target.error().message, true);
    finish_request();
    co_return false;
  }
  path_ = target->path;
  std::string_view raw_host = !target->authority.empty() ? std::string_view(target->authority) : req_.host;
  std::string host;
  if (!raw_host.empty()) {
    auto h = http::normalize_host(raw_host);
    if (!h.ok()) {
      co_await local_reply(400, h.error().message, true);
      finish_request();
      co_return false;
    }
    host = std::move(h).value();
  }
  host_ = host;

  // Requests with a body we will not read to the end cannot keep the connection.
  auto body_kind = req_.body;
  auto drop_connection_if_body = [&] { return body_kind != http::BodyKind::kNone; };

  // A copy, not a reference: this request pins the Config it started with
  // even if another session on this worker refreshes the view meanwhile.
  std::shared_ptr<const control::Config> cfg = w_.view().get();
  if (!cfg) {
    co_await local_reply(503, "no configuration applied yet", drop_connection_if_body());
    finish_request();
    co_return !drop_connection_if_body() && req_.keep_alive;
  }

  w_.forget_stale_clusters(cfg.get());
  router::RequestView rv;
  rv.host = host;
  rv.path = target->path;
  rv.query = target->query;
  rv.method = req_.method;
  rv.headers_ctx = &req_.headers;
  rv.header = [](const void* ctx, std::string_view lower_name) {
    return http::find_header(*static_cast<const std::vector<http::Header>*>(ctx), lower_name);
  };
  auto m = cfg->table->match(rv);
  if (m.rule == nullptr) {
    bool close = drop_connection_if_body() || !req_.keep_alive || w_.server().draining();
    co_await local_reply(404, "no route for " + host + target->path, close);
    finish_request();
    co_return !close;
  }
  route_label_ = m.rule->route_label;
  co_return co_await forward(cfg, *m.rule, *target, host, m.matched_prefix_len);
}

template <class Stream>
asio::awaitable<bool> Session<Stream>::forward(const std::shared_ptr<const control::Config>& cfg,
                                       const router::CompiledRule& cr, const http::Target& target,
                                       std::string_view host, size_t matched_prefix) {
  auto& opts = w_.server().options();
  const auto& filters = cr.rule->filters;
  bool client_close = !req_.keep_alive || w_.server().draining();
  bool has_body = req_.body != http::BodyKind::kNone;

  // ---- the exchange: the request as every filter sees it
  const control::RulePolicies* pol = cfg->policies ? cfg->policies->find(&cr) : nullptr;
  const exchange::FilterChain* chain = pol != nullptr && !pol->chain.empty() ? &pol->chain : nullptr;
  ex_.reset();
  ex_.req.method = req_.method;
  ex_.req.host = host;
  ex_.req.path = target.path;
  ex_.req.query = target.query;
  ex_.req.host_header = req_.host;
  ex_.req.headers = &req_.headers;
  ex_.req.body = req_.body;
  ex_.req.content_length = req_.content_length;
  ex_.req.proto = req_.version == http::Version::kHttp10 ? "HTTP/1.0" : "HTTP/1.1";
  ex_.req.tls = kTls;
  ex_.rule = &cr;
  ex_.matched_prefix = matched_prefix;
  ex_.started = started_;

  // ---- request filters (CORS, rate limit, body limit, JWT, redirect): any may answer
  if (chain != nullptr) {
    ex_.req.client_ip = client_ip();
    exchange::Verdict v = chain->run_request(ex_);
    if (v != exchange::Verdict::kContinue) {
      if (v == exchange::Verdict::kPending) {  // no filter waits yet (filter.h)
        ex_.reply.reset();
        ex_.reply.status = 500;
        ex_.reply.body = "a filter of route " + route_label_ + " waited, which this proxy does not support yet";
      }
      bool close = client_close || has_body || ex_.reply.close;
      co_await local_reply(ex_.reply, close);
      finish_request();
      co_return !close;
    }
  }

  // ---- response cache: a fresh stored response answers here
  std::unique_ptr<CacheFill> fill;
  if (filters.cache && pol != nullptr && pol->cache) {
    milliseconds wait = cr.rule->policy.timeouts.backend_request.value_or(opts.upstream_timeout);
    if (cr.rule->policy.timeouts.request) wait = std::min(wait, *cr.rule->policy.timeouts.request);
    if (auto answered = co_await cache_lookup(*pol, target, host, wait, fill)) {
      finish_request();
      co_return *answered;
    }
  }

  // ---- pick a backend ref, then an endpoint
  int bi = cr.pick_backend();
  if (bi < 0) {
    co_await local_reply(500, "route " + route_label_ + " has no backend with a weight above 0", true);
    finish_request();
    co_return false;
  }
  const auto& ref = cr.rule->backends[static_cast<size_t>(bi)];
  cluster_ = &ref.cluster;
  if (!ref.unresolved.empty()) {
    co_await local_reply(500, "backend unresolved: " + ref.unresolved, client_close || has_body);
    finish_request();
    co_return !(client_close || has_body);
  }
  const control::ClusterEndpoints* cluster = cfg->cluster(ref.cluster);
  if (cluster == nullptr || cluster->endpoints.empty()) {
    co_await local_reply(503, "no healthy endpoint for " + ref.cluster, client_close || has_body);
    finish_request();
    co_return !(client_close || has_body);
  }

  // ---- the cluster's circuit breaker and pending-request limit
  BreakerCall call;
  if (cr.rule->policy.circuit_breaker) {
    const auto& b = w_.breaker(cfg.get(), &ref, ref.cluster, *cr.rule->policy.circuit_breaker);
    std::string_view refused = b ? call.admit(b, &status_) : std::string_view{};
    if (!refused.empty()) {
      std::string hdr = "x-gateway-reason: " + std::string(refused) + "\r\n";
      std::string why(refused == "circuit-open" ? "circuit breaker open for "
                                                : "too many pending requests for ");
      why += ref.cluster;
      co_await local_reply(503, why, client_close || has_body, hdr);
      finish_request();
      co_return !(client_close || has_body);
    }
  }

  // ---- the upstream request head: upstream-request filters (URL rewrite,
  // JWT claims, header modifiers) edit it, then it is serialised
  upreq_.reset();
  upreq_.path.assign(target.path);
  upreq_.host = req_.host.empty() ? host : req_.host;
  if (chain != nullptr) chain->run_upstream_request(ex_, upreq_);
  const exchange::HeaderEdits& edits = upreq_.headers;
  const std::string_view path = upreq_.path;

  out_.clear();
  out_.append(req_.method).append(" ").append(path);
  if (!target.query.empty()) out_.append("?").append(target.query);
  out_.append(" HTTP/1.1\r\n");
  append_header(out_, "host", upreq_.host);
  std::string_view prior_xff;
  bool req_connection = has_connection_header(req_.headers);
  for (const auto& h : req_.headers) {
    if (http::iequals(h.name, "host") || http::is_hop_by_hop(h.name) ||
        http::iequals(h.name, "content-length") || http::iequals(h.name, "expect") ||
        (req_connection && named_by_connection(req_.headers, h.name)))
      continue;
    if (http::iequals(h.name, "x-forwarded-for")) {
      prior_xff = h.value;
      continue;
    }
    if (http::iequals(h.name, "x-forwarded-proto") || http::iequals(h.name, "x-forwarded-host") ||
        http::iequals(h.name, "x-request-id"))
      continue;
    if (!edits.empty() && edits.drops(h.name)) continue;  // removed, or set by a filter (no spoofed claims)
    append_header(out_, h.name, h.value);
  }
  for (const auto& h : edits.set) append_header(out_, h.name, h.value);
  for (const auto& h : edits.add) append_header(out_, h.name, h.value);
  if (!prior_xff.empty() && contains(opts.trusted_proxies, peer_ip_)) {
    std::string xff(prior_xff);
    xff.append(", ").append(peer_ip_);
    append_header(out_, "x-forwarded-for", xff);
  } else {
    append_header(out_, "x-forwarded-for", peer_ip_);
  }
  append_header(out_, "x-forwarded-proto", kTls ? "https" : "http");
  if (!req_.host.empty()) append_header(out_, "x-forwarded-host", req_.host);
  append_header(out_, "x-request-id", request_id_);
  if (req_.upgrade_websocket) {
    auto up = http::find_header(req_.headers, "upgrade");
    append_header(out_, "connection", "upgrade");
    append_header(out_, "upgrade", up ? *up : "websocket");
  }
  if (req_.body == http::BodyKind::kContentLength) append_header(out_, "content-length", std::to_string(req_.content_length));
  if (req_.body == http::BodyKind::kChunked) append_header(out_, "transfer-encoding", "chunked");
  out_.append("\r\n");

  // The head is now copied into out_; the client buffer keeps only body bytes
  // and whatever the client pipelined after them. (upreq_.host may point
  // into that buffer: the mirror gets its own copy before the body is read.)
  std::string mirror_host(filters.request_mirror ? upreq_.host : std::string_view{});
  bool expect_continue = req_.expect_continue;
  bool upgrade = req_.upgrade_websocket;
  bool request_keep_alive = req_.keep_alive;
  http::Version client_version = req_.version;
  auto body_kind = req_.body;
  req_body_left_ = body_kind == http::BodyKind::kContentLength ? req_.content_length : 0;
  chunked_.reset();

  if (expect_continue && has_body) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    error_code ec;
    co_await asio::async_write(client_, asio::buffer(kContinue), awaitable_ec(ec));
    if (ec) co_return false;
  }

  // ---- upstream policies of the rule: balancer, retries, timeouts
  const snapshot::Policy& policy = cr.rule->policy;
  const snapshot::LoadBalancer& lbcfg = policy.load_balancer;
  upstream::PickContext pick_ctx;
  sticky_.clear();  // the session cookie's value, when hashing on a cookie (copied: in_ may move)
  if (lbcfg.type == snapshot::LoadBalancerType::kConsistentHash) {
    std::optional<std::string_view> key;
    switch (lbcfg.hash_on) {
      case snapshot::HashOn::kHeader: key = http::find_header(req_.headers, lbcfg.hash_key); break;
      case snapshot::HashOn::kCookie:
        for (const auto& h : req_.headers)
          if (http::iequals(h.name, "cookie"))
            if (auto v = cookie_value(h.value, lbcfg.hash_key)) key = *v;
        if (key) sticky_.assign(*key);
        break;
      case snapshot::HashOn::kSourceIP: key = client_ip(); break;
      case snapshot::HashOn::kNone: break;
    }
    if (key && !key->empty()) {
      pick_ctx.hash = upstream::hash_key(*key);
      pick_ctx.has_hash = true;
    }
  }
  const resilience::RetryPolicy* retry =
      policy.retry ? w_.retry_policy(cfg.get(), *policy.retry) : nullptr;
  std::shared_ptr<upstream::ClusterState> cstate_ref =
      retry ? w_.cluster_state(ref.cluster) : nullptr;
  upstream::ClusterState* cstate = cstate_ref.get();
  std::shared_ptr<upstream::Outlier> outlier;
  if (policy.outlier_detection) {
    outlier = w_.outlier(cfg.get(), &ref, ref.cluster, *policy.outlier_detection);
    if (outlier) outlier->sync(cluster, cluster->keys);
  }
  auto report = [&](size_t idx, resilience::UpstreamResult r) {
    if (outlier) outlier->detector->record(idx, r, Clock::now());
  };
  std::optional<Clock::time_point> request_deadline;
  if (policy.timeouts.request) request_deadline = started_ + *policy.timeouts.request;
  milliseconds try_timeout = policy.timeouts.backend_request.value_or(opts.upstream_timeout);
  if (retry && retry->config().per_try_timeout) try_timeout = *retry->config().per_try_timeout;
  // The wait allowed from now: `d`, cut at the request's deadline (at least 1 ms).
  auto bounded = [&](milliseconds d) {
    if (!request_deadline) return d;
    auto left = std::chrono::duration_cast<milliseconds>(*request_deadline - Clock::now());
    return std::max(milliseconds(1), std::min(d, left));
  };
  auto deadline_passed = [&] { return request_deadline && Clock::now() >= *request_deadline; };

  // A request is replayable on a fresh connection when its body (if any) is
  // entirely in our buffer. Under a retry policy, a Content-Length body up to
  // kMaxReplayBody is read in full first, then sent from the buffer on every try.
  const bool mirror = filters.request_mirror.has_value();
  if ((retry || mirror) && body_kind == http::BodyKind::kContentLength &&
      req_body_left_ <= kMaxReplayBody) {
    while (in_.size() < req_body_left_) {
      error_code rec;
      co_await read_some(client_, in_, opts.request_header_timeout * 6, rec);
      if (rec) co_return false;
    }
  }
  std::string_view sticky = sticky_;
  bool replayable = body_kind == http::BodyKind::kNone ||
                    ((retry || mirror) && body_kind == http::BodyKind::kContentLength &&
                     in_.size() >= req_body_left_);
  if (mirror)
    mirror_request(*filters.request_mirror, *cfg, mirror_host, body_kind, replayable, upgrade);
  size_t replay_body = replayable && body_kind == http::BodyKind::kContentLength ? req_body_left_ : 0;
  if (cstate) cstate->retry_budget.record_request(Clock::now());
  uint32_t retries = 0;
  int connect_failures = 0;
  int stale_retries = 0;       // a reused connection closed under the request
  bool fresh_retried = false;  // a fresh connection closed under an idempotent request
  // Whether the rule's retry policy (and the cluster's budget) allow one more
  // try after `o`; waits the backoff when it does.
  auto may_retry = [&](const resilience::TryOutcome& o) {
    if (!retry || deadline_passed() || !retry->should_retry(retries, o, replayable)) return false;
    if (!cstate->retry_budget.try_acquire_retry(Clock::now())) return false;
    ++retries;
    return true;
  };
  auto backoff = [&]() -> asio::awaitable<void> {
    asio::steady_timer t(w_.io());
    t.expires_after(bounded(retry->backoff(retries, w_.random())));
    error_code ignore;
    co_await t.async_wait(awaitable_ec(ignore));
  };

  size_t exclude = static_cast<size_t>(-1);
  std::unique_ptr<UpstreamConn> up;
  ActiveRequest active;
  Clock::time_point sent_at;
  bool response_ready = false;
  const int max_tries =
      kMaxConnectAttempts + kMaxStaleRetries + 2 + static_cast<int>(retry ? retry->config().attempts : 0);
  for (int attempt = 0; attempt < max_tries && !response_ready; ++attempt) {
    if (deadline_passed()) {
      co_await local_reply(504, "request timeout", true);
      finish_request();
      co_return false;
    }
    // Out of rotation: endpoints ejected by outlier detection or failing active
    // health checks; when fewer than half remain, all are used (panic).
    bool masked = false;
    if (outlier) {
      outlier->detector->ejected_mask(ejected_, Clock::now());
      masked = true;
    } else if (policy.health_check) {
      ejected_.assign(cluster->keys.size(), false);
    }
    if (policy.health_check) masked = w_.unhealthy_mask(*cluster, ejected_) || masked;
    if (masked) {
      size_t out = 0;
      for (bool e : ejected_) out += e ? 1 : 0;
      if ((ejected_.size() - out) * 2 < ejected_.size()) masked = false;
    }
    auto picked = w_.pick_endpoint(*cluster, exclude, lbcfg, pick_ctx, sticky, masked ? &ejected_ : nullptr);
    if (!picked) break;
    size_t idx = picked->index;
    active.set(picked->active);
    set_cookie_.clear();
    if (lbcfg.type == snapshot::LoadBalancerType::kConsistentHash &&
        lbcfg.hash_on == snapshot::HashOn::kCookie && sticky != *picked->cookie)
      set_cookie_ = *picked->cookie;
    const auto& key = cluster->keys[idx];
    upstream_key_ = key;
    up = w_.take_idle(key, replayable && idempotent_method(method_));
    if (!up) {
      if (call.breaker() && !call.breaker()->limits.connections.try_acquire()) {
        call.cancel();
        co_await local_reply(503, "too many connections to " + ref.cluster, true,
                             "x-gateway-reason: connection-limit\r\n");
        finish_request();
        co_return false;
      }
      up = std::make_unique<UpstreamConn>(w_.io());
      up->limit = call.breaker();  // null without a breaker: nothing to release
      up->key = key;
      error_code ec;
      const auto& ep = cluster->endpoints[idx];
      auto addr = asio::ip::make_address(ep.address, ec);
      if (!ec) {
        arm(up->sock, bounded(opts.upstream_connect_timeout));
        co_await up->sock.async_connect(tcp::endpoint(addr, ep.port), awaitable_ec(ec));
        disarm();
      }
      if (ec) {
        w_.metrics().upstream_error(ref.cluster, timed_out ? "connect_timeout" : "connect");
        report(idx, resilience::UpstreamResult::kConnectFailure);
        exclude = idx;
        up.reset();
        // The request has not been sent: always safe to try another endpoint.
        if (++connect_failures <= kMaxConnectAttempts) continue;
        if (may_retry(resilience::TryOutcome{true, false, 0})) {
          co_await backoff();
          continue;
        }
        break;
      }
      set_nodelay(up->sock);
      up->sock.non_blocking(true, ec);
    }

    // ---- send head (+ body)
    sent_at = Clock::now();
    error_code ec;
    bool client_failed = false;
    // The head and a buffered (replayable) body go out together; the body stays
    // in in_ until the final try.
    {
      std::string_view head(out_), body(in_.data(), replay_body);
      if (!try_write_two(up->sock, head, body, ec)) co_await write_rest(up->sock, head, body, ec);
    }
    if (!ec && replay_body == 0 && body_kind != http::BodyKind::kNone) {
      bool ok = co_await relay_request_body(*up, ec, client_failed);
      if (!ok && client_failed) {
        co_return false;  // client went away or sent a bad body (answered there)
      }
    }
    if (ec) {
      bool reused = up->reused;
      w_.metrics().upstream_error(ref.cluster, "reset");
      if (reused && replayable && stale_retries < kMaxStaleRetries) {  // see "Nothing received" below
        ++stale_retries;
        w_.drop_idle(up->key);
        up.reset();
        continue;
      }
      up.reset();
      if (may_retry(resilience::TryOutcome{false, true, 0})) {
        exclude = idx;
        co_await backoff();
        continue;
      }
      co_await local_reply(502, "upstream connection failed while sending the request", true);
      finish_request();
      co_return false;
    }

    // ---- read the response head (1xx interim answers are relayed)
    resp_parser_.reset();
    resp_.clear();
    bool got_any = !up->buf.empty();
    while (true) {
      if (!up->buf.empty()) {
        auto st = resp_parser_.parse(up->buf.view(), resp_, method_ == "HEAD");
        if (st == http::ParseState::kComplete) {
          if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) {
            // Relay the interim response (e.g. 103 Early Hints) without its
            // hop-by-hop and framing fields; 100 is ours to send (dropped), and
            // an HTTP/1.0 client never gets a 1xx (RFC 9110 15.2).
            if (resp_.status != 100 && client_version != http::Version::kHttp10) {
              std::string interim("HTTP/1.1 ");
              interim.append(std::to_string(resp_.status)).append(" ");
              interim.append(resp_.reason.empty() ? std::string_view(reason_phrase(resp_.status))
                                                  : resp_.reason);
              interim.append("\r\n");
              for (const auto& h : resp_.headers)
                if (!http::is_hop_by_hop(h.name) && !http::iequals(h.name, "content-length"))
                  append_header(interim, h.name, h.value);
              interim.append("\r\n");
              error_code wec;
              co_await asio::async_write(client_, asio::buffer(interim), awaitable_ec(wec));
              if (wec) {
                client_broken_ = true;
                finish_request();
                co_return false;
              }
              bytes_out_ += interim.size();
            }
            up->buf.consume(resp_parser_.head_size());
            resp_parser_.reset();
            resp_.clear();
            continue;
          }
          response_ready = true;
          break;
        }
        if (st == http::ParseState::kError) {
          w_.metrics().upstream_error(ref.cluster, "protocol");
          co_await local_reply(502, "upstream sent a malformed response", true);
          finish_request();
          co_return false;
        }
      }
      // read_some(), inlined on this hot path: one coroutine frame fewer per request.
      char* p = up->buf.prepare(kReadChunk);
      arm(up->sock, bounded(try_timeout));
      size_t n = co_await up->sock.async_read_some(asio::buffer(p, up->buf.writable()), awaitable_ec(ec));
      disarm();
      if (ec) break;
      up->buf.commit(n);
      got_any = true;
    }
    if (response_ready) {
      report(idx, resp_.status >= 500 ? resilience::UpstreamResult::kServerError
                                      : resilience::UpstreamResult::kSuccess);
      // A listed status is retried on another endpoint while nothing went downstream.
      if (retry && may_retry(resilience::TryOutcome{false, false, resp_.status})) {
        w_.metrics().upstream_error(ref.cluster, "retried_status");
        response_ready = false;
        exclude = idx;
        up.reset();
        co_await backoff();
        continue;
      }
      break;
    }
    // Nothing received: the connection died under the request, and the
    // backend answered nothing. A reused connection was most likely closed by
    // the backend while idle: that endpoint's other idle connections are
    // suspect too (dropped) and the request goes again. A fresh one means the
    // endpoint itself went away (e.g. its pod was killed): an idempotent
    // request without a body (RFC 9110 9.2.2) goes once more, to another
    // endpoint. Neither needs a retry policy.
    if (!got_any && !timed_out) {
      if (up->reused && replayable && stale_retries < kMaxStaleRetries) {
        ++stale_retries;
        w_.drop_idle(up->key);
        up.reset();
        continue;
      }
      if (!up->reused && !fresh_retried && body_kind == http::BodyKind::kNone && idempotent_method(method_)) {
        fresh_retried = true;
        w_.metrics().upstream_error(ref.cluster, "reset");
        exclude = idx;
        up.reset();
        continue;
      }
    }
    bool timeout = timed_out;
    w_.metrics().upstream_error(ref.cluster, timeout ? "timeout" : "reset");
    up.reset();
    if (!deadline_passed() && may_retry(resilience::TryOutcome{false, true, 0})) {
      exclude = idx;
      co_await backoff();
      continue;
    }
    co_await local_reply(timeout ? 504 : 502,
                         timeout ? "upstream did not answer in time" : "upstream closed the connection",
                         true);
    finish_request();
    co_return false;
  }
  if (!response_ready) {
    co_await local_reply(502, "could not connect to any endpoint of " + ref.cluster, true);
    finish_request();
    co_return false;
  }
  call.release_pending();  // the response head is here: no longer pending
  if (replay_body > 0) {  // the body went out with the final try
    in_.consume(replay_body);
    bytes_in_ += replay_body;
    req_body_left_ = 0;
  }
  if (!set_cookie_.empty()) {
    std::string v = lbcfg.hash_key + "=" + set_cookie_ + "; Path=/; HttpOnly";
    if (lbcfg.cookie_ttl.count() > 0)
      v += "; Max-Age=" + std::to_string(std::max<int64_t>(1, lbcfg.cookie_ttl.count() / 1000));
    ex_.response_headers.emplace_back("set-cookie", std::move(v));
    set_cookie_.clear();
  }

  upstream_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - sent_at).count();
  w_.metrics().upstream_done(ref.cluster, upstream_ms_ / 1000.0);
  status_ = resp_.status;

  // ---- the response head to the client
  bool is_upgrade = upgrade && resp_.status == 101;
  // An HTTP/1.0 client cannot take chunked framing: it gets the data alone,
  // delimited by closing the connection (RFC 9112 6.3).
  dechunk_ = resp_.body == http::BodyKind::kChunked && client_version == http::Version::kHttp10;
  if (fill) cache_begin_fill(*fill, is_upgrade);
  bool keep = request_keep_alive && !w_.server().draining() && resp_.body != http::BodyKind::kUntilClose &&
              !is_upgrade && !dechunk_;
  resp_edits_.reset();
  if (chain != nullptr) chain->run_response(ex_, {resp_.status, &resp_.headers, false}, resp_edits_);
  out_.clear();
  out_.append("HTTP/1.1 ").append(std::to_string(resp_.status)).append(" ");
  out_.append(resp_.reason.empty() ? std::string_view(reason_phrase(resp_.status)) : resp_.reason);
  out_.append("\r\n");
  bool has_request_id = false;
  bool resp_connection = has_connection_header(resp_.headers);
  // 1xx, 204 and 304 have no body: a Content-Length or Transfer-Encoding on
  // them is never relayed (RFC 9110 8.6, 6.4.1). A 204 that announces a body,
  // or a 304 with Transfer-Encoding, may send bytes after its head: that
  // upstream connection is not reused.
  const bool bodiless_status = resp_.status < 200 || resp_.status == 204 || resp_.status == 304;
  bool upstream_reusable = resp_.keep_alive;
  for (const auto& h : resp_.headers) {
    if (is_upgrade && (http::iequals(h.name, "upgrade") || http::iequals(h.name, "connection"))) {
      append_header(out_, h.name, h.value);
      continue;
    }
    if (bodiless_status && h.name.size() == 14 && http::iequals(h.name, "content-length")) {
      if (resp_.status == 204 && h.value != "0") upstream_reusable = false;
      continue;
    }
    if (bodiless_status && h.name.size() == 17 && http::iequals(h.name, "transfer-encoding")) {
      upstream_reusable = false;
      continue;
    }
    if (http::is_hop_by_hop(h.name) || (resp_connection && named_by_connection(resp_.headers, h.name)))
      continue;
    if (!resp_edits_.empty() && resp_edits_.drops(h.name)) continue;
    if (http::iequals(h.name, "x-request-id")) has_request_id = true;
    append_header(out_, h.name, h.value);
  }
  for (const auto& h : resp_edits_.set) append_header(out_, h.name, h.value);
  for (const auto& h : resp_edits_.add) append_header(out_, h.name, h.value);
  if (!has_request_id) append_header(out_, "x-request-id", request_id_);
  for (const auto& [name, value] : ex_.response_headers) append_header(out_, name, value);
  if (resp_.body == http::BodyKind::kChunked && !dechunk_) append_header(out_, "transfer-encoding", "chunked");
  if (opts.debug_headers) {
    append_header(out_, "x-gateway-route", route_label_);
    append_header(out_, "x-gateway-upstream", upstream_key_);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3fms", upstream_ms_);
    append_header(out_, "x-gateway-response-time", buf);
  }
  if (!is_upgrade) {
    if (!keep) append_header(out_, "connection", "close");
    else if (client_version == http::Version::kHttp10) append_header(out_, "connection", "keep-alive");
  }
  out_.append("\r\n");
  up->buf.consume(resp_parser_.head_size());

  // A small Content-Length body is gathered before anything goes out, so that
  // head and body leave in one write (and the client wakes once), as nginx's
  // response buffering does; a larger one streams. The head was copied into
  // out_ above, so the buffer may move.
  if (!is_upgrade && resp_.body == http::BodyKind::kContentLength && resp_.content_length <= kGatherBody) {
    error_code rec;
    while (up->buf.size() < resp_.content_length) {
      char* p = up->buf.prepare(static_cast<size_t>(resp_.content_length) - up->buf.size());
      arm(up->sock, opts.upstream_timeout);
      size_t n = co_await up->sock.async_read_some(asio::buffer(p, up->buf.writable()), awaitable_ec(rec));
      disarm();
      if (rec) break;
      up->buf.commit(n);
    }
    if (rec) {
      // Cut short before anything went to the client: the gateway answers
      // instead of relaying a response it knows is incomplete.
      const bool timeout = timed_out;
      upstream_truncated(timeout, up->buf.size(), resp_.content_length);
      if (fill) cache_end_fill(*fill, false);
      co_await local_reply(timeout ? 504 : 502,
                           timeout ? "upstream stalled before the end of the response body"
                                   : "upstream closed the connection before the end of the response body",
                           true);
      finish_request();
      co_return false;
    }
  }
  // A Content-Length body that is already here leaves with the head.
  uint64_t inline_body = 0;
  if (!is_upgrade && resp_.body == http::BodyKind::kContentLength && up->buf.size() >= resp_.content_length)
    inline_body = resp_.content_length;
  error_code ec;
  // The cache copies the body as it is relayed, and stores a complete response
  // *before* its last bytes go out: a client that reads the answer and asks
  // again at once (on any worker) finds it stored.
  capture_ = fill && fill->capturing ? fill.get() : nullptr;
  if (capture_ != nullptr && resp_.body == http::BodyKind::kContentLength &&
      inline_body == resp_.content_length) {
    if (inline_body > 0) cache_capture(std::string_view(up->buf.data(), static_cast<size_t>(inline_body)));
    if (capture_ != nullptr) cache_end_fill(*capture_, true);
    capture_ = nullptr;
  }
  {
    std::string_view head(out_), body(up->buf.data(), static_cast<size_t>(inline_body));
    if (!try_write_two(client_, head, body, ec)) co_await write_rest(client_, head, body, ec);
  }
  bytes_out_ += out_.size() + inline_body;
  up->buf.consume(static_cast<size_t>(inline_body));
  if (ec) {
    finish_request();
    co_return false;
  }

  if (is_upgrade) {
    finish_request();
    co_await tunnel(*up, cr.rule->policy.timeouts.idle.value_or(opts.websocket_idle_timeout));
    co_return false;
  }

  bool ok = co_await relay_response_body(*up, upstream_reusable, inline_body);
  capture_ = nullptr;
  if (fill) cache_end_fill(*fill, ok);
  finish_request();
  if (ok && upstream_reusable && up->buf.empty()) w_.give_back(std::move(up));
  co_return ok && keep;
}

// ---- response cache

// Looks the request up in the rule's cache. A hit is answered here; a miss
// of a GET that may be stored leaves `fill` set (with the leader's ticket
// when it is the first miss of its key). Concurrent misses of one key wait
// for the leader (at most `wait_limit`) on this worker: the leader's thread
// only posts the wake-up here.
template <class Stream>
asio::awaitable<std::optional<bool>> Session<Stream>::cache_lookup(
    const control::RulePolicies& pol, const http::Target& target,
    std::string_view host, milliseconds wait_limit, std::unique_ptr<CacheFill>& fill) {
  auto rp = filters::request_policy(req_.method, req_.headers);
  const bool is_get = req_.method == "GET";
  if (req_.body != http::BodyKind::kNone || (!rp.lookup && !rp.store)) {
    ex_.response_headers.emplace_back("x-cache", "MISS");
    co_return std::nullopt;
  }
  std::string key = filters::cache_key(kTls, host, target.path, target.query);
  filters::FillTicket ticket;
  if (rp.lookup) {
    for (int round = 0; round < 2; ++round) {
      std::shared_ptr<asio::steady_timer> wake;
      std::function<void()> on_fill_done;
      if (round == 0 && is_get && rp.store) {
        wake = std::make_shared<asio::steady_timer>(w_.io(), Clock::now() + wait_limit);
        on_fill_done = [weak = std::weak_ptr<asio::steady_timer>(wake), alive = w_.alive()] {
          if (!alive->load()) return;
          if (auto t = weak.lock()) asio::post(t->get_executor(), [t] { t->cancel(); });
        };
      }
      auto r = pol.cache->lookup(key, req_.headers, Clock::now(), std::move(on_fill_done));
      if (r.kind == filters::CacheLookupKind::kHit)
        co_return co_await serve_cached(*r.response, pol);
      if (r.kind == filters::CacheLookupKind::kWait) {
        error_code ignore;
        co_await wake->async_wait(awaitable_ec(ignore));
        continue;  // the leader is done (or took too long): look again, without waiting
      }
      ticket = std::move(r.ticket);
      break;
    }
  }
  ex_.response_headers.emplace_back("x-cache", "MISS");
  if (is_get && rp.store) {
    fill = std::make_unique<CacheFill>();
    fill->cache = pol.cache;
    fill->config = pol.cache_config;
    fill->key = std::move(key);
    fill->had_authorization = http::find_header(req_.headers, "authorization").has_value();
    fill->ticket = std::move(ticket);
  }
  co_return std::nullopt;
}

// Answers the request with a stored response: its headers, then the rule's
// response header modifiers, the request id, Age and X-Cache: HIT.
template <class Stream>
asio::awaitable<bool> Session<Stream>::serve_cached(const filters::CachedResponse& r,
                                                    const control::RulePolicies& pol) {
  const auto& opts = w_.server().options();
  const bool keep = req_.keep_alive && !w_.server().draining();
  const bool head_only = req_.method == "HEAD";
  const bool no_body = r.status < 200 || r.status == 204 || r.status == 304;
  resp_edits_.reset();
  if (!pol.chain.empty()) {
    cached_fields_.clear();
    for (const auto& [name, value] : r.headers) cached_fields_.push_back({name, value});
    pol.chain.run_response(ex_, {r.status, &cached_fields_, true}, resp_edits_);
  }
  out_.clear();
  out_.append("HTTP/1.1 ")
      .append(std::to_string(r.status))
      .append(" ")
      .append(reason_phrase(r.status));
  out_.append("\r\n");
  for (const auto& [name, value] : r.headers) {
    if (!resp_edits_.empty() && resp_edits_.drops(name)) continue;
    append_header(out_, name, value);
  }
  for (const auto& h : resp_edits_.set) append_header(out_, h.name, h.value);
  for (const auto& h : resp_edits_.add) append_header(out_, h.name, h.value);
  append_header(out_, "x-request-id", request_id_);
  for (const auto& [name, value] : ex_.response_headers) append_header(out_, name, value);
  append_header(out_, "age", std::to_string(r.age_seconds(Clock::now())));
  append_header(out_, "x-cache", "HIT");
  if (!no_body) append_header(out_, "content-length", std::to_string(r.body.size()));
  if (opts.debug_headers) {
    append_header(out_, "x-gateway-route", route_label_);
    append_header(out_, "x-gateway-upstream", "cache");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3fms",
                  std::chrono::duration<double, std::milli>(Clock::now() - started_).count());
    append_header(out_, "x-gateway-response-time", buf);
  }
  if (!keep)
    append_header(out_, "connection", "close");
  else if (req_.version == http::Version::kHttp10)
    append_header(out_, "connection", "keep-alive");
  out_.append("\r\n");
  if (!no_body && !head_only) out_.append(r.body);
  status_ = r.status;
  upstream_key_ = "cache";
  error_code ec;
  {
    std::string_view pending(out_);
    if (!try_write(client_, pending, ec))
      co_await asio::async_write(client_, asio::buffer(pending.data(), pending.size()),
                                 awaitable_ec(ec));
  }
  bytes_out_ += out_.size();
  if (ec) client_broken_ = true;
  co_return keep && !ec;
}

// The response head is here: decides whether the response will be stored.
// When it will not, the waiters are woken now rather than after the body.
template <class Stream>
void Session<Stream>::cache_begin_fill(CacheFill& f, bool is_upgrade) {
  std::optional<milliseconds> ttl;
  if (!is_upgrade && resp_.status >= 200)
    ttl = filters::response_ttl(f.config, f.had_authorization, resp_.status, resp_.headers);
  if (!ttl || (resp_.body == http::BodyKind::kContentLength &&
               resp_.content_length > f.config.max_object_bytes)) {
    f.ticket.finish();
    return;
  }
  f.capturing = true;
  f.ttl = *ttl;
  f.status = resp_.status;
  f.chunked = resp_.body == http::BodyKind::kChunked;
  f.headers = filters::storable_headers(resp_.headers);
  // The request's values of the headers the response varies on (the request
  // had no body, so its head is still intact in in_).
  for (const auto& h : resp_.headers) {
    if (!http::iequals(h.name, "vary")) continue;
    http::for_each_list_element(h.value, [&](std::string_view name) {
      for (const auto& rh : req_.headers)
        if (http::iequals(rh.name, name)) f.request_headers.emplace_back(rh.name, rh.value);
    });
  }
}

// Bytes of the response body as relayed; a body over max_object_bytes stops
// being captured (and wakes the waiters) but is still relayed in full.
template <class Stream>
void Session<Stream>::cache_capture(std::string_view bytes) {
  CacheFill& f = *capture_;
  if (f.body.size() + bytes.size() > f.config.max_object_bytes + (f.chunked ? 4096 : 0)) {
    f.capturing = false;
    std::string().swap(f.body);
    capture_ = nullptr;
    f.ticket.finish();
    return;
  }
  f.body.append(bytes);
}

template <class Stream>
void Session<Stream>::cache_end_fill(CacheFill& f, bool complete) {
  if (complete && f.capturing) {
    std::string body;
    bool ok = true;
    if (f.chunked)
      ok = filters::dechunk(f.body, body);
    else
      body = std::move(f.body);
    if (ok) {
      std::vector<http::Header> req_headers;
      req_headers.reserve(f.request_headers.size());
      for (const auto& [n, v] : f.request_headers) req_headers.push_back({n, v});
      f.cache->store(f.key, req_headers, f.status, std::move(f.headers), std::move(body), f.ttl,
                     Clock::now());
    }
  }
  f.capturing = false;
  f.ticket.finish();
}

// ---- request mirroring

template <class Stream>
void Session<Stream>::mirror_request(const snapshot::RequestMirror& m, const control::Config& cfg,
                                     std::string_view upstream_host, http::BodyKind body_kind,
                                     bool body_buffered, bool upgrade) {
  if (upgrade || (body_kind != http::BodyKind::kNone && !body_buffered)) {
    w_.metrics().mirror_result(m.cluster, "skipped");  // chunked, too large, or a tunnel
    return;
  }
  const control::ClusterEndpoints* c = cfg.cluster(m.cluster);
  if (c == nullptr || c->endpoints.empty()) {
    w_.metrics().mirror_result(m.cluster, "failed");
    return;
  }
  size_t idx = static_cast<size_t>(w_.random() % c->endpoints.size());
  // out_ is "<request line>\r\nhost: <upstream_host>\r\n<other fields>\r\n": swap the Host line.
  size_t line_end = out_.find("\r\n");
  size_t host_end = out_.find("\r\n", line_end + 2);
  size_t body =
      body_kind == http::BodyKind::kContentLength ? static_cast<size_t>(req_body_left_) : 0;
  std::string copy;
  copy.reserve(out_.size() + 8 + body);
  copy.append(out_, 0, line_end + 2);
  append_header(copy, "host", filters::shadow_host(upstream_host));
  copy.append(out_, host_end + 2);
  copy.append(in_.data(), body);
  w_.mirror().send(m.cluster, c->endpoints[idx], c->keys[idx], std::move(copy));
}

// Relays the rest of the request body from the client to the upstream.
// Returns false on failure; client_failed tells whose side failed.
template <class Stream>
asio::awaitable<bool> Session<Stream>::relay_request_body(UpstreamConn& up, error_code& ec, bool& client_failed) {
  auto& opts = w_.server().options();
  while (true) {
    size_t take = 0;
    bool done = false;
    if (req_.body == http::BodyKind::kContentLength) {
      take = static_cast<size_t>(std::min<uint64_t>(in_.size(), req_body_left_));
      req_body_left_ -= take;
      done = req_body_left_ == 0;
    } else {
      auto step = chunked_.feed(in_.view());
      if (!step.ok()) {
        client_failed = true;
        co_await local_reply(400, "malformed chunked request body: " + step.error().message, true);
        finish_request();
        co_return false;
      }
      take = step->consumed;
      done = step->done;
      if (ex_.body_limit && chunked_.data_bytes() > *ex_.body_limit) {
        client_failed = true;
        co_await local_reply(413, "request body larger than " + std::to_string(*ex_.body_limit) + " bytes", true);
        finish_request();
        co_return false;
      }
    }
    if (take > 0) {
      {
        std::string_view pending(in_.data(), take);
        if (!try_write(up.sock, pending, ec))
          co_await asio::async_write(up.sock, asio::buffer(pending.data(), pending.size()), awaitable_ec(ec));
      }
      bytes_in_ += take;
      in_.consume(take);
      if (ec) co_return false;
    }
    if (done) co_return true;
    error_code rec;
    co_await read_some(client_, in_, opts.request_header_timeout * 6, rec);
    if (rec) {
      client_failed = true;
      co_return false;
    }
  }
}

template <class Stream>
asio::awaitable<bool> Session<Stream>::relay_response_body(UpstreamConn& up, bool& upstream_reusable,
                                                           uint64_t sent) {
  auto& opts = w_.server().options();
  if (resp_.body == http::BodyKind::kNone) co_return true;
  uint64_t left = resp_.content_length - sent;
  if (resp_.body == http::BodyKind::kChunked) chunked_.reset();
  while (true) {
    size_t take = 0;
    bool done = false;
    switch (resp_.body) {
      case http::BodyKind::kContentLength:
        take = static_cast<size_t>(std::min<uint64_t>(up.buf.size(), left));
        left -= take;
        done = left == 0;
        break;
      case http::BodyKind::kChunked: {
        if (dechunk_) dechunked_.clear();
        auto step = chunked_.feed(up.buf.view(), dechunk_ ? &dechunked_ : nullptr);
        if (!step.ok()) {
          w_.metrics().upstream_error(*cluster_, "protocol");
          error_kind_ = "upstream_protocol";
          upstream_reusable = false;
          co_return false;  // the head is out: all we can do is close
        }
        take = step->consumed;
        done = step->done;
        break;
      }
      default:
        take = up.buf.size();
        break;
    }
    if (take > 0) {
      error_code ec;
      std::string_view out = dechunk_ ? std::string_view(dechunked_) : std::string_view(up.buf.data(), take);
      if (capture_ != nullptr) {  // copied, and stored when complete, before it goes out
        cache_capture(std::string_view(up.buf.data(), take));
        if (done && capture_ != nullptr) {
          cache_end_fill(*capture_, true);
          capture_ = nullptr;
        }
      }
      {
        std::string_view pending = out;
        if (!pending.empty() && !try_write(client_, pending, ec))
          co_await asio::async_write(client_, asio::buffer(pending.data(), pending.size()), awaitable_ec(ec));
      }
      bytes_out_ += out.size();
      up.buf.consume(take);
      if (ec) {
        upstream_reusable = false;
        co_return false;
      }
    }
    if (done) {
      if (!up.buf.empty()) upstream_reusable = false;  // bytes after the response: not reusable
      co_return true;
    }
    error_code ec;
    co_await read_some(up.sock, up.buf, opts.upstream_timeout, ec);
    if (ec) {
      upstream_reusable = false;
      // Reading until close: EOF is the end of the body. Anything else ended
      // the body before its framing said (EOF, reset or stall): the caller
      // closes the client connection at once, so the client sees the cut.
      if (resp_.body == http::BodyKind::kUntilClose && ec == asio::error::eof) co_return true;
      upstream_truncated(timed_out, resp_.body == http::BodyKind::kContentLength
                                        ? resp_.content_length - left : chunked_.data_bytes(),
                         resp_.body == http::BodyKind::kContentLength ? resp_.content_length : 0);
      co_return false;
    }
  }
}

// Copies bytes both ways after a 101 Switching Protocols until either side closes.
template <class Stream>
asio::awaitable<void> Session<Stream>::tunnel(UpstreamConn& up, milliseconds idle_timeout) {
  // One deadline for the tunnel, on the client socket, pushed forward by
  // traffic in either direction; when it passes, the sweeper cancels the
  // client side and the tunnel winds down.
  arm(lowest(client_), idle_timeout);
  auto& m = w_.metrics().global();
  m.websocket_upgrades.Increment();
  m.websockets_active.Increment();
  auto pump = [this, idle_timeout](auto& from, Buffer& buf, auto& to,
                                   prometheus::Counter& relayed) -> asio::awaitable<void> {
    error_code ec;
    while (true) {
      if (!buf.empty()) {
        co_await asio::async_write(to, asio::buffer(buf.data(), buf.size()), awaitable_ec(ec));
        if (ec) break;
        relayed.Increment(static_cast<double>(buf.size()));
        buf.clear();
      }
      char* p = buf.prepare(kReadChunk);
      size_t n = co_await from.async_read_some(asio::buffer(p, buf.writable()), awaitable_ec(ec));
      if (ec) break;
      buf.commit(n);
      deadline = Clock::now() + idle_timeout;
    }
  };
  asio::steady_timer done(w_.io(), Clock::time_point::max());
  bool finished = false;
  // Who ended it: the first side whose pump stops (or the idle deadline).
  const char* ended_by = nullptr;
  asio::co_spawn(w_.io(), pump(up.sock, up.buf, client_, m.websocket_bytes_to_client),
                 [&](std::exception_ptr) {
                   finished = true;
                   if (!ended_by) ended_by = "upstream";
                   error_code ignore;
                   lowest(client_).cancel(ignore);  // the upstream side ended: end the client side too
                   done.cancel();
                 });
  co_await pump(client_, in_, up.sock, m.websocket_bytes_to_upstream);
  if (!ended_by) ended_by = timed_out ? "idle_timeout" : "client";
  error_code ignore;
  up.sock.cancel(ignore);  // the client side ended: end the upstream side too
  if (!finished) {
    error_code ec;
    co_await done.async_wait(awaitable_ec(ec));
  }
  disarm();
  up.sock.close(ignore);
  m.websockets_active.Decrement();
  m.websocket_closed.Add({{"reason", ended_by}}).Increment();
}

template <class Stream>
void Session<Stream>::upstream_truncated(bool timeout, uint64_t got, uint64_t want) {
  w_.metrics().upstream_error(*cluster_, "truncated");
  error_kind_ = "upstream_truncated";
  spdlog::warn("upstream {} (route {}) ended the response before the end of its body ({}, {} of {} body "
               "bytes); the client connection is closed; request id {}",
               upstream_key_, route_label_, timeout ? "timeout" : "connection closed", got,
               want > 0 ? std::to_string(want) : std::string("unknown"), request_id_);
}

template <class Stream>
void Session<Stream>::finish_request() {
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
  static const std::string kNoRoute = "none";
  w_.metrics().request_done(route_label_.empty() ? kNoRoute : route_label_, status_, ms / 1000.0);
  w_.metrics().global().bytes_sent.Increment(static_cast<double>(bytes_out_));
  auto& log = w_.server().log();
  if (log.enabled()) {
    AccessRecord r;
    r.client = peer_ip_;
    r.method = method_;
    r.host = host_;
    r.path = path_;
    r.status = status_;
    r.bytes_in = bytes_in_;
    r.bytes_out = bytes_out_;
    r.duration_ms = ms;
    r.upstream = upstream_key_;
    r.upstream_ms = upstream_ms_;
    r.route = route_label_;
    r.request_id = request_id_;
    if (error_kind_ != nullptr) r.error = error_kind_;
    log.write(r);
  }
}

asio::awaitable<void> Worker::accept_loop(tcp::acceptor& acc, bool tls) {
  while (true) {
    error_code ec;
    tcp::socket sock = co_await acc.async_accept(awaitable_ec(ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
      continue;  // EMFILE and friends: keep accepting
    }
    if (tls) spawn_session(TlsStream(std::move(sock), server_.tls_context()));
    else spawn_session(std::move(sock));
  }
}

template <class Stream>
void Worker::spawn_session(Stream stream) {
  metrics_.global().connections_total.Increment();
  metrics_.global().active_connections.Increment();
  connections_.fetch_add(1, std::memory_order_relaxed);
  auto s = std::make_shared<Session<Stream>>(*this, std::move(stream));
  asio::co_spawn(io_, [s]() -> asio::awaitable<void> { co_await s->run(); },
                 [this](std::exception_ptr e) {
                   if (e) {
                     try {
                       std::rethrow_exception(e);
                     } catch (const std::exception& ex) {
                       spdlog::error("connection handler failed: {}", ex.what());
                     }
                   }
                   metrics_.global().active_connections.Decrement();
                   connections_.fetch_sub(1, std::memory_order_relaxed);
                 });
}

void Worker::sweep() {
  server_.log().flush_thread();
  auto now = Clock::now();
  if (++sweeps_ % 10 == 0) {
    reap_idle(now);
    if (released_since_trim_ > 0) {
      released_since_trim_ = 0;
      ::malloc_trim(0);
    }
  }
  for (SessionBase* s = sessions_; s != nullptr; s = s->next) {
    if (s->deadline <= now && s->deadline_socket != nullptr) {
      s->timed_out = true;
      s->deadline = Clock::time_point::max();
      error_code ignore;
      s->deadline_socket->cancel(ignore);
    } else if (s->idle && s->can_release && !s->released && !s->release_buffers &&
               s->deadline_socket != nullptr && now - s->idle_since >= kReleaseIdleAfter) {
      s->release_buffers = true;  // the session gives its buffers back (handle_one)
      error_code ignore;
      s->deadline_socket->cancel(ignore);
    }
  }
  sweep_timer_.expires_after(kSweepInterval);
  sweep_timer_.async_wait([this](error_code ec) {
    if (!ec) sweep();
  });
}

// Closes pooled upstream connections idle longer than --upstream-idle-timeout
// (a backend that closed one leaves it in CLOSE_WAIT until then) and forgets
// the pools of endpoints that have none left, e.g. after they left the snapshot.
void Worker::reap_idle(Clock::time_point now) {
  const auto limit = server_.options().upstream_idle_timeout;
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& v = it->second;
    std::erase_if(v, [&](const std::unique_ptr<UpstreamConn>& c) { return now - c->idle_since >= limit; });
    it = v.empty() ? idle_.erase(it) : std::next(it);
  }
}

void Worker::close_idle() {
  asio::post(io_, [this] {
    for (SessionBase* s = sessions_; s != nullptr; s = s->next)
      if (s->idle) s->close_if_idle();
    idle_.clear();
  });
}

// ------------------------------------------------------------------ Server

namespace {

// SNI: swap the handshake onto the context of the matching certificate of the
// Config published now.
int on_servername(SSL* ssl, int* alert, void* arg) {
  auto* store = static_cast<control::ConfigStore*>(arg);
  auto cfg = store->current();
  if (!cfg || !cfg->tls) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::string sni = name ? name : "";
  for (auto& c : sni) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  SSL_CTX* ctx = cfg->tls->select(sni);
  if (ctx == nullptr) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

Server::Server(ServerOptions opts, control::ConfigStore& store, admin::Metrics& metrics, AccessLog& log)
    : opts_(std::move(opts)),
      store_(store),
      metrics_(metrics),
      log_(log),
      tls_ctx_(std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server)) {
  SSL_CTX* base = tls_ctx_->native_handle();
  tls::apply_server_defaults(base);
  SSL_CTX_set_tlsext_servername_callback(base, on_servername);
  SSL_CTX_set_tlsext_servername_arg(base, &store_);
  int n = std::max(1, opts_.workers);
  for (int i = 0; i < n; ++i) workers_.push_back(std::make_unique<Worker>(*this, i));
  health_ = std::make_unique<upstream::HealthChecker>(store_);
}

Server::~Server() {
  health_->stop();
  for (auto& w : workers_) w->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

Status Server::listen() {
  uint16_t port = 0;
  for (auto& w : workers_) {
    auto st = w->listen(opts_.http_listen, port, false);
    if (!st.ok()) return st;
    if (port == 0) port = w->bound_port(false);
  }
  opts_.http_listen.port = port;
  if (opts_.https_listen) {
    port = 0;
    for (auto& w : workers_) {
      auto st = w->listen(*opts_.https_listen, port, true);
      if (!st.ok()) return st;
      if (port == 0) port = w->bound_port(true);
    }
    opts_.https_listen->port = port;
  }
  return ok_status();
}

void Server::start() {
  health_->start();
  for (auto& w : workers_) {
    w->start();
    threads_.emplace_back([wp = w.get()] { wp->run(); });
  }
}

void Server::begin_drain() { draining_.store(true); }

void Server::stop_accepting() {
  for (auto& w : workers_) w->stop_accepting();
  for (auto& w : workers_) w->close_idle();
}

size_t Server::active_connections() const {
  size_t n = 0;
  for (const auto& w : workers_) n += w->connections().load(std::memory_order_relaxed);
  return n;
}

void Server::shutdown(std::chrono::milliseconds grace) {
  auto deadline = Clock::now() + grace;
  while (active_connections() > 0 && Clock::now() < deadline) {
    for (auto& w : workers_) w->close_idle();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : workers_) w->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  health_->stop();
}

}  // namespace gantry::net
