#include "proxy/net/request_mirror.h"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include "proxy/base/aio.h"
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/http/message.h"
#include "proxy/http/parser.h"
#include "proxy/net/buffer.h"
#include "proxy/net/h2_upstream.h"

namespace gantry::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kReadChunk = 16 * 1024;

auto awaitable_ec(error_code& ec) { return asio::redirect_error(aio::use_awaitable, ec); }

// One copy's connection (TLS over `sock` for a TLS cluster), shared with its
// timeout handler so the handler never touches a socket that is gone; pooled
// as a whole between copies.
struct Conn {
  explicit Conn(asio::io_context& io) : sock(io) {}
  aio::tcp_socket sock;
  std::shared_ptr<const tls::UpstreamTlsContext> tls_ctx;       // keeps the context alive
  std::unique_ptr<asio::ssl::stream<aio::tcp_socket&>> tls;         // after sock: destroyed first
  bool done = false;
  bool timed_out = false;

  aio::awaitable<size_t> read_some(char* p, size_t n, error_code& ec) {
    // Not `co_await (c ? a : b)`: GCC 12 destroys such a temporary awaitable twice.
    if (tls) co_return co_await tls->async_read_some(asio::buffer(p, n), awaitable_ec(ec));
    co_return co_await sock.async_read_some(asio::buffer(p, n), awaitable_ec(ec));
  }
  aio::awaitable<void> write(const std::string& bytes, error_code& ec) {
    if (tls) co_await asio::async_write(*tls, asio::buffer(bytes), awaitable_ec(ec));
    else co_await asio::async_write(sock, asio::buffer(bytes), awaitable_ec(ec));
  }
  // The handshake with the cluster's TLS settings (SNI, verification).
  aio::awaitable<void> handshake(std::shared_ptr<const tls::UpstreamTlsContext> ctx, error_code& ec) {
    tls_ctx = std::move(ctx);
    tls = std::make_unique<asio::ssl::stream<aio::tcp_socket&>>(sock, tls_ctx->context());
    std::string why;
    if (!tls_ctx->prepare(tls->native_handle(), why)) {
      ec = asio::error::invalid_argument;
      co_return;
    }
    co_await tls->async_handshake(asio::ssl::stream_base::client, awaitable_ec(ec));
    if (!ec && !tls_ctx->check_names(tls->native_handle()).empty()) ec = asio::error::access_denied;
  }
};

bool idle_alive(aio::tcp_socket& s) {
  char b;
  ssize_t n = ::recv(s.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

struct RequestMirror::State {
  State(asio::io_context& i, admin::WorkerMetrics& m, Options o) : io(i), metrics(m), opts(o) {}
  asio::io_context& io;
  admin::WorkerMetrics& metrics;
  Options opts;
  size_t in_flight = 0;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Conn>>> idle;  // HTTP/1.1, by pool key
  // HTTP/2 mirror clusters: connections by pool key, shared by the copies
  // (a connection is used while it takes one more stream).
  std::unordered_map<std::string, std::vector<std::shared_ptr<H2UpstreamConn>>> h2;
  bool closed = false;  // the worker is going away: nothing is pooled or counted
};

namespace {

// Reads one response to its end on `c`. True when it came whole; `reusable`
// tells whether the connection may carry the next copy.
aio::awaitable<bool> read_response(Conn& c, bool& reusable, bool& got_any) {
  Buffer buf{kReadChunk};
  http::ResponseParser parser;
  http::ResponseHead head;
  error_code ec;
  while (true) {  // the head (1xx interim answers skipped)
    if (!buf.empty()) {
      auto st = parser.parse(buf.view(), head, false);
      if (st == http::ParseState::kError) co_return false;
      if (st == http::ParseState::kComplete) {
        buf.consume(parser.head_size());
        if (head.status >= 100 && head.status < 200) {
          parser.reset();
          head.clear();
          continue;
        }
        break;
      }
    }
    size_t n = co_await c.read_some(buf.prepare(kReadChunk), kReadChunk, ec);
    if (ec) co_return false;
    buf.commit(n);
    got_any = true;
  }
  reusable = head.keep_alive && head.body != http::BodyKind::kUntilClose;
  uint64_t left = head.content_length;
  http::ChunkedDecoder chunked;
  while (true) {  // the body, discarded
    bool done = false;
    switch (head.body) {
      case http::BodyKind::kNone:
        done = true;
        break;
      case http::BodyKind::kContentLength: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
        left -= take;
        buf.consume(take);
        done = left == 0;
        break;
      }
      case http::BodyKind::kChunked: {
        auto step = chunked.feed(buf.view());
        if (!step.ok()) co_return false;
        buf.consume(step->consumed);
        done = step->done;
        break;
      }
      default:
        buf.clear();
        break;
    }
    if (done) {
      if (!buf.empty()) reusable = false;
      co_return true;
    }
    size_t n = co_await c.read_some(buf.prepare(kReadChunk), kReadChunk, ec);
    if (ec) co_return head.body == http::BodyKind::kUntilClose&& ec == asio::error::eof;
    buf.commit(n);
  }
}

struct InFlight {
  RequestMirror::State& s;
  ~InFlight() { --s.in_flight; }
};

// One copy as a stream on an HTTP/2 connection to the endpoint: the head and
// body of the HTTP/1.1 `request` as HEADERS and DATA; the answer's DATA is
// consumed (the windows reopen) and dropped. Sent: the answer came whole.
aio::awaitable<void> run_copy_h2(std::shared_ptr<RequestMirror::State> st, RequestMirror::Target to,
                                  std::string request) {
  InFlight guard{*st};
  const auto deadline = std::chrono::steady_clock::now() + st->opts.timeout;
  std::shared_ptr<H2UpstreamConn> conn = usable_conn(st->h2[to.pool_key]);
  if (!conn) {
    error_code ec;
    auto addr = asio::ip::make_address(to.ep.address, ec);
    H2UpstreamConn::Options copts;
    copts.keepalive_interval = st->opts.h2_keepalive_interval;
    copts.keepalive_timeout = st->opts.h2_keepalive_timeout;
    if (!ec)
      conn = co_await H2UpstreamConn::connect(st->io, tcp::endpoint(addr, to.ep.port), st->opts.timeout, ec, to.tls,
                                              nullptr, std::move(copts));
    if (!conn || st->closed) {
      if (conn) conn->close();
      if (!st->closed) st->metrics.mirror_result(to.cluster, "failed");
      co_return;
    }
    auto& list = st->h2[to.pool_key];
    if (list.size() < st->opts.max_idle_per_endpoint) list.push_back(conn);
  }
  const size_t head_end = request.find("\r\n\r\n");
  const std::string_view head_text = std::string_view(request).substr(0, head_end + 4);
  std::string_view body = std::string_view(request).substr(head_end + 4);
  H2Call call(st->io.get_executor());
  bool sent = false;
  if (conn->open(call, h2_request_head(head_text, to.tls != nullptr), body.empty())) {
    aio::steady_timer limit(st->io);
    auto fired = std::make_shared<bool>(false);
    limit.expires_at(deadline);
    limit.async_wait([fired, &call](const error_code& e) {
      if (e) return;
      *fired = true;
      call.notify();
    });
    while (!body.empty() && !call.closed && !*fired) {
      body.remove_prefix(conn->send_data(call, body));
      if (!body.empty()) co_await call.wait(true);
    }
    if (body.empty() && !call.closed && !*fired && head_end + 4 < request.size()) conn->end_request(call);
    while (!call.ended && !call.closed && !*fired) {
      if (!call.data.empty()) {
        conn->consume(call, call.data.size());
        call.data.clear();
        continue;
      }
      co_await call.wait(false);
    }
    limit.cancel();
    sent = call.head && call.ended;
    conn->release(call);
  }
  if (!st->closed) st->metrics.mirror_result(to.cluster, sent ? "sent" : "failed");
}

aio::awaitable<void> run_copy(std::shared_ptr<RequestMirror::State> st, RequestMirror::Target to,
                               std::string request) {
  InFlight guard{*st};
  aio::steady_timer timer(st->io);
  timer.expires_after(st->opts.timeout);
  bool sent = false;
  // Two rounds at most: a pooled connection the peer had closed gets one fresh retry.
  for (int round = 0; round < 2 && !sent; ++round) {
    std::shared_ptr<Conn> c;
    if (auto it = st->idle.find(to.pool_key); round == 0 && it != st->idle.end()) {
      while (!it->second.empty() && !c) {
        std::shared_ptr<Conn> idle = std::move(it->second.back());
        it->second.pop_back();
        if (idle_alive(idle->sock)) c = std::move(idle);
      }
    }
    const bool reused = c != nullptr;
    if (!reused) c = std::make_shared<Conn>(st->io);
    c->done = false;
    timer.async_wait([c](const error_code& ec) {
      if (ec || c->done) return;
      c->timed_out = true;
      error_code ignore;
      c->sock.cancel(ignore);
    });
    error_code ec;
    if (!reused) {
      auto addr = asio::ip::make_address(to.ep.address, ec);
      if (!ec) co_await c->sock.async_connect(tcp::endpoint(addr, to.ep.port), awaitable_ec(ec));
      if (!ec) c->sock.set_option(tcp::no_delay(true), ec);
      if (!ec && to.tls) co_await c->handshake(to.tls, ec);  // a TLS cluster (BackendTLSPolicy)
    }
    if (!ec) co_await c->write(request, ec);
    bool reusable = false, got_any = false;
    bool ok = !ec && co_await read_response(*c, reusable, got_any);
    c->done = true;
    if (ok) {
      sent = true;
      if (reusable && !st->closed) {
        auto& pool = st->idle[to.pool_key];
        if (pool.size() < st->opts.max_idle_per_endpoint) pool.push_back(std::move(c));
      }
      break;
    }
    if (!reused || got_any || c->timed_out) break;  // only a stale pooled connection is retried
    timer.cancel();  // re-armed by the next round's wait (the expiry stays)
  }
  if (!st->closed) st->metrics.mirror_result(to.cluster, sent ? "sent" : "failed");
}

}  // namespace

RequestMirror::RequestMirror(asio::io_context& io, admin::WorkerMetrics& metrics, Options opts)
    : state_(std::make_shared<State>(io, metrics, opts)) {}

RequestMirror::~RequestMirror() {
  state_->closed = true;
  state_->idle.clear();
  for (auto& [key, list] : state_->h2)
    for (auto& c : list) c->close();
  state_->h2.clear();
}

bool RequestMirror::send(Target to, std::string request) {
  if (state_->in_flight >= state_->opts.max_in_flight) {
    state_->metrics.mirror_result(to.cluster, "dropped");
    return false;
  }
  ++state_->in_flight;
  if (to.h2)
    asio::co_spawn(state_->io, run_copy_h2(state_, std::move(to), std::move(request)), asio::detached);
  else
    asio::co_spawn(state_->io, run_copy(state_, std::move(to), std::move(request)), asio::detached);
  return true;
}

size_t RequestMirror::in_flight() const { return state_->in_flight; }

void RequestMirror::reap_idle(std::chrono::steady_clock::time_point now, std::chrono::milliseconds limit) {
  reap_idle_h2(state_->h2, now, limit);
}

uint64_t sample_mirrors(const std::vector<snapshot::RequestMirror>& mirrors, uint64_t random) {
  uint64_t mask = 0;
  for (size_t i = 0; i < mirrors.size() && i < 64; ++i) {
    const snapshot::RequestMirror& m = mirrors[i];
    bool copy = m.numerator >= m.denominator;
    if (!copy && m.numerator > 0) {
      // splitmix64 of the request's value and the mirror's index: independent draws.
      uint64_t z = random + (i + 1) * 0x9e3779b97f4a7c15ull;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      copy = z % m.denominator < m.numerator;
    }
    if (copy) mask |= uint64_t{1} << i;
  }
  return mask;
}

}  // namespace gantry::net
