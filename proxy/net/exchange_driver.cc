// The exchange driver: see exchange_driver.h.
#include "proxy/net/exchange_driver.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include "proxy/base/aio.h"
#include <charconv>
#include <functional>
#include <spdlog/spdlog.h>

#include "proxy/control/config_store.h"
#include "proxy/exchange/chain.h"
#include "proxy/exchange/default_backend.h"
#include "proxy/exchange/grpc.h"
#include "proxy/filters/cache_control.h"
#include "proxy/filters/header_filters.h"
#include "proxy/filters/grpc_web.h"
#include "proxy/filters/response_cache.h"
#include "proxy/filters/response_capture.h"
#include "proxy/filters/transform.h"
#include "proxy/net/access_log.h"
#include "proxy/net/drained_read.h"
#include "proxy/net/grpc_web_downstream.h"
#include "proxy/net/h2_upstream.h"
#include "proxy/net/stream_tunnel.h"
#include "proxy/http/websocket.h"
#include "proxy/tls/tls_contexts.h"
#include "proxy/tracing/exporter.h"
#include "proxy/upstream/affinity_cookie.h"

namespace gantry::net {

namespace {

using std::chrono::milliseconds;

constexpr uint64_t kGatherBody = 32 * 1024;  // response bodies gathered before the head goes out
constexpr int kMaxConnectAttempts = 3;
constexpr int kMaxStaleRetries = 2;
constexpr uint64_t kMaxReplayBody = 64 * 1024;  // request bodies buffered for retries

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

// The trace-context fields the gateway replaces with its own when tracing
// is on (W3C and B3).
bool is_trace_field(std::string_view name) {
  if (name.size() < 2) return false;
  const char c = static_cast<char>(name[0] | 0x20);
  if (c == 't') return http::iequals(name, "traceparent") || http::iequals(name, "tracestate");
  if (c != 'b' && c != 'x') return false;
  return http::iequals(name, "b3") || http::iequals(name, "x-b3-traceid") || http::iequals(name, "x-b3-spanid") ||
         http::iequals(name, "x-b3-parentspanid") || http::iequals(name, "x-b3-sampled") ||
         http::iequals(name, "x-b3-flags");
}

uint64_t unix_ns_now() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// One admitted request of a cluster's circuit breaker and its pending-request
// slot: the result is recorded when the exchange ends, from the status the
// client got (0: cancelled; 502/503/504: failure; else success). A gRPC call
// counts by its grpc-status's HTTP equivalent (exchange::http_status_for_grpc,
// as outlier detection and retries count it): UNAVAILABLE (503) and
// DEADLINE_EXCEEDED (504) are failures even in a 200 answer.
class BreakerCall {
 public:
  BreakerCall() = default;
  BreakerCall(const BreakerCall&) = delete;
  BreakerCall& operator=(const BreakerCall&) = delete;
  ~BreakerCall() {
    release_pending();
    if (!admitted_) return;
    int status = *status_;
    if (status == 200 && *grpc_status_ > 0) status = exchange::http_status_for_grpc(*grpc_status_);
    auto r = resilience::CallResult::kSuccess;
    if (status == 0 || cancelled_) r = resilience::CallResult::kCancelled;
    else if (status == 502 || status == 503 || status == 504) r = resilience::CallResult::kFailure;
    breaker_->breaker->record(admission_, r, std::chrono::steady_clock::now());
  }
  // Why the request may not go ("" when it may): pending limit or open circuit.
  // `status`, `grpc_status`: the request record's, read when the call ends.
  std::string_view admit(std::shared_ptr<upstream::Breaker> b, const int* status, const int* grpc_status) {
    breaker_ = std::move(b);
    status_ = status;
    grpc_status_ = grpc_status;
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
  const int* grpc_status_ = nullptr;  // -1: not a gRPC call (or no status)
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

// A node of the worker's sweep list that only times the driver's upstream I/O.
class DeadlineNode final : public SessionBase {
 public:
  explicit DeadlineNode(Worker& w) : w_(w) { w_.link(this); }
  ~DeadlineNode() override { w_.unlink(this); }
  void close_if_idle() override {}

 private:
  Worker& w_;
};

}  // namespace

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

aio::awaitable<bool> await_pending(asio::io_context& io, exchange::PendingOp& op, milliseconds limit,
                                    std::shared_ptr<std::atomic<bool>> alive) {
  // The wake-up is a timer cancelled from done(); its expiry is the
  // deadline. Only a wait pays for these two small objects. done() may run
  // on any thread: on another it goes through the worker's queue; on the
  // worker's own (the rate limit store's reply, read by this worker) it
  // cancels at once, which saves a posted handler (and a reactor poll) per
  // decision.
  auto wake = std::make_shared<aio::steady_timer>(io, Clock::now() + limit);
  auto fired = std::make_shared<std::atomic<bool>>(false);
  op.start([weak = std::weak_ptr<aio::steady_timer>(wake), ex = io.get_executor(), fired, alive = std::move(alive)] {
    if (fired->exchange(true)) return;  // at most once
    if (alive && !alive->load()) return;
    auto t = weak.lock();
    if (!t) return;
    if (ex.running_in_this_thread()) t->cancel();
    else asio::post(t->get_executor(), [t] { t->cancel(); });
  });
  if (!fired->load()) {
    error_code ignore;
    co_await wake->async_wait(awaitable_ec(ignore));
  }
  if (fired->load()) co_return true;
  op.cancel();
  co_return false;
}

void assign_request_id(const std::vector<http::Header>* headers, std::string& out) {
  std::optional<std::string_view> id;
  if (headers != nullptr) id = http::find_header(*headers, "x-request-id");
  if (id && !id->empty() && id->size() <= 128)
    out.assign(*id);
  else
    new_request_id(out);
}

ExchangeDriver::ExchangeDriver(Worker& w, SessionBase* deadlines)
    : w_(w),
      own_deadlines_(deadlines == nullptr ? std::make_unique<DeadlineNode>(w) : nullptr),
      timer_(deadlines != nullptr ? *deadlines : *own_deadlines_) {}

ExchangeDriver::~ExchangeDriver() = default;

namespace {

// The thread's spare run() frames (exchange_driver.h, the promise at its
// end): a stack of blocks of one size, and the fewest it held since the last
// trim. They hold nothing but run() frames, which live for one exchange: no
// longer-lived object ever takes one of these blocks.
struct SpareFrames {
  SpareFrames() = default;
  SpareFrames(const SpareFrames&) = delete;
  SpareFrames& operator=(const SpareFrames&) = delete;
  ~SpareFrames() {
    for (void* p : free) ::operator delete(p);
  }
  std::vector<void*> free;
  size_t block = 0;  // run()'s frame size (one coroutine, one size)
  size_t low_water = 0;
};
thread_local SpareFrames spare_frames;

}  // namespace

void* take_exchange_frame(size_t size) {
  SpareFrames& s = spare_frames;
  if (s.block == 0) s.block = size;
  if (size != s.block || s.free.empty()) {
    s.low_water = 0;
    return ::operator new(size);
  }
  void* p = s.free.back();
  s.free.pop_back();
  s.low_water = std::min(s.low_water, s.free.size());
  return p;
}

void give_back_exchange_frame(void* frame, size_t size) {
  SpareFrames& s = spare_frames;
  if (size != s.block || s.free.size() >= kMaxSpareFrames) {
    ::operator delete(frame);
    return;
  }
  s.free.push_back(frame);
}

void trim_spare_frames() {
  SpareFrames& s = spare_frames;
  const size_t n = std::min(s.low_water, s.free.size());
  for (size_t i = 0; i < n; ++i) ::operator delete(s.free[i]);
  s.free.erase(s.free.begin(), s.free.begin() + static_cast<std::ptrdiff_t>(n));
  s.low_water = s.free.size();
}

aio::awaitable<size_t> ExchangeDriver::read_some(UpstreamConn& up, Buffer& b, ms timeout, error_code& ec) {
  char* p = b.prepare(kReadChunk);
  timer_.arm(up.sock, timeout);
  // Not `co_await (c ? a : b)`: GCC 12 destroys such a temporary awaitable twice.
  size_t n;
  if (up.tls) n = co_await up.tls->async_read_some(asio::buffer(p, b.writable()), awaitable_ec(ec));
  else n = co_await up.sock.async_read_some(drained_read_buffer(p, b.writable()), awaitable_ec(ec));
  timer_.disarm();
  if (!ec) b.commit(n);
  co_return n;
}

// TLS on a connected upstream socket: SNI and names from the cluster's
// context, a resumed session when one is cached, the handshake within
// `timeout` (the worker's sweep cancels the socket). Empty on success, else
// why it failed (verification result, OpenSSL error, or the names check).
aio::awaitable<std::string> ExchangeDriver::tls_handshake(UpstreamConn& up, const control::ClusterEndpoints& c,
                                                          ms timeout) {
  up.tls_ctx = c.tls;
  up.tls = std::make_unique<UpstreamTlsStream>(up.sock, c.tls->context());
  std::string why;
  if (!c.tls->prepare(up.tls->native_handle(), why)) co_return why;
  error_code ec;
  timer_.arm(up.sock, timeout);
  co_await up.tls->async_handshake(asio::ssl::stream_base::client, awaitable_ec(ec));
  timer_.disarm();
  if (ec) {
    if (timer_.timed_out) co_return "handshake timed out";
    co_return tls::UpstreamTlsContext::failure(up.tls->native_handle(), ec.message());
  }
  w_.metrics().upstream_tls_handshake(c.name, SSL_session_reused(up.tls->native_handle()) == 1);
  co_return c.tls->check_names(up.tls->native_handle());
}

// ---- the gateway's own answers: one LocalReply, one place per codec

aio::awaitable<void> ExchangeDriver::reply(exchange::Downstream& down, int status, std::string body,
                                            bool close, std::string_view gateway_reason) {
  exchange::LocalReply& r = ex_.reply;
  r.reset();
  r.status = status;
  r.body = std::move(body);
  r.close = close;
  r.gateway_reason = gateway_reason;
  co_await send_reply(down);
}

aio::awaitable<void> ExchangeDriver::send_reply(exchange::Downstream& down) {
  ex_.reply.request_id = record.request_id;
  record.status = ex_.reply.status;
  // A gRPC-Web client gets the answer as a gRPC status (trailers-only);
  // the access log and metrics keep the gateway's status, as for gRPC.
  if (ex_.grpc_web.active) filters::grpc_web::to_trailers_only(ex_.reply, {ex_.grpc_web.text, ex_.grpc_web.suffix});
  if (record.grpc || ex_.grpc_web.active) record.grpc_status = exchange::grpc_status_for(record.status);
  co_await down.send_local_reply(ex_.reply);
  finish(down);
}

SpareDrivers::~SpareDrivers() {
  for (ExchangeDriver* d : free) delete d;
}

void SpareDrivers::trim() {
  const size_t n = std::min(low_water, free.size());
  for (size_t i = 0; i < n; ++i) delete free[i];
  free.erase(free.begin(), free.begin() + static_cast<std::ptrdiff_t>(n));
  low_water = free.size();
}

void ExchangeDriver::recycle() {
  timer_.disarm();
  record.reset();
  ex_.reset();
  capture_ = nullptr;
  auto trim = [](std::string& b) {
    if (b.capacity() > kSpareBufferBytes) std::string().swap(b);
    else b.clear();
  };
  for (std::string* b : {&up_head_, &replay_, &decoded_, &body_, &body_raw_, &transform_in_, &transform_out_,
                         &chunk_line_, &trailer_block_})
    trim(*b);
}

std::unique_ptr<ExchangeDriver> take_driver(Worker& w) {
  SpareDrivers& pool = w.spare_drivers();
  std::vector<ExchangeDriver*>& spare = pool.free;
  if (spare.empty()) {
    pool.low_water = 0;
    return std::make_unique<ExchangeDriver>(w);
  }
  std::unique_ptr<ExchangeDriver> d(spare.back());
  spare.pop_back();
  pool.low_water = std::min(pool.low_water, spare.size());
  return d;
}

void give_back_driver(Worker& w, std::unique_ptr<ExchangeDriver> d) {
  std::vector<ExchangeDriver*>& spare = w.spare_drivers().free;
  if (!d || spare.size() >= kMaxSpareDrivers) return;
  d->recycle();
  spare.push_back(d.release());
}

aio::awaitable<void> tunnel_upgraded(Worker& w, exchange::Downstream& down, ExchangeDriver& d) {
  std::unique_ptr<UpstreamConn> up = std::move(d.upgraded);
  co_await tunnel_stream(w, down, *up, d.tunnel_idle);
}

// ---- route → request filters → cache → select → upstream → response → log

aio::awaitable<void> ExchangeDriver::run(exchange::Downstream& down) {
  const exchange::RequestInfo& rq = down.request();
  record.reset();
  record.started = Clock::now();
  assign_request_id(rq.headers, record.request_id);
  record.method.assign(rq.method);
  record.host.assign(rq.host);
  record.path.assign(rq.path);
  ex_.reset();
  ex_.req = rq;
  // connectionLimit: the client's place is given back when this exchange
  // ends, however it ends; an upgraded one keeps it while the codec tunnels
  // (until the driver is recycled or destroyed), as nginx counts a WebSocket.
  struct LeaseEnd {
    ExchangeDriver& d;
    ~LeaseEnd() {
      if (!d.upgraded) d.ex_.connection_lease.reset();
    }
  } lease_end{*this};
  backend_ref_ = nullptr;
  body_.clear();
  body_raw_.clear();
  body_dechunk_.reset();
  body_early_ = body_ended_ = body_h1_chunked_ = false;
  req_trailer_raw_.clear();
  req_trailers_.clear();
  ex_.started = record.started;
  // gRPC over HTTP/2 (an HTTP/1.1 client's "gRPC" gets ordinary answers): its status is counted.
  if (rq.proto == "HTTP/2")
    if (auto ct = http::find_header(*rq.headers, "content-type")) record.grpc = exchange::is_grpc_content_type(*ct);
  tracing::Exporter* tracer = w_.server().options().tracer;
  if (tracer != nullptr) begin_trace(rq, *tracer);

  // A copy, not a reference: this exchange pins the Config it started with
  // even if another one on this worker refreshes the view meanwhile.
  std::shared_ptr<const control::Config> cfg = w_.view().get();
  if (!cfg) {
    co_await reply(down, 503, "no configuration applied yet", false);
    co_return;
  }
  w_.forget_stale_clusters(cfg.get());
  router::RequestView rv;
  rv.host = rq.host;
  rv.path = rq.path;
  rv.query = rq.query;
  rv.method = rq.method;
  rv.listener = rq.own_listener ? rq.listener
                                : cfg->route_listener(rq.listener, rq.host, listener_scratch_);
  rv.own_listener = rq.own_listener;
  // A TLS connection belongs to the Gateway listener its SNI chose: a request
  // for a host of another listener of the socket was misdirected (a client
  // reusing the connection for another origin). RFC 9110 15.5.20.
  if (!rq.sni.empty() && cfg->route_listener(rq.listener, rq.sni, sni_scratch_) != rv.listener) {
    std::string text("misdirected request: ");
    text.append(rq.host).append(" is not served on this connection (TLS server name ").append(rq.sni).append(")");
    co_await reply(down, 421, std::move(text), false, "misdirected-request");
    co_return;
  }
  // Client certificates of the request's host (hostClientValidation), as
  // nginx checks them: 421, 400 / errorPage, subjectMatch 403.
  client_cert_host_ = false;
  if (cfg->tls) {
    if (const auto* auth = cfg->tls->host_client_auth().find(rq.host)) {
      tls::ClientCertVerdict v = tls::check(**auth, rq.client_cert, rq.tls, rq.host);
      if (v.status != 0) {
        exchange::LocalReply& r = ex_.reply;
        r.reset();
        r.status = v.status;
        r.body = std::move(v.body);
        r.kind = v.kind;
        r.gateway_reason = v.status == 421 ? "misdirected-request" : "client-certificate";
        if (!v.location.empty()) r.headers.emplace_back("location", std::move(v.location));
        co_await send_reply(down);
        co_return;
      }
      client_cert_host_ = true;
      client_cert_fields_ = std::move(v.upstream_fields);
    }
  }
  rv.headers_ctx = rq.headers;
  rv.header = [](const void* ctx, std::string_view lower_name) {
    return http::find_header(*static_cast<const std::vector<http::Header>*>(ctx), lower_name);
  };
  auto m = cfg->table->match(rv);
  if (m.rule == nullptr) {
    std::string text("no route for ");
    text.append(rq.host).append(rq.path);
    co_await reply(down, 404, std::move(text), false);
    co_return;
  }
  record.route = m.rule->route_label;
  if (record.trace.active && m.rule->rule->policy.tracing) route_sampling(m.rule->rule->policy.tracing->sampling);
  ex_.rule = m.rule;
  ex_.matched_prefix = m.matched_prefix_len;
  // The phases below stay in this one coroutine on purpose: every nested
  // coroutine costs a frame (a heap allocation) per request.
  const router::CompiledRule& cr = *m.rule;
  auto& opts = w_.server().options();
  const auto& filters = cr.rule->filters;

  // ---- request filters (CORS, rate limit, body limit, JWT, redirect): any may answer
  const control::RulePolicies* pol = cfg->policies ? cfg->policies->find(&cr) : nullptr;
  const exchange::FilterChain* chain = pol != nullptr && !pol->chain.empty() ? &pol->chain : nullptr;
  if (chain != nullptr) {
    size_t at = 0;
    exchange::Verdict v = chain->run_request(ex_, at);
    while (v == exchange::Verdict::kPending) {  // a filter waits (exchange.h, PendingOp)
      std::string who(chain->request_filter_name(at));
      if (!ex_.pending) {
        co_await reply(down, 500, "filter " + who + " of route " + record.route + " waited without a wait", false);
        co_return;
      }
      if (ex_.request_body.want && !ex_.request_body.read && !co_await read_body_for_filter(down)) co_return;
      milliseconds limit = cr.rule->policy.timeouts.request.value_or(opts.upstream_timeout);
      const bool finished = co_await await_pending(w_.io(), *ex_.pending, limit, w_.alive());
      ex_.pending.reset();
      if (!finished) {
        co_await reply(down, 504, "filter " + who + " of route " + record.route + " did not finish in time",
                       false, "filter-timeout");
        co_return;
      }
      v = chain->resume_request(ex_, at);
    }
    if (v == exchange::Verdict::kRespond) {
      if (record.trace.active) record.trace.filter = chain->request_filter_name(at);
      co_await send_reply(down);
      co_return;
    }
  }

  // ---- response cache: a fresh stored response answers here
  std::unique_ptr<CacheFill> fill;
  // (Never for an upgrade: a stored answer is no handshake.)
  if (filters.cache && pol != nullptr && pol->cache && rq.upgrade.empty()) {
    milliseconds wait = cr.rule->policy.timeouts.backend_request.value_or(opts.upstream_timeout);
    if (cr.rule->policy.timeouts.request) wait = std::min(wait, *cr.rule->policy.timeouts.request);
    if (co_await cache_lookup(down, *pol, wait, fill)) co_return;
  }

  // ---- pick a backend ref, then an endpoint
  int bi = cr.pick_backend();
  if (bi < 0) {
    co_await reply(down, 500, "route " + record.route + " has no backend with a weight above 0", true);
    co_return;
  }
  const auto& ref = cr.rule->backends[static_cast<size_t>(bi)];
  record.cluster = &ref.cluster;
  backend_ref_ = &ref;
  if (!ref.unresolved.empty()) {
    co_await reply(down, 500, "backend unresolved: " + ref.unresolved, false);
    co_return;
  }
  const control::ClusterEndpoints* cluster = cfg->cluster(ref.cluster);
  const std::string* cname = &ref.cluster;  // the cluster the request goes to
  // ---- filters.defaultBackend: it answers while the rule's backend has no endpoint
  const snapshot::DefaultBackend* dbe = filters.default_backend ? &*filters.default_backend : nullptr;
  if ((cluster == nullptr || cluster->endpoints.empty()) && dbe != nullptr)
    if (const control::ClusterEndpoints* d = cfg->cluster(dbe->cluster); d != nullptr && !d->endpoints.empty()) {
      cluster = d;
      cname = record.cluster = &dbe->cluster;
    }
  if (cluster == nullptr || cluster->endpoints.empty()) {
    co_await reply(down, 503, "no healthy endpoint for " + *cname, false);
    co_return;
  }

  // ---- the cluster's circuit breaker and pending-request limit
  BreakerCall call;
  if (cr.rule->policy.circuit_breaker) {
    const auto& b = w_.breaker(cfg.get(), &ref, ref.cluster, *cr.rule->policy.circuit_breaker);
    std::string_view refused = b ? call.admit(b, &record.status, &record.grpc_status) : std::string_view{};
    if (!refused.empty()) {
      if (record.trace.active) record.trace.event("circuit_breaker.refused", {{"gantry.reason", std::string(refused)}});
      std::string why(refused == "circuit-open" ? "circuit breaker open for "
                                                : "too many pending requests for ");
      why += ref.cluster;
      co_await reply(down, 503, std::move(why), false, refused);
      co_return;
    }
  }

  // ---- the upstream request head: upstream-request filters (URL rewrite,
  // JWT claims, header modifiers) edit it, then it is serialised
  upreq_.reset();
  upreq_.path.assign(rq.path);
  upreq_.host = rq.host_header.empty() ? rq.host : rq.host_header;
  // gRPC-Web is translated for HTTP/2 backends only: to an HTTP/1.1 one (a
  // backend that speaks gRPC-Web itself) the request goes as it came.
  if (ex_.grpc_web.active && !cluster->h2c) ex_.grpc_web.active = false;
  if (chain != nullptr) chain->run_upstream_request(ex_, upreq_);
  // The picked backendRef's own header modifier, after the rule's (Gateway API filters on a backendRef).
  if (ref.request_headers) filters::add_modifier_over(*ref.request_headers, upreq_.headers);
  if (client_cert_host_) {  // the client's own ssl-client-* never go through
    for (std::string_view name : tls::kClientCertFields) upreq_.headers.remove.push_back(name);
    for (const auto& [name, value] : client_cert_fields_) upreq_.headers.add.push_back({name, value});
  }
  build_upstream_head(rq);
  // filters.requestMirrors: which mirrors copy this request (each samples on its own).
  const auto& mirrors = filters.request_mirrors;
  const uint64_t mirror_mask = mirrors.empty() ? 0 : sample_mirrors(mirrors, w_.random());
  const bool mirror = mirror_mask != 0;
  const bool upgrade = !rq.upgrade.empty();
  // An HTTP/2 extended CONNECT (RFC 8441): the gateway makes the HTTP/1.1
  // handshake, so it checks the upstream's answer (below).
  const std::string_view ws_key = rq.websocket_key;
  const bool h2_websocket = !ws_key.empty();
  const auto body_kind = rq.body;
  const std::vector<http::Header>& req_headers = *rq.headers;
  // "te: trailers" is hop-by-hop for HTTP/1.1 but says "I take trailers" to an
  // HTTP/2 server (gRPC servers require it): kept for an h2c upstream.
  bool te_trailers = ex_.grpc_web.active;  // gRPC-Web becomes gRPC, which needs it
  if (cluster->h2c)
    for (const auto& h : req_headers)
      if (http::iequals(h.name, "te") && h.value.find("trailers") != std::string_view::npos) te_trailers = true;

  // The head is now copied into up_head_. The request's views may not be used
  // once the body is read (HTTP/1.1: its bytes may overwrite the head), so
  // what is needed later is copied first.
  std::string mirror_host(mirror ? upreq_.host : std::string_view{});
  const uint64_t content_length = rq.content_length;
  // filters.defaultBackend interceptStatuses: what its request needs of this one.
  const bool intercept = dbe != nullptr && !dbe->intercept_statuses.empty() && !upgrade;
  if (intercept) {
    error_uri_.assign(rq.path);
    if (!rq.query.empty()) error_uri_.append("?").append(rq.query);
    error_host_.assign(rq.host_header.empty() ? rq.host : rq.host_header);
    error_client_.assign(rq.client_ip);
  }

  // ---- upstream policies of the rule: balancer, retries, timeouts
  const snapshot::Policy& policy = cr.rule->policy;
  const snapshot::LoadBalancer& lbcfg = policy.load_balancer;
  upstream::PickContext pick_ctx;
  sticky_.clear();  // the session cookie's value, when hashing on a cookie (copied: see above)
  if (lbcfg.type == snapshot::LoadBalancerType::kConsistentHash) {
    std::optional<std::string_view> key;
    switch (lbcfg.hash_on) {
      case snapshot::HashOn::kHeader: key = http::find_header(req_headers, lbcfg.hash_key); break;
      case snapshot::HashOn::kCookie:
        for (const auto& h : req_headers)
          if (http::iequals(h.name, "cookie"))
            if (auto v = cookie_value(h.value, lbcfg.hash_key)) key = *v;
        if (key) sticky_.assign(*key);
        // Its attributes now: the request's fields may be gone when the answer comes.
        cookie_attributes_ = upstream::affinity_cookie_attributes(
            lbcfg, rq.tls, http::find_header(req_headers, "user-agent").value_or(std::string_view()));
        break;
      case snapshot::HashOn::kSourceIP: key = rq.client_ip; break;
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
  if (policy.timeouts.request) request_deadline = record.started + *policy.timeouts.request;
  // gRPC (exchange/grpc.h): the client's deadline (grpc-timeout) is the
  // request's, capped by the route's request timeout; it replaces the default
  // --upstream-timeout wait, so a long call is not cut short by it.
  bool grpc = false;
  if (auto ct = http::find_header(req_headers, "content-type")) grpc = exchange::is_grpc_content_type(*ct);
  grpc = grpc || ex_.grpc_web.active;
  std::optional<milliseconds> grpc_timeout;
  if (grpc)
    if (auto v = http::find_header(req_headers, "grpc-timeout")) grpc_timeout = exchange::parse_grpc_timeout(*v);
  if (grpc_timeout) {
    const Clock::time_point client_deadline = record.started + *grpc_timeout;
    if (!request_deadline || client_deadline < *request_deadline) request_deadline = client_deadline;
  }
  milliseconds try_timeout = policy.timeouts.backend_request.value_or(
      grpc_timeout ? std::chrono::duration_cast<milliseconds>(*request_deadline - record.started)
                   : opts.upstream_timeout);
  if (retry && retry->config().per_try_timeout) try_timeout = *retry->config().per_try_timeout;
  // The wait allowed from now: `d`, cut at the request's deadline (at least 1 ms).
  auto bounded = [&](milliseconds d) {
    if (!request_deadline) return d;
    auto left = std::chrono::duration_cast<milliseconds>(*request_deadline - Clock::now());
    return std::max(milliseconds(1), std::min(d, left));
  };
  auto deadline_passed = [&] { return request_deadline && Clock::now() >= *request_deadline; };

  // A request is replayable on a fresh connection when its body (if any) is
  // entirely kept. Under a retry policy (or a mirror), a Content-Length body
  // up to kMaxReplayBody is read in full first, then sent from replay_ on
  // every try.
  replay_.clear();
  bool replayable = body_kind == http::BodyKind::kNone;
  if (ex_.transform.request != exchange::Exchange::Conversion::kNone) {
    // filters.transform: the converted body is kept whole, and so replayable.
    if (!co_await transform_request(down)) co_return;
    replayable = true;
  } else if (body_early_ && body_ended_) {
    // Read whole for a filter (extAuth withRequestBody): kept, and so
    // replayable; build_upstream_head() gave it a Content-Length.
    if (ex_.body_limit && body_.size() > *ex_.body_limit) {
      co_await reply(down, 413, body_limit_text(), true);
      co_return;
    }
    replay_.swap(body_);
    ex_.request_body.data = {};  // viewed body_, whose bytes moved
    replayable = true;
  } else if (body_early_) {
    // Read in part for a filter: relay_request_body() / the h2c pump send
    // what was read first, then the rest as it comes.
  } else if ((retry || mirror || intercept) && body_kind == http::BodyKind::kContentLength && content_length <= kMaxReplayBody &&
             !ex_.grpc_web.text) {  // a -text body is decoded as it is relayed (GrpcWebDownstream)
    while (true) {
      exchange::BodyChunk c = co_await down.read_body();
      if (c.failed) {
        if (c.error != 0) co_await reply(down, c.error, std::string(c.why), true);
        co_return;
      }
      replay_.append(c.data);
      if (c.end) {
        take_trailers(c);
        break;
      }
    }
    replayable = true;
  }
  std::string_view sticky = sticky_;
  for (size_t i = 0; mirror && i < mirrors.size() && i < 64; ++i)
    if ((mirror_mask >> i) & 1u) mirror_request(mirrors[i], *cfg, mirror_host, replayable, upgrade);
  if (cstate) cstate->retry_budget.record_request(Clock::now());
  uint32_t retries = 0;
  int connect_failures = 0;
  std::string tls_failure;     // why the last TLS handshake failed (the 502 says it)
  int stale_retries = 0;       // a reused connection closed under the request
  bool fresh_retried = false;  // a fresh connection closed under an idempotent request
  // A span event per retry, policy or not (tracing on only).
  auto note_retry = [&](std::string reason) {
    if (!record.trace.active) return;
    ++record.trace.retries;
    record.trace.event("retry", {{"gantry.retry.attempt", static_cast<int64_t>(record.trace.retries)},
                                 {"gantry.retry.reason", std::move(reason)}});
  };
  // Whether the rule's retry policy (and the cluster's budget) allow one more
  // try after `o`; waits the backoff when it does.
  auto may_retry = [&](const resilience::TryOutcome& o) {
    if (!retry || deadline_passed() || !retry->should_retry(retries, o, replayable)) return false;
    if (!cstate->retry_budget.try_acquire_retry(Clock::now())) return false;
    ++retries;
    if (record.trace.active)
      note_retry(o.connect_failure ? std::string("connect-failure")
                 : o.reset         ? std::string("reset")
                                   : std::to_string(o.status));
    return true;
  };
  auto backoff = [&]() -> aio::awaitable<void> {
    aio::steady_timer t(w_.io());
    t.expires_after(bounded(retry->backoff(retries, w_.random())));
    error_code ignore;
    co_await t.async_wait(awaitable_ec(ignore));
  };

  bool to_default = false;  // the request to filters.defaultBackend in place of an intercepted answer
  int own_error = 0;        // ... of the gateway's own 502/504 (the upstream failed)
  static const snapshot::LoadBalancer kRoundRobin{};
  // Out of rotation: endpoints ejected by outlier detection or failing active
  // health checks; when fewer than half remain, all are used (panic). Null:
  // every endpoint is a candidate (and always for the default backend).
  auto out_of_rotation = [&]() -> const std::vector<bool>* {
    bool masked = false;
    if (to_default) {
    } else if (outlier) {
      outlier->detector->ejected_mask(ejected_, Clock::now());
      masked = true;
    } else if (policy.health_check) {
      ejected_.assign(cluster->keys.size(), false);
    }
    if (policy.health_check && !to_default) masked = w_.unhealthy_mask(*cluster, ejected_) || masked;
    if (masked) {
      size_t out = 0;
      for (bool e : ejected_) out += e ? 1 : 0;
      if ((ejected_.size() - out) * 2 < ejected_.size()) masked = false;
    }
    return masked ? &ejected_ : nullptr;
  };

  // ---- filters.defaultBackend: a listed status is answered by the default
  // backend instead (nginx error_page = @custom_...: its status, its body),
  // the upstream's or the gateway's own 502/504 when the upstream failed.
  // The upstream's body never goes out (HTTP/1.1: its connection is closed
  // unread; HTTP/2: its stream is cancelled). Switches the exchange to the
  // default backend in place of an answer with status `code`: false when the
  // default backend has no endpoint (the answer stands).
  auto to_default_backend = [&](int code) -> bool {
    const control::ClusterEndpoints* d = cfg->cluster(dbe->cluster);
    if (d == nullptr || d->endpoints.empty()) return false;
    const bool had_body = body_kind != http::BodyKind::kNone;
    if (!replayable) replay_.clear();  // streamed to the first upstream: not sent again
    exchange::ErrorPageRequest er;
    er.sent_head = up_head_;
    er.code = code;
    er.host = error_host_;
    er.original_uri = error_uri_;
    if (size_t q = error_uri_.find('?'); q != std::string::npos) er.query = std::string_view(error_uri_).substr(q + 1);
    er.client_ip = error_client_;
    er.request_id = record.request_id;
    er.with_body = had_body;
    er.body_size = replay_.size();
    up_head_ = exchange::error_page_head(*dbe, er);
    if (record.trace.active) record.trace.event("default_backend", {{"http.response.status_code", static_cast<int64_t>(code)}});
    to_default = true;
    replayable = true;  // the head and what is kept of the body go out together
    cluster = d;
    cname = record.cluster = &dbe->cluster;
    retry = nullptr;
    outlier.reset();
    connect_failures = stale_retries = own_error = 0;
    fresh_retried = false;
    tls_failure.clear();
    return true;
  };
  // gRPC calls are not intercepted: their errors are gRPC statuses.
  const bool h2_intercept = intercept && !grpc;
  // A WebSocket to an HTTP/2 backend tunnels inside run_h2c().
  if (upgrade) tunnel_idle = cr.rule->policy.timeouts.idle.value_or(opts.websocket_idle_timeout);

h2_attempts:
  if (cluster->h2c && upgrade && !h2_websocket) {
    // An HTTP/1.1 client's Upgrade goes to the HTTP/2 backend as an extended
    // CONNECT (run_h2c), and the gateway answers the client's handshake: it
    // needs a key to answer, and no body (the stream's DATA is the tunnel's).
    // (The body is checked first: once read, the request's views are gone.)
    std::optional<std::string_view> key;
    if (body_kind == http::BodyKind::kNone) key = http::find_header(req_headers, "sec-websocket-key");
    if (!key || !http::valid_websocket_key(*key)) {
      co_await reply(down, 400,
                     body_kind != http::BodyKind::kNone
                         ? "a WebSocket upgrade carries no request body"
                         : "a WebSocket upgrade needs a Sec-WebSocket-Key of 16 bytes in base64 (RFC 6455 4.1)",
                     true, "websocket-handshake");
      co_return;
    }
  }
  if (cluster->h2c) {
    // HTTP/2 upstream (h2c, or h2 over TLS): the same endpoint choice as
    // below, then one stream per try. A try that failed before anything went
    // downstream (no connection, a refused stream, a listed status, a reset
    // under a retry policy) goes to another endpoint.
    ActiveRequest h2_active;
    std::optional<GrpcWebDownstream> web;
    if (ex_.grpc_web.active) web.emplace(down, ex_);  // the client's stream seen through the translation
    const bool body_replayable = body_kind == http::BodyKind::kNone || replayable;
    size_t exclude = static_cast<size_t>(-1);
    H2cTry hooks;
    hooks.report = [&](size_t idx, resilience::UpstreamResult r) { report(idx, r); };
    if (retry && body_replayable)
      hooks.may_retry = [&](const resilience::TryOutcome& o) { return may_retry(o); };
    if (h2_intercept && !to_default)
      hooks.intercept = [&](int status) {
        if (!exchange::intercepts(*dbe, status)) return false;
        const control::ClusterEndpoints* d = cfg->cluster(dbe->cluster);
        return d != nullptr && !d->endpoints.empty();
      };
    // The gateway's own 502 (no connection, refused) in place of an answer.
    auto own_intercepted = [&](int code) { return hooks.intercept && hooks.intercept(code) && to_default_backend(code); };
    while (true) {
      auto picked = w_.pick_endpoint(*cluster, exclude, to_default ? kRoundRobin : lbcfg, pick_ctx,
                                   to_default ? std::string_view() : sticky, out_of_rotation());
      if (!picked) {
        co_await reply(down, 503, "no healthy endpoint for " + ref.cluster, false);
        co_return;
      }
      h2_active.set(picked->active);
      record.upstream = cluster->keys[picked->index];
      exchange::Downstream& d = web ? static_cast<exchange::Downstream&>(*web) : down;
      H2cTry::Outcome t = co_await run_h2c(d, chain, *cluster, picked->index, body_kind != http::BodyKind::kNone,
                                           replayable && body_kind != http::BodyKind::kNone, te_trailers,
                                           bounded(try_timeout), request_deadline, grpc, hooks);
      if (t == H2cTry::kAnswered) co_return;
      if (t == H2cTry::kIntercepted) {
        if (!to_default_backend(hooks.intercepted)) {  // cannot be: hooks.intercept looked
          co_await reply(down, 502, "upstream failed", false);
          co_return;
        }
        if (cluster->h2c) goto h2_attempts;
        goto upstream_attempts;
      }
      exclude = picked->index;
      if (t == H2cTry::kConnectFailed) {
        // Nothing was sent: always safe to try another endpoint.
        if (++connect_failures <= kMaxConnectAttempts) {
          note_retry("connect-failure");
          continue;
        }
        if (may_retry(resilience::TryOutcome{true, false, 0})) {
          co_await backoff();
          continue;
        }
        if (own_intercepted(502)) {
          if (cluster->h2c) goto h2_attempts;
          goto upstream_attempts;
        }
        if (!hooks.tls_failure.empty())
          co_await reply(down, 502,
                         std::string("TLS to ").append(ref.cluster).append(" failed: ").append(hooks.tls_failure),
                         false, "upstream-tls");
        else co_await reply(down, 502, "could not connect to any endpoint of " + ref.cluster, false);
        co_return;
      }
      if (t == H2cTry::kRefused) {  // not processed by the server (RFC 9113 8.7): goes again, once
        if (!hooks.refused_retried && body_replayable) {
          hooks.refused_retried = true;
          note_retry("refused-stream");
          continue;
        }
        if (own_intercepted(502)) {
          if (cluster->h2c) goto h2_attempts;
          goto upstream_attempts;
        }
        co_await reply(down, 502, "upstream refused the stream", false);
        co_return;
      }
      co_await backoff();  // kRetry: the policy agreed (may_retry counted it)
    }
  }
upstream_attempts:
  size_t exclude = static_cast<size_t>(-1);
  std::unique_ptr<UpstreamConn> up;
  ActiveRequest active;
  Clock::time_point sent_at;
  bool response_ready = false;
  const bool head_request = record.method == "HEAD";
  const bool idempotent = idempotent_method(record.method);
  const int max_tries =
      kMaxConnectAttempts + kMaxStaleRetries + 2 + static_cast<int>(retry ? retry->config().attempts : 0);
  for (int attempt = 0; attempt < max_tries && !response_ready; ++attempt) {
    if (deadline_passed()) {
      co_await reply(down, 504, "request timeout", true);
      co_return;
    }
    auto picked = w_.pick_endpoint(*cluster, exclude, to_default ? kRoundRobin : lbcfg, pick_ctx,
                                   to_default ? std::string_view() : sticky, out_of_rotation());
    if (!picked) break;
    size_t idx = picked->index;
    active.set(picked->active);
    set_cookie_.clear();
    if (!to_default && lbcfg.type == snapshot::LoadBalancerType::kConsistentHash &&
        lbcfg.hash_on == snapshot::HashOn::kCookie && sticky != *picked->cookie)
      set_cookie_ = *picked->cookie;
    const auto& endpoint_key = cluster->keys[idx];
    record.upstream = endpoint_key;
    // TLS connections are pooled per cluster (its SNI and trust), plain ones per endpoint.
    const std::string& key = cluster->tls ? pool_key_.assign(endpoint_key).append(cluster->pool_suffix) : endpoint_key;
    up = w_.take_idle(key, replayable && idempotent);
    if (!up) {
      if (!to_default && call.breaker() && !call.breaker()->limits.connections.try_acquire()) {
        call.cancel();
        co_await reply(down, 503, "too many connections to " + *cname, true, "connection-limit");
        co_return;
      }
      up = std::make_unique<UpstreamConn>(w_.io());
      up->limit = to_default ? nullptr : call.breaker();  // null without a breaker: nothing to release
      up->key = key;
      error_code ec;
      const auto& ep = cluster->endpoints[idx];
      auto addr = asio::ip::make_address(ep.address, ec);
      if (!ec) {
        timer_.arm(up->sock, bounded(opts.upstream_connect_timeout));
        co_await up->sock.async_connect(tcp::endpoint(addr, ep.port), awaitable_ec(ec));
        timer_.disarm();
      }
      if (ec) {
        w_.metrics().upstream_error(*cname, timer_.timed_out ? "connect_timeout" : "connect");
        report(idx, resilience::UpstreamResult::kConnectFailure);
        exclude = idx;
        up.reset();
        // The request has not been sent: always safe to try another endpoint.
        if (++connect_failures <= kMaxConnectAttempts) {
          note_retry("connect-failure");
          continue;
        }
        if (may_retry(resilience::TryOutcome{true, false, 0})) {
          co_await backoff();
          continue;
        }
        break;
      }
      set_nodelay(up->sock);
      if (!cluster->tls) enable_drained_reads(up->sock);
      up->sock.non_blocking(true, ec);
      if (cluster->tls) {
        std::string why = co_await tls_handshake(*up, *cluster, bounded(opts.upstream_connect_timeout));
        if (!why.empty()) {
          w_.metrics().upstream_error(*cname, "tls");
          spdlog::warn("upstream TLS to {} ({}) failed: {}", endpoint_key, *cname, why);
          report(idx, resilience::UpstreamResult::kConnectFailure);
          tls_failure = std::move(why);
          exclude = idx;
          up.reset();
          if (++connect_failures <= kMaxConnectAttempts) continue;
          if (may_retry(resilience::TryOutcome{true, false, 0})) {
            co_await backoff();
            continue;
          }
          break;
        }
      }
    }

    // ---- send head (+ body): the head and a kept (replayable) body go out together
    sent_at = Clock::now();
    error_code ec;
    {
      std::string_view head(up_head_), body(replay_);
      if (up->tls) co_await write_rest(*up->tls, head, body, ec);
      else if (!try_write_two(up->sock, head, body, ec)) co_await write_rest(up->sock, head, body, ec);
    }
    if (!ec && !replayable) {
      bool client_failed = false;
      bool ok = co_await relay_request_body(down, *up, ec, client_failed);
      if (!ok && client_failed) co_return;  // the client went away or sent a bad body (answered there)
    }
    if (ec) {
      bool reused = up->reused;
      w_.metrics().upstream_error(*cname, "reset");
      if (reused && replayable && stale_retries < kMaxStaleRetries) {  // see "Nothing received" below
        ++stale_retries;
        note_retry("stale-connection");
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
      if (intercept && !to_default && exchange::intercepts(*dbe, 502)) {
        own_error = 502;
        goto intercepted;
      }
      co_await reply(down, 502, "upstream connection failed while sending the request", true);
      co_return;
    }

    // ---- read the response head (1xx interim answers are relayed)
    resp_parser_.reset();
    resp_.clear();
    bool got_any = !up->buf.empty();
    while (true) {
      if (!up->buf.empty()) {
        auto st = resp_parser_.parse(up->buf.view(), resp_, head_request);
        if (st == http::ParseState::kComplete) {
          if (resp_.status >= 100 && resp_.status < 200 && resp_.status != 101) {
            // An interim answer (e.g. 103 Early Hints); 100 is the codec's to send (dropped).
            if (resp_.status != 100 &&
                !co_await down.send_interim(resp_.status, resp_.reason, resp_.headers)) {
              finish(down);
              co_return;
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
          w_.metrics().upstream_error(*cname, "protocol");
          co_await reply(down, 502, "upstream sent a malformed response", true);
          co_return;
        }
      }
      // read_some(), inlined on this hot path: one coroutine frame fewer per request.
      char* p = up->buf.prepare(kReadChunk);
      timer_.arm(up->sock, bounded(try_timeout));
      size_t n;
      if (up->tls) n = co_await up->tls->async_read_some(asio::buffer(p, up->buf.writable()), awaitable_ec(ec));
      else n = co_await up->sock.async_read_some(drained_read_buffer(p, up->buf.writable()), awaitable_ec(ec));
      timer_.disarm();
      if (ec) break;
      up->buf.commit(n);
      got_any = true;
    }
    if (response_ready) {
      report(idx, resp_.status >= 500 ? resilience::UpstreamResult::kServerError
                                      : resilience::UpstreamResult::kSuccess);
      // A listed status is retried on another endpoint while nothing went downstream.
      if (retry && may_retry(resilience::TryOutcome{false, false, resp_.status})) {
        w_.metrics().upstream_error(*cname, "retried_status");
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
    if (!got_any && !timer_.timed_out) {
      if (up->reused && replayable && stale_retries < kMaxStaleRetries) {
        ++stale_retries;
        note_retry("stale-connection");
        w_.drop_idle(up->key);
        up.reset();
        continue;
      }
      if (!up->reused && !fresh_retried && body_kind == http::BodyKind::kNone && idempotent) {
        fresh_retried = true;
        note_retry("reset");
        w_.metrics().upstream_error(*cname, "reset");
        exclude = idx;
        up.reset();
        continue;
      }
    }
    bool timeout = timer_.timed_out;
    w_.metrics().upstream_error(*cname, timeout ? "timeout" : "reset");
    up.reset();
    if (!deadline_passed() && may_retry(resilience::TryOutcome{false, true, 0})) {
      exclude = idx;
      co_await backoff();
      continue;
    }
    if (intercept && !to_default && exchange::intercepts(*dbe, timeout ? 504 : 502)) {
      own_error = timeout ? 504 : 502;
      goto intercepted;
    }
    co_await reply(down, timeout ? 504 : 502,
                   timeout ? "upstream did not answer in time" : "upstream closed the connection", true);
    co_return;
  }
  if (!response_ready && intercept && !to_default && exchange::intercepts(*dbe, 502)) {
    own_error = 502;
    goto intercepted;
  }
  if (!response_ready) {
    if (!tls_failure.empty()) {
      co_await reply(down, 502, std::string("TLS to ").append(*cname).append(" failed: ").append(tls_failure),
                     true, "upstream-tls");
      co_return;
    }
    co_await reply(down, 502, "could not connect to any endpoint of " + *cname, true);
    co_return;
  }
  // ---- filters.defaultBackend: a listed status is answered by the default
  // backend instead (nginx error_page = @custom_...: its status, its body),
  // the upstream's or the gateway's own 502/504 when the upstream failed.
  // The upstream's body never goes out: its connection is closed unread.
intercepted:
  if (intercept && !to_default && (own_error != 0 || exchange::intercepts(*dbe, resp_.status))) {
    if (to_default_backend(own_error != 0 ? own_error : resp_.status)) {
      up.reset();
      if (fill) {  // an error page is not stored under the request's URL
        cache_end_fill(*fill, false);
        fill.reset();
      }
      if (cluster->h2c) goto h2_attempts;  // an HTTP/2 default backend (its ref's protocol)
      goto upstream_attempts;
    }
    if (own_error != 0) {  // the default backend has no endpoint: the gateway's own answer
      co_await reply(down, own_error, own_error == 504 ? "upstream did not answer in time" : "upstream failed", true);
      co_return;
    }
  }
  call.release_pending();  // the response head is here: no longer pending
  if (h2_websocket && resp_.status >= 101 && resp_.status < 300) {
    // The client takes a 2xx as the tunnel open: only a 101 whose
    // Sec-WebSocket-Accept matches the gateway's key may give it one. Other
    // answers (403, 404, 426...) go to the client as they are.
    std::string why;
    if (resp_.status != 101) {
      why.append("upstream did not accept the WebSocket upgrade (answered ")
          .append(std::to_string(resp_.status))
          .append(")");
    } else if (http::find_header(resp_.headers, "sec-websocket-accept") != http::websocket_accept(ws_key)) {
      why = "upstream's WebSocket handshake answer does not match the key (Sec-WebSocket-Accept)";
    }
    if (!why.empty()) {
      w_.metrics().upstream_error(*cname, "protocol");
      if (fill) cache_end_fill(*fill, false);
      co_await reply(down, 502, std::move(why), true, "websocket-handshake");
      co_return;
    }
  }
  if (!set_cookie_.empty()) {
    std::string v = lbcfg.hash_key;
    v.append("=").append(set_cookie_).append(cookie_attributes_);
    ex_.response_headers.emplace_back("set-cookie", std::move(v));
    set_cookie_.clear();
  }

  record.upstream_ms = std::chrono::duration<double, std::milli>(Clock::now() - sent_at).count();
  w_.metrics().upstream_done(*cname, record.upstream_ms / 1000.0);
  record.status = resp_.status;

  // ---- filters.transform: a response in the backend's format, converted for
  // a client that prefers the other one, is read whole and answered here
  // (Not yet from a TLS upstream: its answers are relayed unconverted.)
  if (ex_.transform.response != exchange::Exchange::Conversion::kNone && !upgrade && !head_request && !up->tls &&
      resp_.status >= 200 && resp_.status != 204 && resp_.status != 304 && resp_.body != http::BodyKind::kNone) {
    const auto backend = ex_.transform.response == exchange::Exchange::Conversion::kXmlToJson
                             ? filters::BodyFormat::kXml
                             : filters::BodyFormat::kJson;
    const auto ct = http::find_header(resp_.headers, "content-type");
    const auto ce = http::find_header(resp_.headers, "content-encoding");
    if (ct && filters::media_format(*ct) == backend && (!ce || http::iequals(*ce, "identity"))) {
      if (fill) cache_end_fill(*fill, false);  // a converted answer depends on Accept: never stored
      bool reusable = resp_.keep_alive;
      up->buf.consume(resp_parser_.head_size());
      const bool done = co_await transform_response(down, chain, *up, reusable);
      if (done && reusable && up->buf.empty()) w_.give_back(std::move(up));
      co_return;
    }
  }

  // ---- the response head to the client
  const bool is_upgrade = upgrade && resp_.status == 101;
  if (fill) cache_begin_fill(*fill, is_upgrade);
  resp_edits_.reset();
  if (chain != nullptr) chain->run_response(ex_, {resp_.status, &resp_.headers, false}, resp_edits_);
  if (backend_ref_ != nullptr && backend_ref_->response_headers)
    filters::add_modifier_over(*backend_ref_->response_headers, resp_edits_);
  // 1xx, 204 and 304 have no body: their framing fields are the codec's to
  // drop. A 204 that announces a body, or a 304 with Transfer-Encoding, may
  // send bytes after its head: that upstream connection is not reused.
  bool upstream_reusable = resp_.keep_alive;
  if (resp_.status < 200 || resp_.status == 204 || resp_.status == 304) {
    for (const auto& h : resp_.headers) {
      if (h.name.size() == 14 && http::iequals(h.name, "content-length") && resp_.status == 204 &&
          h.value != "0")
        upstream_reusable = false;
      if (h.name.size() == 17 && http::iequals(h.name, "transfer-encoding")) upstream_reusable = false;
    }
  }
  // A small Content-Length body is gathered before anything goes out, so that
  // head and body leave in one write (and the client wakes once), as nginx's
  // response buffering does; a larger one streams. The head stays in the
  // buffer meanwhile: resp_'s fields view it, and a read may move the bytes
  // (compaction, growth), after which the head is parsed again where it now
  // is. (A backend that writes head and body apart, and TLS, which reads one
  // record at a time, get there; consuming the head first let the body
  // overwrite it.)
  const size_t head_size = resp_parser_.head_size();
  if (!is_upgrade && resp_.body == http::BodyKind::kContentLength && resp_.content_length <= kGatherBody) {
    error_code rec;
    bool moved = false;
    while (up->buf.size() - head_size < resp_.content_length) {
      const char* before = up->buf.data();
      char* p = up->buf.prepare(static_cast<size_t>(resp_.content_length) - (up->buf.size() - head_size));
      moved = moved || up->buf.data() != before;
      timer_.arm(up->sock, opts.upstream_timeout);
      size_t n;
      if (up->tls) n = co_await up->tls->async_read_some(asio::buffer(p, up->buf.writable()), awaitable_ec(rec));
      else n = co_await up->sock.async_read_some(drained_read_buffer(p, up->buf.writable()), awaitable_ec(rec));
      timer_.disarm();
      if (rec) break;
      up->buf.commit(n);
    }
    if (moved) {  // the same bytes, elsewhere: the same head, with views into its new place
      resp_parser_.reset();
      resp_.clear();
      resp_parser_.parse(up->buf.view(), resp_, head_request);
    }
    up->buf.consume(head_size);
    if (rec) {
      // Cut short before anything went to the client: the gateway answers
      // instead of relaying a response it knows is incomplete.
      const bool timeout = timer_.timed_out;
      upstream_truncated(timeout, up->buf.size(), resp_.content_length);
      if (fill) cache_end_fill(*fill, false);
      co_await reply(down, timeout ? 504 : 502,
                     timeout ? "upstream stalled before the end of the response body"
                             : "upstream closed the connection before the end of the response body",
                     true);
      co_return;
    }
  } else {
    up->buf.consume(head_size);
  }
  // A Content-Length body that is already here leaves with the head.
  uint64_t inline_body = 0;
  if (!is_upgrade && resp_.body == http::BodyKind::kContentLength && up->buf.size() >= resp_.content_length)
    inline_body = resp_.content_length;
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

  exchange::ResponseHead head;
  head.status = resp_.status;
  head.reason = resp_.reason;
  head.fields = &resp_.headers;
  head.edits = &resp_edits_;
  head.added = &ex_.response_headers;
  head.request_id = record.request_id;
  if (resp_.body == http::BodyKind::kContentLength) head.content_length = resp_.content_length;
  head.body = std::string_view(up->buf.data(), static_cast<size_t>(inline_body));
  head.end_stream = !is_upgrade && (resp_.body == http::BodyKind::kNone ||
                                    (resp_.body == http::BodyKind::kContentLength &&
                                     inline_body == resp_.content_length));
  head.h1_chunked = resp_.body == http::BodyKind::kChunked && down.relays_h1_chunked;
  head.upgrade = is_upgrade;
  if (opts.debug_headers) {
    std::snprintf(debug_time_, sizeof debug_time_, "%.3fms", record.upstream_ms);
    debug_ = {http::Header{"x-gateway-route", record.route}, http::Header{"x-gateway-upstream", record.upstream},
              http::Header{"x-gateway-response-time", debug_time_}};
    head.debug = debug_;
  }
  // The head (and the body bytes with it) without a coroutine frame when the
  // codec can send it at once.
  const auto now = down.try_send_head(head);
  const bool sent = now == exchange::SendNow::kDone ||
                    (now == exchange::SendNow::kWouldBlock && co_await down.send_head(head));
  up->buf.consume(static_cast<size_t>(inline_body));
  if (!sent) {
    finish(down);
    co_return;
  }

  if (is_upgrade) {  // the codec tunnels (HTTP/1.1), or tunnel_upgraded() on the stream (HTTP/2)
    if (h2_websocket) record.status = 200;  // what the client got (RFC 8441)
    finish(down);
    tunnel_idle = cr.rule->policy.timeouts.idle.value_or(opts.websocket_idle_timeout);
    upgraded = std::move(up);
    co_return;
  }

  bool ok = head.end_stream || co_await relay_response_body(down, *up, upstream_reusable, inline_body);
  capture_ = nullptr;
  if (fill) cache_end_fill(*fill, ok);
  finish(down);
  if (ok && upstream_reusable && up->buf.empty()) w_.give_back(std::move(up));
}

// The upstream request head (HTTP/1.1) into up_head_: the request line with
// the rewritten path, Host, the client's fields minus hop-by-hop, framing and
// forwarding ones and those the upstream-request filters drop, the filters'
// set/add, X-Forwarded-*, X-Request-Id, the upgrade and the body framing.
void ExchangeDriver::build_upstream_head(const exchange::RequestInfo& rq) {
  auto& opts = w_.server().options();
  const exchange::HeaderEdits& edits = upreq_.headers;
  const std::vector<http::Header>& req_headers = *rq.headers;
  up_head_.clear();
  up_head_.append(rq.method).append(" ").append(upreq_.path);
  if (upreq_.query) {  // a filter's query (apiKey drops its parameter)
    if (!upreq_.query->empty()) up_head_.append("?").append(*upreq_.query);
  } else if (!rq.query.empty()) {
    up_head_.append("?").append(rq.query);
  }
  up_head_.append(" HTTP/1.1\r\n");
  append_header(up_head_, "host", upreq_.host);
  std::string_view prior_xff;
  bool req_connection = has_connection_header(req_headers);
  for (const auto& h : req_headers) {
    if (http::iequals(h.name, "host") || http::is_hop_by_hop(h.name) ||
        http::iequals(h.name, "content-length") || http::iequals(h.name, "expect") ||
        (!rq.websocket_key.empty() && http::iequals(h.name, "sec-websocket-key")) ||
        (req_connection && named_by_connection(req_headers, h.name)))
      continue;
    if (http::iequals(h.name, "x-forwarded-for")) {
      prior_xff = h.value;
      continue;
    }
    if (http::iequals(h.name, "x-forwarded-proto") || http::iequals(h.name, "x-forwarded-host") ||
        http::iequals(h.name, "x-request-id"))
      continue;
    if (!edits.empty() && edits.drops(h.name)) continue;  // removed, or set by a filter (no spoofed claims)
    if (record.trace.active && is_trace_field(h.name)) continue;  // replaced by the gateway's context below
    append_header(up_head_, h.name, h.value);
  }
  if (record.trace.active) {  // the gateway's span is the upstream's parent
    char tp[tracing::kTraceparentSize];
    tracing::format_traceparent(record.trace.trace_id, record.trace.span_id, record.trace.sampled, tp);
    append_header(up_head_, "traceparent", std::string_view(tp, sizeof tp));
    if (!record.trace.tracestate.empty()) append_header(up_head_, "tracestate", record.trace.tracestate);
    if (record.trace.b3) {
      char b3[tracing::kB3Size];
      tracing::format_b3(record.trace.trace_id, record.trace.span_id, record.trace.sampled, b3);
      append_header(up_head_, "b3", std::string_view(b3, sizeof b3));
    }
  }
  for (const auto& h : edits.set) append_header(up_head_, h.name, h.value);
  for (const auto& h : edits.add) append_header(up_head_, h.name, h.value);
  if (!prior_xff.empty() && contains(opts.trusted_proxies, rq.peer_ip)) {
    std::string xff(prior_xff);
    xff.append(", ").append(rq.peer_ip);
    append_header(up_head_, "x-forwarded-for", xff);
  } else {
    append_header(up_head_, "x-forwarded-for", rq.peer_ip);
  }
  append_header(up_head_, "x-forwarded-proto", rq.tls ? "https" : "http");
  if (!rq.host_header.empty()) append_header(up_head_, "x-forwarded-host", rq.host_header);
  append_header(up_head_, "x-request-id", record.request_id);
  if (!rq.upgrade.empty()) {
    append_header(up_head_, "connection", "upgrade");
    append_header(up_head_, "upgrade", rq.upgrade);
    if (!rq.websocket_key.empty()) append_header(up_head_, "sec-websocket-key", rq.websocket_key);
  }
  // A body filters.transform converts: transform_request() writes its length
  // and ends the head once the converted body is there.
  if (ex_.transform.request != exchange::Exchange::Conversion::kNone) return;
  if (body_early_ && body_ended_) {  // read whole for a filter: sent from replay_ with its length
    append_header(up_head_, "content-length", std::to_string(body_.size()));
    up_head_.append("\r\n");
    return;
  }
  // A gRPC-Web -text body is decoded on its way (its length changes): it goes streamed.
  const bool decoded = ex_.grpc_web.active && ex_.grpc_web.text;
  if (rq.body == http::BodyKind::kContentLength && !decoded)
    append_header(up_head_, "content-length", std::to_string(rq.content_length));
  if (rq.body == http::BodyKind::kChunked || (decoded && rq.body != http::BodyKind::kNone))
    append_header(up_head_, "transfer-encoding", "chunked");
  up_head_.append("\r\n");
}

// ---- h2c upstream (net/h2_upstream.h)

namespace {

// The grpc-status among `fields` (a trailers-only head, or trailers); -1: none.
template <class Fields>
int grpc_status_in(const Fields& fields) {
  for (const auto& f : fields)
    if (f.name == "grpc-status") {
      int v = -1;
      auto [p, e] = std::from_chars(f.value.data(), f.value.data() + f.value.size(), v);
      return e == std::errc() && p == f.value.data() + f.value.size() && v >= 0 ? v : -1;
    }
  return -1;
}

// The request body pump's state, shared with the pump coroutine.
struct H2Pump {
  bool done = false;
  bool client_failed = false;  // the client went away or sent a malformed body
  int error = 0;               // then: the status to answer (0: none)
  std::string why;
};

}  // namespace

aio::awaitable<ExchangeDriver::H2cTry::Outcome> ExchangeDriver::run_h2c(
    exchange::Downstream& down, const exchange::FilterChain* chain, const control::ClusterEndpoints& cluster,
    size_t idx, bool has_body, bool body_buffered, bool te_trailers, ms timeout,
    std::optional<Clock::time_point> deadline, bool grpc, H2cTry& hooks) {
  auto& opts = w_.server().options();
  // HTTP/2 over TLS (protocol H2) is pooled per cluster (its SNI and trust), h2c per endpoint.
  const std::string& key = cluster.tls ? pool_key_.assign(cluster.keys[idx]).append(cluster.pool_suffix)
                                       : cluster.keys[idx];
  const snapshot::Endpoint& ep = cluster.endpoints[idx];
  // A wait ended by the deadline sets `deadline_hit` (the wait's own limit
  // may round it down by up to 1 ms, so the clock alone cannot tell).
  bool deadline_hit = false;
  auto expired = [&] { return deadline_hit || (deadline && Clock::now() >= *deadline); };
  if (expired()) {
    record.error = "deadline-exceeded";
    co_await reply(down, 504, "deadline exceeded", false);
    co_return H2cTry::kAnswered;
  }
  http2::RequestHead h2head = h2_request_head(up_head_, cluster.tls != nullptr);
  if (te_trailers) h2head.headers.push_back(http2::Field{"te", "trailers"});
  // A WebSocket goes on as an extended CONNECT (RFC 8441): an HTTP/2
  // client's, or an HTTP/1.1 client's Upgrade, whose handshake the gateway
  // answers itself (`accept`, from the client's key). The upstream's 2xx
  // opens the tunnel; no key goes to it, none comes back (RFC 8441 5).
  const bool h2_websocket = !ex_.req.websocket_key.empty();
  const bool websocket = h2_websocket || !ex_.req.upgrade.empty();
  std::string accept;
  if (websocket) {
    h2head.method = "CONNECT";
    h2head.protocol = "websocket";
    std::erase_if(h2head.headers, [&](const http2::Field& f) {
      if (f.name != "sec-websocket-key") return false;
      if (!h2_websocket) accept = http::websocket_accept(f.value);
      return true;
    });
  }
  if (grpc && deadline) {
    // The backend gets the time left (the route may have shortened it).
    std::erase_if(h2head.headers, [](const http2::Field& f) { return f.name == "grpc-timeout"; });
    h2head.headers.push_back(http2::Field{
        "grpc-timeout",
        exchange::format_grpc_timeout(std::chrono::duration_cast<ms>(*deadline - Clock::now()))});
  }

  // A connection to the endpoint that can open one more stream, else a new one.
  std::shared_ptr<H2UpstreamConn> conn = usable_conn(w_.h2_upstreams[key]);
  if (!conn) {
    error_code ec;
    auto addr = asio::ip::make_address(ep.address, ec);
    std::string tls_error;
    H2UpstreamConn::Options copts;
    copts.keepalive_interval = opts.upstream_h2_keepalive_interval;
    copts.keepalive_timeout = opts.upstream_h2_keepalive_timeout;
    copts.on_keepalive_timeout = [&m = w_.metrics(), name = cluster.name, at = cluster.keys[idx]] {
      m.upstream_error(name, "keepalive_timeout");
      spdlog::warn("upstream HTTP/2 connection to {} ({}): no answer to a keepalive PING: closed", at, name);
    };
    if (!ec) conn = co_await H2UpstreamConn::connect(w_.io(), tcp::endpoint(addr, ep.port),
                                                     std::min(timeout, opts.upstream_connect_timeout), ec,
                                                     cluster.tls, &tls_error, std::move(copts));
    if (!conn && !tls_error.empty()) {
      w_.metrics().upstream_error(cluster.name, "tls");
      spdlog::warn("upstream TLS to {} ({}) failed: {}", cluster.keys[idx], cluster.name, tls_error);
      hooks.report(idx, resilience::UpstreamResult::kConnectFailure);
      hooks.tls_failure = std::move(tls_error);
      co_return H2cTry::kConnectFailed;
    }
    if (conn && cluster.tls) w_.metrics().upstream_tls_handshake(cluster.name, conn->resumed());
    if (!conn) {
      w_.metrics().upstream_error(cluster.name, ec == asio::error::timed_out ? "connect_timeout" : "connect");
      hooks.report(idx, resilience::UpstreamResult::kConnectFailure);
      co_return H2cTry::kConnectFailed;
    }
    w_.h2_upstreams[key].push_back(conn);
  }

  if (websocket && !conn->connect_protocol()) {
    w_.metrics().upstream_error(cluster.name, "protocol");
    co_await reply(down, 502,
                   "upstream " + cluster.keys[idx] + " (" + cluster.name +
                       ") does not accept WebSocket over HTTP/2: its SETTINGS do not enable extended CONNECT "
                       "(SETTINGS_ENABLE_CONNECT_PROTOCOL, RFC 8441)",
                   false, "websocket-handshake");
    co_return H2cTry::kAnswered;
  }
  H2Call call(w_.io().get_executor());
  if (!conn->open(call, h2head, !has_body && !websocket)) {
    w_.metrics().upstream_error(cluster.name, "connect");
    co_return H2cTry::kConnectFailed;  // nothing was sent
  }
  const Clock::time_point sent_at = Clock::now();

  // The request body goes up while the response comes down (gRPC streams
  // both ways at once): a pump coroutine of its own, waited for below.
  auto pump = std::make_shared<H2Pump>();
  if (has_body) {
    asio::co_spawn(
        w_.io(),
        [&down, &call, conn, pump, this, body_buffered]() -> aio::awaitable<void> {
          auto send = [&](std::string_view data) -> aio::awaitable<bool> {
            while (!data.empty()) {
              if (call.closed || call.id < 0) co_return false;
              data.remove_prefix(conn->send_data(call, data));
              if (!data.empty()) co_await call.wait(true);
            }
            co_return true;
          };
          if (body_buffered) {
            if (co_await send(replay_)) conn->end_request(call, request_trailers());
          } else {
            bool go = true;
            // The part a filter read goes first; of an HTTP/1.1 chunked body,
            // its data (body_dechunk_ goes on from where that read stopped).
            if (body_early_ && !body_.empty() && !co_await send(body_)) go = false;
            std::string payload;  // an HTTP/1.1 chunked body's data: DATA frames, no framing
            while (go) {
              exchange::BodyChunk c = co_await down.read_body();
              if (c.failed) {
                pump->client_failed = true;
                pump->error = c.error;
                pump->why = std::string(c.why);
                break;
              }
              if (over_body_limit(c)) {  // filters.maxRequestBodySize, as relay_request_body()
                pump->client_failed = true;
                pump->error = 413;
                pump->why = body_limit_text();
                break;
              }
              std::string_view data = c.data;
              if (c.h1_chunked) {  // framing the codec validated; its trailers are kept
                payload.clear();
                if (!body_dechunk_.feed(c.data, &payload, &req_trailer_raw_).ok()) {
                  pump->client_failed = true;
                  pump->error = 400;
                  pump->why = "malformed chunked request body";
                  break;
                }
                data = payload;
              }
              if (!data.empty() && !co_await send(data)) break;
              if (c.end) {
                take_trailers(c);
                if (!call.closed && call.id >= 0) conn->end_request(call, request_trailers());
                break;
              }
            }
          }
          pump->done = true;
          call.notify();
        },
        asio::detached);
  } else {
    pump->done = true;
  }

  // Waits for news on the call (or the pump), at most `timeout`. False: timed out.
  auto wait_call = [&]() -> aio::awaitable<bool> {
    aio::steady_timer limit(w_.io());
    auto fired = std::make_shared<bool>(false);
    limit.expires_after(timeout);
    const bool at_deadline = deadline && *deadline <= limit.expiry() + ms(1);
    if (at_deadline) limit.expires_at(*deadline);
    limit.async_wait([fired, &call](error_code e) {
      if (!e) {
        *fired = true;
        call.notify();
      }
    });
    co_await call.wait(false);
    limit.cancel();
    if (*fired && at_deadline) deadline_hit = true;
    co_return !*fired;
  };
  // Before returning: the stream is released and the pump has stopped. When
  // the client's answer is complete (`answered`, e.g. a trailers-only gRPC
  // status sent before the request's end) the client stream is not reset:
  // a reset would drop the answer's frames still queued, and the codec ends
  // a request body that is still arriving itself (RFC 9113 8.1); the pump
  // stops when that body ends or the stream closes.
  bool answered = false;
  auto settle = [&]() -> aio::awaitable<void> {
    if (!pump->done) {
      conn->release(call);
      call.closed = true;
      call.notify();
      if (!pump->done && !answered) down.reset(exchange::ResetReason::kCancelled);
      while (!pump->done) co_await call.wait(false);
    }
    conn->release(call);
  };

  // Gives the try up before anything went downstream (a retry): the stream is
  // cancelled and the pump, which sends only a buffered body then, stops.
  auto abandon = [&]() -> aio::awaitable<void> {
    conn->release(call);
    call.closed = true;
    call.notify();
    while (!pump->done) co_await call.wait(false);
  };

  // Whether the try may still give way to filters.defaultBackend: nothing
  // of the client's body is left unsent (none, a kept one, or all sent),
  // so abandon() need not wait for the client.
  auto can_intercept = [&] { return !has_body || body_buffered || pump->done; };

  // ---- the response head
  while (!call.head && !call.closed && !pump->client_failed) {
    if (!co_await wait_call()) {
      const bool late = expired();
      w_.metrics().upstream_error(cluster.name, "timeout");
      record.error = late ? "deadline-exceeded" : "upstream-timeout";
      if (can_intercept() && hooks.intercept && hooks.intercept(504)) {
        co_await abandon();
        hooks.intercepted = 504;
        co_return H2cTry::kIntercepted;
      }
      conn->release(call);
      co_await settle();
      // 504; for a gRPC request, DEADLINE_EXCEEDED trailers-only (exchange/grpc.h)
      co_await reply(down, 504, late ? "deadline exceeded" : "upstream timed out", false);
      co_return H2cTry::kAnswered;
    }
  }
  if (pump->client_failed && !call.head) {
    conn->release(call);
    co_await settle();
    if (pump->error != 0) co_await reply(down, pump->error, pump->why, true);
    else finish(down);
    co_return H2cTry::kAnswered;
  }
  if (!call.head) {
    w_.metrics().upstream_error(cluster.name, "reset");
    const bool refused = call.code == http2::ErrorCode::kRefusedStream;
    if (refused && (!has_body || body_buffered)) {
      co_await abandon();
      co_return H2cTry::kRefused;
    }
    if (hooks.may_retry && hooks.may_retry(resilience::TryOutcome{false, true, 0})) {
      co_await abandon();
      co_return H2cTry::kRetry;
    }
    if (can_intercept() && hooks.intercept && hooks.intercept(502)) {
      co_await abandon();
      hooks.intercepted = 502;
      co_return H2cTry::kIntercepted;
    }
    co_await settle();
    co_await reply(down, 502, refused ? "upstream refused the stream" : "upstream reset the stream", false);
    co_return H2cTry::kAnswered;
  }
  // What the answer counts as for outlier detection and retries: its status,
  // or for a trailers-only gRPC answer, its grpc-status's HTTP equivalent.
  int outcome = call.status;
  if (grpc && call.status == 200 && call.ended) {
    const int g = grpc_status_in(call.headers);
    if (g > 0) outcome = exchange::http_status_for_grpc(g);
  }
  hooks.report(idx, outcome >= 500 ? resilience::UpstreamResult::kServerError : resilience::UpstreamResult::kSuccess);
  if (hooks.may_retry && hooks.may_retry(resilience::TryOutcome{false, false, outcome})) {
    w_.metrics().upstream_error(cluster.name, "retried_status");
    co_await abandon();
    co_return H2cTry::kRetry;
  }
  // filters.defaultBackend: a listed status is answered by the default
  // backend; this stream is cancelled, its body never read.
  if (can_intercept() && hooks.intercept && hooks.intercept(call.status)) {
    co_await abandon();
    hooks.intercepted = call.status;
    co_return H2cTry::kIntercepted;
  }
  record.upstream_ms = std::chrono::duration<double, std::milli>(Clock::now() - sent_at).count();
  w_.metrics().upstream_done(cluster.name, record.upstream_ms / 1000.0);
  // The upstream's 2xx to the extended CONNECT opens the tunnel: an HTTP/2
  // client gets its 200 and the stream's DATA goes both ways; an HTTP/1.1
  // client gets the 101 its handshake waits for (RFC 6455 4.2.2), and its
  // connection's bytes go both ways (net/stream_tunnel.h).
  const bool tunnel = websocket && call.status >= 200 && call.status < 300;
  const bool h1_tunnel = tunnel && !h2_websocket;
  const int status = h1_tunnel ? 101 : call.status;
  record.status = status;

  std::vector<http::Header> fields;
  fields.reserve(call.headers.size() + 3);
  if (h1_tunnel)
    fields.insert(fields.end(), {http::Header{"upgrade", "websocket"}, http::Header{"connection", "Upgrade"},
                                 http::Header{"sec-websocket-accept", accept}});
  std::optional<uint64_t> length;
  for (const auto& f : call.headers) {
    if (h1_tunnel && f.name == "sec-websocket-accept") continue;  // the gateway's answer stands
    fields.push_back(http::Header{f.name, f.value});
    if (f.name == "content-length") {
      uint64_t v = 0;
      auto [p, e] = std::from_chars(f.value.data(), f.value.data() + f.value.size(), v);
      if (e == std::errc() && p == f.value.data() + f.value.size()) length = v;
    }
  }
  resp_edits_.reset();
  if (chain != nullptr) chain->run_response(ex_, {status, &fields, false}, resp_edits_);
  if (backend_ref_ != nullptr && backend_ref_->response_headers)
    filters::add_modifier_over(*backend_ref_->response_headers, resp_edits_);
  exchange::ResponseHead head;
  head.status = status;
  if (h1_tunnel) head.reason = "Switching Protocols";
  head.fields = &fields;
  head.edits = &resp_edits_;
  head.added = &ex_.response_headers;
  head.request_id = record.request_id;
  head.content_length = length;
  head.end_stream = call.ended && call.data.empty() && call.trailers.empty();
  head.upgrade = tunnel;
  if (head.upgrade) {
    head.end_stream = false;
    head.content_length.reset();
  }
  // A head that ends the stream without a length (a trailers-only gRPC
  // status, a bodiless error) has an empty body: an HTTP/1.1 client must be
  // told, or it waits for a body until the connection closes.
  if (head.end_stream && !length && record.method != "HEAD") head.content_length = 0;
  if (grpc && head.end_stream) record.grpc_status = grpc_status_in(call.headers);  // trailers-only
  if (opts.debug_headers) {
    std::snprintf(debug_time_, sizeof debug_time_, "%.3fms", record.upstream_ms);
    debug_ = {http::Header{"x-gateway-route", record.route}, http::Header{"x-gateway-upstream", record.upstream},
              http::Header{"x-gateway-response-time", debug_time_}};
    head.debug = debug_;
  }
  if (!co_await down.send_head(head)) {
    co_await settle();
    finish(down);
    co_return H2cTry::kAnswered;
  }
  answered = head.end_stream;
  if (head.upgrade) {
    if (h2_websocket) record.status = 200;  // what the client got (RFC 8441)
    finish(down);  // logged when the tunnel opens, as an HTTP/1.1 WebSocket is
    co_await tunnel_h2_stream(w_, down, *conn, call, tunnel_idle);
    conn->release(call);
    co_return H2cTry::kAnswered;
  }

  // ---- the response body, then the trailers (gRPC's grpc-status)
  std::string chunk;
  bool ok = head.end_stream;
  while (!ok) {
    if (!call.data.empty()) {
      chunk.clear();
      chunk.swap(call.data);
      if (!co_await down.send_body(chunk, false)) break;
      conn->consume(call, chunk.size());
      continue;
    }
    if (call.ended) {
      if (!call.trailers.empty()) {
        std::vector<http::Header> trailers;
        trailers.reserve(call.trailers.size());
        for (const auto& f : call.trailers) trailers.push_back(http::Header{f.name, f.value});
        if (grpc) record.grpc_status = grpc_status_in(call.trailers);
        ok = co_await down.send_trailers(trailers);
      } else {
        ok = co_await down.send_body({}, true);
      }
      answered = ok;
      break;
    }
    if (call.closed || pump->client_failed) {
      record.error = call.closed ? "upstream-reset" : "client-gone";
      down.reset(call.closed ? exchange::ResetReason::kUpstreamTruncated : exchange::ResetReason::kCancelled);
      break;
    }
    if (!co_await wait_call()) {
      const bool late = expired();
      record.error = late ? "deadline-exceeded" : "upstream-timeout";
      w_.metrics().upstream_error(cluster.name, "timeout");
      if (grpc && late) {
        // The head went out: the status goes in trailers, and the backend's
        // stream is cancelled (settle()).
        const http::Header status[] = {{"grpc-status", "4"}, {"grpc-message", "deadline exceeded"}};
        record.grpc_status = 4;
        answered = co_await down.send_trailers(status);
      } else {
        down.reset(exchange::ResetReason::kUpstreamTruncated);
      }
      break;
    }
  }
  co_await settle();
  finish(down);
  co_return H2cTry::kAnswered;
}

// ---- response cache

// Looks the request up in the rule's cache. A hit is answered here; a miss
// of a GET that may be stored leaves `fill` set (with the leader's ticket
// when it is the first miss of its key). Concurrent misses of one key wait
// for the leader (at most `wait_limit`) on this worker: the leader's thread
// only posts the wake-up here.
aio::awaitable<bool> ExchangeDriver::cache_lookup(exchange::Downstream& down, const control::RulePolicies& pol,
                                                   milliseconds wait_limit, std::unique_ptr<CacheFill>& fill) {
  const exchange::RequestInfo& rq = down.request();
  auto rp = filters::request_policy(rq.method, *rq.headers);
  const bool is_get = rq.method == "GET";
  if (rq.body != http::BodyKind::kNone || (!rp.lookup && !rp.store)) {
    ex_.response_headers.emplace_back("x-cache", "MISS");
    co_return false;
  }
  std::string key = filters::cache_key(rq.tls, rq.host, rq.path, rq.query);
  filters::FillTicket ticket;
  if (rp.lookup) {
    for (int round = 0; round < 2; ++round) {
      std::shared_ptr<aio::steady_timer> wake;
      std::function<void()> on_fill_done;
      if (round == 0 && is_get && rp.store) {
        wake = std::make_shared<aio::steady_timer>(w_.io(), Clock::now() + wait_limit);
        on_fill_done = [weak = std::weak_ptr<aio::steady_timer>(wake), alive = w_.alive()] {
          if (!alive->load()) return;
          if (auto t = weak.lock()) asio::post(t->get_executor(), [t] { t->cancel(); });
        };
      }
      auto r = pol.cache->lookup(key, *rq.headers, Clock::now(), std::move(on_fill_done));
      if (r.kind == filters::CacheLookupKind::kHit) {
        co_await serve_cached(down, *r.response, pol);
        co_return true;
      }
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
    fill->had_authorization = http::find_header(*rq.headers, "authorization").has_value();
    fill->ticket = std::move(ticket);
  }
  co_return false;
}

// Answers the request with a stored response: its headers, then the rule's
// response header modifiers, the request id, Age and X-Cache: HIT.
aio::awaitable<void> ExchangeDriver::serve_cached(exchange::Downstream& down, const filters::CachedResponse& r,
                                                   const control::RulePolicies& pol) {
  const auto& opts = w_.server().options();
  const bool head_only = down.request().method == "HEAD";
  const bool no_body = r.status < 200 || r.status == 204 || r.status == 304;
  cached_fields_.clear();
  for (const auto& [name, value] : r.headers) cached_fields_.push_back({name, value});
  resp_edits_.reset();
  if (!pol.chain.empty()) pol.chain.run_response(ex_, {r.status, &cached_fields_, true}, resp_edits_);
  ex_.response_headers.emplace_back("age", std::to_string(r.age_seconds(Clock::now())));
  ex_.response_headers.emplace_back("x-cache", "HIT");
  record.status = r.status;
  record.upstream = "cache";
  record.trace.cache_hit = record.trace.active;

  exchange::ResponseHead head;
  head.status = r.status;
  head.fields = &cached_fields_;
  head.edits = &resp_edits_;
  head.added = &ex_.response_headers;
  head.request_id = record.request_id;
  if (!no_body) head.content_length = r.body.size();
  if (!no_body && !head_only) head.body = r.body;
  head.end_stream = true;
  if (opts.debug_headers) {
    std::snprintf(debug_time_, sizeof debug_time_, "%.3fms",
                  std::chrono::duration<double, std::milli>(Clock::now() - record.started).count());
    debug_ = {http::Header{"x-gateway-route", record.route}, http::Header{"x-gateway-upstream", "cache"},
              http::Header{"x-gateway-response-time", debug_time_}};
    head.debug = debug_;
  }
  co_await down.send_head(head);
  finish(down);
}

// The response head is here: decides whether the response will be stored.
// When it will not, the waiters are woken now rather than after the body.
void ExchangeDriver::cache_begin_fill(CacheFill& f, bool is_upgrade) {
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
  // had no body, so its head is still intact).
  for (const auto& h : resp_.headers) {
    if (!http::iequals(h.name, "vary")) continue;
    http::for_each_list_element(h.value, [&](std::string_view name) {
      for (const auto& rh : *ex_.req.headers)
        if (http::iequals(rh.name, name)) f.request_headers.emplace_back(rh.name, rh.value);
    });
  }
}

// Bytes of the response body as relayed; a body over max_object_bytes stops
// being captured (and wakes the waiters) but is still relayed in full.
void ExchangeDriver::cache_capture(std::string_view bytes) {
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

void ExchangeDriver::cache_end_fill(CacheFill& f, bool complete) {
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

// ---- filters.transform

aio::awaitable<bool> ExchangeDriver::transform_request(exchange::Downstream& down) {
  const snapshot::Transform& t = *ex_.transform.config;
  auto& metrics = w_.metrics();
  const BodyRead got = co_await read_request_body(down, t.max_body_bytes, false);
  if (got == BodyRead::kFailed) co_return false;
  if (got == BodyRead::kTooLarge) {
    metrics.transform_result(record.route, "request", "refused");
    // Appended, not "literal" + std::string&&: GCC 12 at -O3 reports a false -Wrestrict there (GCC PR 105329).
    co_await reply(down, 413,
                   std::string("request body larger than transform.maxBodyBytes (")
                       .append(std::to_string(t.max_body_bytes))
                       .append(" bytes)"),
                   true);  // the rest of the body is not read
    co_return false;
  }
  const filters::TransformOptions opts{t.root_element, t.item_element};
  replay_.clear();
  const filters::TransformResult r = ex_.transform.request == exchange::Exchange::Conversion::kJsonToXml
                                         ? filters::json_to_xml(body_, opts, replay_)
                                         : filters::xml_to_json(body_, replay_);
  if (!r.ok) {
    metrics.transform_result(record.route, "request", "refused");
    co_await reply(down, 400, std::string("request body: ").append(r.error), false);
    co_return false;
  }
  metrics.transform_result(record.route, "request", "transformed");
  append_header(up_head_, "content-length", std::to_string(replay_.size()));
  up_head_.append("\r\n");
  co_return true;
}

aio::awaitable<ExchangeDriver::BodyRead> ExchangeDriver::read_request_body(exchange::Downstream& down,
                                                                           uint64_t limit, bool partial_ok) {
  if (!body_ended_ && !partial_ok && ex_.req.body == http::BodyKind::kContentLength &&
      ex_.req.content_length > limit)
    co_return BodyRead::kTooLarge;  // refused before a byte is read
  body_early_ = true;
  while (!body_ended_ && (!partial_ok || body_.size() < limit)) {
    exchange::BodyChunk c = co_await down.read_body();
    if (c.failed) {
      if (c.error != 0) co_await reply(down, c.error, std::string(c.why), true);
      co_return BodyRead::kFailed;
    }
    if (c.h1_chunked) {  // validated framing: kept as read, and its data
      body_h1_chunked_ = true;
      body_raw_.append(c.data);
      if (!body_dechunk_.feed(c.data, &body_, &req_trailer_raw_).ok()) {
        co_await reply(down, 400, "malformed chunked request body", true);
        co_return BodyRead::kFailed;
      }
    } else {
      body_.append(c.data);
    }
    if (c.end) {
      body_ended_ = true;
      take_trailers(c);
    }
    if (!partial_ok && body_.size() > limit) co_return BodyRead::kTooLarge;
  }
  co_return body_ended_ ? BodyRead::kWhole : BodyRead::kPartial;
}

aio::awaitable<bool> ExchangeDriver::read_body_for_filter(exchange::Downstream& down) {
  exchange::Exchange::BodyRead& b = ex_.request_body;
  // The rest of the request phase (and the upstream head) reads the
  // request's views after the body is read.
  down.keep_request();
  ex_.req = down.request();
  const BodyRead got = co_await read_request_body(down, b.max_bytes, b.allow_partial);
  if (got == BodyRead::kFailed) co_return false;
  if (got == BodyRead::kTooLarge) {
    ex_.pending.reset();
    // Appended, not "literal" + std::string&&: GCC 12 at -O3 reports a false -Wrestrict there (GCC PR 105329).
    co_await reply(down, 413,
                   std::string("request body larger than extAuth.withRequestBody.maxBytes (")
                       .append(std::to_string(b.max_bytes))
                       .append(" bytes)"),
                   true);
    co_return false;
  }
  b.read = true;
  b.partial = got == BodyRead::kPartial || body_.size() > b.max_bytes;
  b.data = std::string_view(body_).substr(0, static_cast<size_t>(std::min<uint64_t>(body_.size(), b.max_bytes)));
  co_return true;
}

aio::awaitable<bool> ExchangeDriver::transform_response(exchange::Downstream& down,
                                                         const exchange::FilterChain* chain, UpstreamConn& up,
                                                         bool& upstream_reusable) {
  const snapshot::Transform& t = *ex_.transform.config;
  const milliseconds timeout = w_.server().options().upstream_timeout;
  // resp_'s fields are views into up.buf, which the reads below may move:
  // the head is copied first (this path buffers the whole body anyway).
  std::vector<std::pair<std::string, std::string>> owned;
  owned.reserve(resp_.headers.size());
  for (const auto& h : resp_.headers) owned.emplace_back(h.name, h.value);
  std::vector<http::Header> fields;
  fields.reserve(owned.size());
  for (const auto& [n, v] : owned) fields.push_back(http::Header{n, v});
  const std::string reason(resp_.reason);
  transform_in_.clear();
  std::string_view failed;  // why the upstream's body could not be read
  error_code ec;
  if (resp_.body == http::BodyKind::kContentLength) {
    if (resp_.content_length > t.max_body_bytes) {
      failed = "is larger than transform.maxBodyBytes";
    } else {
      while (up.buf.size() < resp_.content_length) {
        co_await read_some(up, up.buf, timeout, ec);
        if (ec) break;
      }
      if (ec) {
        failed = "ended early";
      } else {
        transform_in_.assign(up.buf.data(), static_cast<size_t>(resp_.content_length));
        up.buf.consume(static_cast<size_t>(resp_.content_length));
      }
    }
  } else if (resp_.body == http::BodyKind::kChunked) {
    http::ChunkedDecoder dechunk;
    while (true) {
      if (!up.buf.empty()) {
        auto step = dechunk.feed(up.buf.view(), &transform_in_);
        if (!step.ok()) {
          failed = "has malformed chunked framing";
          break;
        }
        up.buf.consume(step->consumed);
        if (step->done) break;
        if (transform_in_.size() > t.max_body_bytes) {
          failed = "is larger than transform.maxBodyBytes";
          break;
        }
      }
      co_await read_some(up, up.buf, timeout, ec);
      if (ec) {
        failed = "ended early";
        break;
      }
    }
  } else {  // delimited by the end of the connection
    upstream_reusable = false;
    while (true) {
      transform_in_.append(up.buf.view());
      up.buf.consume(up.buf.size());
      if (transform_in_.size() > t.max_body_bytes) {
        failed = "is larger than transform.maxBodyBytes";
        break;
      }
      co_await read_some(up, up.buf, timeout, ec);
      if (ec == asio::error::eof) break;
      if (ec) {
        failed = "ended early";
        break;
      }
    }
  }
  std::string why;
  if (failed.empty()) {
    const filters::TransformOptions opts{t.root_element, t.item_element};
    transform_out_.clear();
    const filters::TransformResult r = ex_.transform.response == exchange::Exchange::Conversion::kXmlToJson
                                           ? filters::xml_to_json(transform_in_, transform_out_)
                                           : filters::json_to_xml(transform_in_, opts, transform_out_);
    if (!r.ok) why = r.error;
  } else {
    why.assign("the body ").append(failed);
  }
  if (!why.empty()) {
    upstream_reusable = false;
    w_.metrics().transform_result(record.route, "response", "error");
    spdlog::warn("transform: the response of upstream {} (route {}, request {}) could not be converted: {}",
                 record.upstream, record.route, record.request_id, why);
    co_await reply(down, 502, std::string("upstream response could not be transformed: ").append(why), false,
                   "transform-error");
    co_return false;
  }
  w_.metrics().transform_result(record.route, "response", "transformed");
  resp_edits_.reset();
  if (chain != nullptr) chain->run_response(ex_, {resp_.status, &fields, false}, resp_edits_);
  if (backend_ref_ != nullptr && backend_ref_->response_headers)
    filters::add_modifier_over(*backend_ref_->response_headers, resp_edits_);
  // The converted representation: its type and length; the upstream's
  // validators and digests described the other one.
  const bool to_json = ex_.transform.response == exchange::Exchange::Conversion::kXmlToJson;
  resp_edits_.remove.push_back("content-length");
  resp_edits_.remove.push_back("etag");
  resp_edits_.remove.push_back("content-md5");
  resp_edits_.remove.push_back("digest");
  resp_edits_.set.push_back(
      http::Header{"content-type", to_json ? filters::kJsonMediaType : filters::kXmlMediaType});
  resp_edits_.add.push_back(http::Header{"vary", "accept"});
  exchange::ResponseHead head;
  head.status = resp_.status;
  head.reason = reason;
  head.fields = &fields;
  head.edits = &resp_edits_;
  head.added = &ex_.response_headers;
  head.request_id = record.request_id;
  head.content_length = transform_out_.size();
  head.body = transform_out_;
  head.end_stream = true;
  const bool sent = co_await down.send_head(head);
  finish(down);
  co_return sent;
}

// ---- request mirroring

void ExchangeDriver::mirror_request(const snapshot::RequestMirror& m, const control::Config& cfg,
                                    std::string_view upstream_host, bool body_buffered, bool upgrade) {
  if (upgrade || (ex_.req.body != http::BodyKind::kNone && !body_buffered)) {
    w_.metrics().mirror_result(m.cluster, "skipped");  // chunked, too large, or a tunnel
    return;
  }
  const control::ClusterEndpoints* c = cfg.cluster(m.cluster);
  if (c == nullptr || c->endpoints.empty()) {
    w_.metrics().mirror_result(m.cluster, "failed");
    return;
  }
  size_t idx = static_cast<size_t>(w_.random() % c->endpoints.size());
  // up_head_ is "<request line>\r\nhost: <upstream_host>\r\n<other fields>\r\n": swap the Host line.
  size_t line_end = up_head_.find("\r\n");
  size_t host_end = up_head_.find("\r\n", line_end + 2);
  std::string copy;
  copy.reserve(up_head_.size() + 8 + replay_.size());
  copy.append(up_head_, 0, line_end + 2);
  append_header(copy, "host", filters::shadow_host(upstream_host));
  copy.append(up_head_, host_end + 2);
  copy.append(replay_);
  // TLS connections are pooled per cluster (its SNI and trust), plain ones per endpoint.
  RequestMirror::Target to{m.cluster, c->endpoints[idx], c->h2c, c->tls,
                           c->tls ? c->keys[idx] + c->pool_suffix : c->keys[idx]};
  w_.mirror().send(std::move(to), std::move(copy));
}

// ---- bodies

bool request_trailer_allowed(std::string_view name) {
  static constexpr std::string_view kRefused[] = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                                                  "upgrade",    "host",       "content-length",   "te",
                                                  "trailer"};
  if (name.empty() || name.front() == ':') return false;
  for (std::string_view r : kRefused)
    if (http::iequals(name, r)) return false;
  return true;
}

bool ExchangeDriver::over_body_limit(const exchange::BodyChunk& c) const {
  return ex_.body_limit && ex_.req.body == http::BodyKind::kChunked && c.payload_bytes > *ex_.body_limit;
}

std::string ExchangeDriver::body_limit_text() const {
  // Appended, not "literal" + std::string&&: GCC 12 at -O3 reports a false -Wrestrict there (GCC PR 105329).
  return std::string("request body larger than ").append(std::to_string(ex_.body_limit.value_or(0))).append(" bytes");
}

void ExchangeDriver::add_request_trailers(std::span<const http::Header> fields) {
  for (const http::Header& f : fields) {
    if (!request_trailer_allowed(f.name)) continue;
    std::string name(f.name);
    for (char& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    req_trailers_.push_back(http2::Field{std::move(name), std::string(f.value)});
  }
}

void ExchangeDriver::take_trailers(const exchange::BodyChunk& c) {
  if (c.end && !c.trailers.empty()) add_request_trailers(c.trailers);
}

std::span<const http2::Field> ExchangeDriver::request_trailers() {
  if (!req_trailer_raw_.empty()) {  // an HTTP/1.1 chunked body's, as its decoder collected them
    std::vector<http::Header> fields;
    http::parse_trailer_fields(req_trailer_raw_, fields);
    add_request_trailers(fields);
    req_trailer_raw_.clear();
  }
  return req_trailers_;
}

// Relays the request body from the client to the upstream: the client's
// chunked framing as is, plain bytes of a streamed body chunked anew.
// Returns false on failure; client_failed tells whose side failed.
aio::awaitable<bool> ExchangeDriver::relay_request_body(exchange::Downstream& down, UpstreamConn& up,
                                                         error_code& ec, bool& client_failed) {
  const bool chunk_plain = ex_.req.body == http::BodyKind::kChunked;
  auto send = [&](std::string_view pending) -> aio::awaitable<bool> {
    if (up.tls)
      co_await asio::async_write(*up.tls, asio::buffer(pending.data(), pending.size()), awaitable_ec(ec));
    else if (!try_write(up.sock, pending, ec))
      co_await asio::async_write(up.sock, asio::buffer(pending.data(), pending.size()), awaitable_ec(ec));
    co_return !ec;
  };
  if (body_early_) {  // the part a filter read goes first, as the client framed it
    std::string_view first = body_h1_chunked_ ? std::string_view(body_raw_) : std::string_view(body_);
    if (chunk_plain && !body_h1_chunked_ && !body_.empty()) {
      char size[20];
      int n = std::snprintf(size, sizeof size, "%zx\r\n", body_.size());
      chunk_line_.assign(size, static_cast<size_t>(n)).append(body_).append("\r\n");
      first = chunk_line_;
    }
    if (!first.empty() && !co_await send(first)) co_return false;
  }
  while (true) {
    exchange::BodyChunk c = co_await down.read_body();
    if (c.failed) {
      client_failed = true;
      if (c.error != 0) co_await reply(down, c.error, std::string(c.why), true);
      co_return false;
    }
    if (over_body_limit(c)) {
      client_failed = true;
      co_await reply(down, 413, body_limit_text(), true);
      co_return false;
    }
    std::string_view data = c.data;
    if (chunk_plain && !c.h1_chunked) {  // a streamed body of another codec: HTTP/1.1 chunks
      chunk_line_.clear();
      if (!data.empty()) {
        char size[20];
        int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
        chunk_line_.append(size, static_cast<size_t>(n)).append(data).append("\r\n");
      }
      if (c.end) {  // the last chunk, with the client's trailers (an h2 client's)
        chunk_line_.append("0\r\n");
        for (const http::Header& t : c.trailers)
          if (request_trailer_allowed(t.name)) chunk_line_.append(t.name).append(": ").append(t.value).append("\r\n");
        chunk_line_.append("\r\n");
      }
      data = chunk_line_;
    }
    if (!data.empty() && !co_await send(data)) co_return false;
    if (c.end) co_return true;
  }
}

// The trailer fields of a de-chunked HTTP/1.1 answer a client gets as
// trailers: hop-by-hop ones (Connection, TE, Trailer, Transfer-Encoding...),
// framing and routing ones (Content-Length, Host) never go (RFC 9110 6.5.1;
// the HTTP/2 codec drops connection-specific fields once more).
void ExchangeDriver::forwardable_trailers(std::string_view block, std::vector<http::Header>& out) {
  http::parse_trailer_fields(block, out);
  std::erase_if(out, [](const http::Header& h) {
    return http::is_hop_by_hop(h.name) || http::iequals(h.name, "content-length") || http::iequals(h.name, "host");
  });
}

aio::awaitable<bool> ExchangeDriver::relay_response_body(exchange::Downstream& down, UpstreamConn& up,
                                                          bool& upstream_reusable, uint64_t sent) {
  auto& opts = w_.server().options();
  if (resp_.body == http::BodyKind::kNone) co_return true;
  // An HTTP/1.1 client takes the upstream's chunked framing as is; any other
  // stream gets the chunks' data.
  const bool decode = resp_.body == http::BodyKind::kChunked && !down.relays_h1_chunked;
  uint64_t left = resp_.content_length - sent;
  if (resp_.body == http::BodyKind::kChunked) chunked_.reset();
  // A decoded body's trailer section is kept and sent as trailers (HTTP/2:
  // a trailing HEADERS frame) once the body has gone out.
  trailer_block_.clear();
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
        if (decode) decoded_.clear();
        auto step = chunked_.feed(up.buf.view(), decode ? &decoded_ : nullptr, decode ? &trailer_block_ : nullptr);
        if (!step.ok()) {
          w_.metrics().upstream_error(*record.cluster, "protocol");
          record.error = "upstream_protocol";
          upstream_reusable = false;
          down.reset(exchange::ResetReason::kUpstreamProtocol);  // the head is out: all we can do
          co_return false;
        }
        take = step->consumed;
        done = step->done;
        break;
      }
      default:
        take = up.buf.size();
        break;
    }
    if (take > 0 || done) {
      std::string_view out = decode ? std::string_view(decoded_) : std::string_view(up.buf.data(), take);
      if (capture_ != nullptr && take > 0) {  // copied, and stored when complete, before it goes out
        cache_capture(std::string_view(up.buf.data(), take));
        if (done && capture_ != nullptr) {
          cache_end_fill(*capture_, true);
          capture_ = nullptr;
        }
      }
      trailer_fields_.clear();
      if (done && !trailer_block_.empty()) forwardable_trailers(trailer_block_, trailer_fields_);
      bool sent_ok = co_await down.send_body(out, done && trailer_fields_.empty());
      if (sent_ok && !trailer_fields_.empty()) sent_ok = co_await down.send_trailers(trailer_fields_);
      up.buf.consume(take);
      if (!sent_ok) {
        upstream_reusable = false;
        co_return false;
      }
    }
    if (done) {
      if (!up.buf.empty()) upstream_reusable = false;  // bytes after the response: not reusable
      co_return true;
    }
    error_code ec;
    co_await read_some(up, up.buf, opts.upstream_timeout, ec);
    if (ec) {
      upstream_reusable = false;
      // Reading until close: EOF is the end of the body. Anything else ended
      // the body before its framing said (EOF, reset or stall): the stream is
      // reset at once (HTTP/1.1: the connection closes), so the client sees the cut.
      if (resp_.body == http::BodyKind::kUntilClose && ec == asio::error::eof) {
        co_return co_await down.send_body({}, true);
      }
      upstream_truncated(timer_.timed_out, resp_.body == http::BodyKind::kContentLength
                                               ? resp_.content_length - left : chunked_.data_bytes(),
                         resp_.body == http::BodyKind::kContentLength ? resp_.content_length : 0);
      down.reset(exchange::ResetReason::kUpstreamTruncated);
      co_return false;
    }
  }
}

// ---- tracing (docs/tracing.md)

void TraceRecord::event(std::string name, tracing::Attributes attrs) {
  events.push_back(tracing::SpanEvent{std::move(name), unix_ns_now(), std::move(attrs)});
}

// The caller's context (traceparent wins over B3; an invalid one starts a new
// trace), the gateway's span id, and the head decision.
void ExchangeDriver::begin_trace(const exchange::RequestInfo& rq, tracing::Exporter& ex) {
  (void)ex;
  TraceRecord& t = record.trace;
  t.reset();
  t.active = true;
  t.start_unix_ns = unix_ns_now();
  t.client.assign(rq.client_ip);
  std::optional<tracing::TraceContext> parent;
  std::string_view traceparent, b3, b3_trace, b3_span, b3_sampled, b3_flags;
  bool have_state = false;
  if (rq.headers != nullptr) {
    for (const auto& h : *rq.headers) {
      if (!is_trace_field(h.name)) continue;
      if (http::iequals(h.name, "traceparent")) traceparent = h.value;
      else if (http::iequals(h.name, "tracestate")) {
        // Several tracestate fields are one list (RFC 9110 5.3).
        if (have_state) t.tracestate.append(",");
        t.tracestate.append(h.value);
        have_state = true;
      } else if (http::iequals(h.name, "b3")) b3 = h.value;
      else if (http::iequals(h.name, "x-b3-traceid")) b3_trace = h.value;
      else if (http::iequals(h.name, "x-b3-spanid")) b3_span = h.value;
      else if (http::iequals(h.name, "x-b3-sampled")) b3_sampled = h.value;
      else if (http::iequals(h.name, "x-b3-flags")) b3_flags = h.value;
    }
  }
  if (!traceparent.empty()) parent = tracing::parse_traceparent(traceparent);
  if (!parent) {
    t.tracestate.clear();  // tracestate only travels with a valid traceparent
    if (!b3.empty()) parent = tracing::parse_b3_single(b3);
    if (!parent && !b3_trace.empty()) parent = tracing::parse_b3_multi(b3_trace, b3_span, b3_sampled, b3_flags);
    t.b3 = parent.has_value();
  }
  if (!t.tracestate.empty() && !tracing::forwardable_tracestate(t.tracestate)) t.tracestate.clear();
  if (parent) {
    t.trace_id = parent->trace_id;
    t.parent = parent->span_id;
  } else {
    t.trace_id = tracing::make_trace_id(w_.random(), w_.random());
  }
  t.span_id = tracing::make_span_id(w_.random());
  t.sampled = tracing::head_sampled(parent, t.trace_id, w_.server().options().tracing_sampling);
  // A caller's explicit decision is followed; only the ratio of a new trace
  // (or of a B3 caller that deferred) is the route's to change.
  parent_decided_ = parent && parent->sampled.has_value();
  tracing::to_hex(t.trace_id.data(), t.trace_id.size(), t.hex);
  tracing::to_hex(t.span_id.data(), t.span_id.size(), t.hex + 32);
}

void ExchangeDriver::route_sampling(double ratio) {
  if (!parent_decided_) record.trace.sampled = tracing::ratio_sampled(record.trace.trace_id, ratio);
}

// The span goes out when the head decision sampled it, or when the gateway
// answered 5xx (decided now, at the end: errors are always worth a trace).
void ExchangeDriver::end_trace(tracing::Exporter& ex) {
  TraceRecord& t = record.trace;
  const bool error = record.status >= 500;
  if (!t.sampled && !error) return;
  tracing::Span s;
  s.trace_id = t.trace_id;
  s.span_id = t.span_id;
  s.parent_span_id = t.parent;
  s.trace_state = t.tracestate;
  s.name = record.method;
  if (!record.route.empty()) s.name.append(" ").append(record.route);
  s.start_unix_ns = t.start_unix_ns;
  s.end_unix_ns = unix_ns_now();
  s.error = error;
  auto& a = s.attributes;
  a.reserve(14);
  a.emplace_back("http.request.method", record.method);
  a.emplace_back("url.path", record.path);
  if (!record.route.empty()) a.emplace_back("http.route", record.route);
  if (record.status != 0) a.emplace_back("http.response.status_code", static_cast<int64_t>(record.status));
  a.emplace_back("server.address", record.host);
  a.emplace_back("client.address", t.client);
  std::string_view proto = record.proto;
  if (proto.substr(0, 5) == "HTTP/") proto.remove_prefix(5);
  if (!proto.empty()) a.emplace_back("network.protocol.version", std::string(proto));
  if (!record.upstream.empty() && !t.cache_hit) a.emplace_back("upstream.address", record.upstream);
  a.emplace_back("gantry.retries", static_cast<int64_t>(t.retries));
  a.emplace_back("gantry.cache_hit", t.cache_hit);
  if (!t.filter.empty()) a.emplace_back("gantry.filter", std::string(t.filter));
  a.emplace_back("gantry.request_id", record.request_id);
  if (error) {
    a.emplace_back("error.type", std::to_string(record.status));
    s.status_message = record.error != nullptr ? std::string(record.error)
                                               : std::string("HTTP ").append(std::to_string(record.status));
  } else if (record.error != nullptr) {
    a.emplace_back("error.type", std::string(record.error));
  }
  s.events = std::move(t.events);
  t.events.clear();
  ex.submit(std::move(s));
}

// ---- log

void ExchangeDriver::upstream_truncated(bool timeout, uint64_t got, uint64_t want) {
  w_.metrics().upstream_error(*record.cluster, "truncated");
  record.error = "upstream_truncated";
  spdlog::warn("upstream {} (route {}) ended the response before the end of its body ({}, {} of {} body "
               "bytes); the client connection is closed; request id {}",
               record.upstream, record.route, timeout ? "timeout" : "connection closed", got,
               want > 0 ? std::to_string(want) : std::string("unknown"), record.request_id);
}

void ExchangeDriver::finish(const exchange::Downstream& down) {
  record.proto = down.request().proto;
  log(down.request().peer_ip, down.bytes_received, down.bytes_sent);
}

void ExchangeDriver::log(std::string_view client, uint64_t bytes_in, uint64_t bytes_out) {
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - record.started).count();
  if (record.trace.active) end_trace(*w_.server().options().tracer);
  static const std::string kNoRoute = "none";
  w_.metrics().request_done(record.route.empty() ? kNoRoute : record.route, record.status, ms / 1000.0);
  if (record.grpc_status >= 0)
    w_.metrics().grpc_request_done(record.route.empty() ? kNoRoute : record.route, record.grpc_status);
  w_.metrics().sent(bytes_out);
  auto& log = w_.server().log();
  if (log.enabled()) {
    AccessRecord r;
    r.client = client;
    r.method = record.method;
    r.host = record.host;
    r.path = record.path;
    r.proto = record.proto;
    r.status = record.status;
    r.bytes_in = bytes_in;
    r.bytes_out = bytes_out;
    r.duration_ms = ms;
    r.upstream = record.upstream;
    r.upstream_ms = record.upstream_ms;
    r.route = record.route;
    r.request_id = record.request_id;
    if (record.error != nullptr) r.error = record.error;
    if (record.trace.active) {
      r.trace_id = std::string_view(record.trace.hex, 32);
      r.span_id = std::string_view(record.trace.hex + 32, 16);
    }
    log.write(r);
  }
}

}  // namespace gantry::net
