// HTTP/2 on the proxy's listeners: see h2_listener.h.
#include "proxy/net/h2_listener.h"
#include "proxy/base/aio.h"

#include <openssl/ssl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <cctype>
#include <chrono>
#include <random>
#include <type_traits>
#include <spdlog/spdlog.h>

#include "proxy/http2/h2_downstream.h"
#include "proxy/net/exchange_driver.h"
#include "proxy/net/wire.h"
#include "proxy/net/worker.h"

namespace gantry::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

bool negotiated_h2(SSL* ssl) {
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl, &proto, &len);
  return len == 2 && proto[0] == 'h' && proto[1] == '2';
}

std::string connection_sni(SSL* ssl) {
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::string sni = name != nullptr ? name : "";
  for (auto& c : sni) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return sni;
}

// One HTTP/2 connection as its worker sees it.
struct H2Connections::Conn {
  H2Connections* owner = nullptr;
  Conn* prev = nullptr;
  Conn* next = nullptr;
  std::string peer_ip;
  std::string sni;  // TLS on a snapshot listener: the client's SNI
  std::shared_ptr<const tls::ClientCertificate> client_cert;  // TLS: RequestInfo::client_cert
  bool tls = false;
  std::shared_ptr<const ListenerTag> listener;  // null: the proxy's own
  uint16_t local_port = 0;
  std::weak_ptr<http2::Drainable> drainable;
  size_t running = 0;    // streams whose exchange has not finished
  bool served = false;   // the connection itself has ended
  bool counted = true;   // still in the worker's connection count
};

namespace {

// The client's address for rate limits and X-Forwarded-For: the peer, or,
// when the peer is a trusted proxy, the right-most X-Forwarded-For entry that
// is not trusted (the HTTP/1.1 session's rule; field names are lower case on
// HTTP/2). A view into `peer` or `fields`.
std::string_view client_ip(const std::string& peer, const std::vector<http2::Field>& fields,
                           const std::vector<Cidr>& trusted) {
  if (trusted.empty() || !contains(trusted, peer)) return peer;
  std::optional<std::string_view> xff;
  for (const auto& f : fields)
    if (f.name == "x-forwarded-for") {
      xff = f.value;
      break;
    }
  return forwarded_client(peer, xff, trusted);
}

// Keeps a connection counted while one of its streams runs its exchange.
class Running {
 public:
  explicit Running(std::shared_ptr<H2Connections::Conn> c, std::function<void(H2Connections::Conn&)> done)
      : c_(std::move(c)), done_(std::move(done)) {
    ++c_->running;
  }
  Running(const Running&) = delete;
  Running& operator=(const Running&) = delete;
  ~Running() {
    if (--c_->running == 0 && c_->served) done_(*c_);
  }

 private:
  std::shared_ptr<H2Connections::Conn> c_;
  std::function<void(H2Connections::Conn&)> done_;
};

}  // namespace

H2Connections::H2Connections(asio::io_context& io, const ServerOptions& opts, admin::WorkerMetrics& metrics,
                             AccessLog& log, std::atomic<size_t>& worker_connections,
                             std::function<bool()> draining)
    : io_(io),
      trusted_proxies_(opts.trusted_proxies),
      metrics_(metrics),
      log_(log),
      worker_connections_(worker_connections),
      draining_(std::move(draining)) {
  auto conn_opts = std::make_shared<http2::ConnectionOptions>();
  conn_opts->idle_timeout = opts.client_idle_timeout;  // as for an idle HTTP/1.1 keep-alive connection
  conn_opts_ = std::move(conn_opts);
}

H2Connections::~H2Connections() {
  for (Conn* c = conns_; c != nullptr; c = c->next) c->owner = nullptr;
}

void H2Connections::serve(aio::tcp_socket sock, std::string already_read, std::string peer_ip,
                          std::shared_ptr<const ListenerTag> listener, uint16_t local_port) {
  start(std::move(sock), std::move(already_read), std::move(peer_ip), false, std::move(listener),
        local_port);
}

void H2Connections::serve(asio::ssl::stream<aio::tcp_socket> sock, std::string peer_ip,
                          std::shared_ptr<const ListenerTag> listener, uint16_t local_port,
                          std::string sni, std::shared_ptr<const tls::ClientCertificate> client_cert) {
  start(std::move(sock), {}, std::move(peer_ip), true, std::move(listener), local_port, std::move(sni),
        std::move(client_cert));
}

template <class Socket>
void H2Connections::start(Socket sock, std::string already_read, std::string peer_ip, bool tls,
                          std::shared_ptr<const ListenerTag> listener, uint16_t local_port,
                          std::string sni, std::shared_ptr<const tls::ClientCertificate> client_cert) {
  auto c = std::make_shared<Conn>();
  c->sni = std::move(sni);
  c->client_cert = std::move(client_cert);
  c->owner = this;
  c->peer_ip = std::move(peer_ip);
  c->tls = tls;
  c->listener = std::move(listener);
  c->local_port = local_port;
  c->next = conns_;
  if (conns_ != nullptr) conns_->prev = c.get();
  conns_ = c.get();
  ++open_;
  // The HTTP/1.1 session that handed the connection over is still counted
  // until it returns; this count is the connection's from now on.
  worker_connections_.fetch_add(1, std::memory_order_relaxed);
  metrics_.global().active_connections.Increment();
  metrics_.global().http2_connections_active.Increment();
  metrics_.global().http2_connections_total.Increment();

  // Per connection: the drain handle is kept, and a connection accepted while
  // the server drains is drained as soon as its preface has been read.
  auto on_start = [this, c](std::weak_ptr<http2::Drainable> d) {
    c->drainable = d;
    if (draining_()) {
      asio::post(io_, [d] {
        if (auto p = d.lock()) p->drain();
      });
    }
  };
  http2::StreamRunner runner = [this, c](std::shared_ptr<http2::Stream> st) {
    return run_stream(c, std::move(st));
  };
  // The completion handler keeps the connection's options alive (the
  // worker's, shared by its h2c connections; a copy of its own for TLS).
  auto conn_opts = conn_opts_;
  if constexpr (!std::is_same_v<Socket, aio::tcp_socket>) {
    auto own = std::make_shared<http2::ConnectionOptions>(*conn_opts_);
    own->on_start = on_start;
    conn_opts = std::move(own);
  }
  auto done = [this, c, conn_opts](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("HTTP/2 connection handler failed: {}", ex.what());
      }
    }
    c->served = true;
    if (c->running == 0 && c->owner != nullptr) finished(*c);
  };
  if constexpr (std::is_same_v<Socket, aio::tcp_socket>) {
    // h2c parks while idle (http2::serve_parking): no coroutine frames then.
    http2::serve_parking(std::move(sock), std::move(already_read), *conn_opts, std::move(runner), std::move(done),
                         std::move(on_start));
  } else {
    // The connection's coroutine is serve()'s own (no wrapper frame).
    asio::co_spawn(io_, http2::serve(std::move(sock), std::move(already_read), *conn_opts, std::move(runner)),
                   std::move(done));
  }
}

void H2Connections::finished(Conn& c) {
  if (!c.counted) return;
  c.counted = false;
  if (c.prev != nullptr) c.prev->next = c.next;
  else conns_ = c.next;
  if (c.next != nullptr) c.next->prev = c.prev;
  c.prev = c.next = nullptr;
  --open_;
  worker_connections_.fetch_sub(1, std::memory_order_relaxed);
  metrics_.global().active_connections.Decrement();
  metrics_.global().http2_connections_active.Decrement();
}

aio::awaitable<void> H2Connections::run_stream(std::shared_ptr<Conn> c, std::shared_ptr<http2::Stream> st) {
  // Started detached (aio::spawn_detached): nothing may escape.
  try {
    if (c->owner == nullptr) co_return;
    Running running(c, [](Conn& conn) {
      if (conn.owner != nullptr) conn.owner->finished(conn);
    });
    metrics_.http2_stream();
    std::unique_ptr<http2::H2Downstream> spare;
    if (spares_.empty()) {
      spare_low_water_ = 0;
    } else {
      spare = std::move(spares_.back());
      spares_.pop_back();
      spare_low_water_ = std::min(spare_low_water_, spares_.size());
    }
    auto made = http2::H2Downstream::create(std::move(spare), st,
                                            client_ip(c->peer_ip, st->head().headers, trusted_proxies_), c->tls);
    if (made.ok()) {
      if (c->listener)
        made.value()->set_listener(c->listener->name, c->listener->own, c->local_port, c->sni);
      made.value()->set_client_cert(c->client_cert.get());
      if (worker_ != nullptr) {
        // The exchange, in this coroutine (exchange_driver.h).
        Worker& w = *worker_;
        std::unique_ptr<ExchangeDriver> d = take_driver(w);
        co_await d->run(*made.value());
        if (d->upgraded) co_await tunnel_upgraded(w, *made.value(), *d);
        give_back_driver(w, std::move(d));
        // The worker (and this object) may have gone while the exchange ran.
        if (c->owner != nullptr && spares_.size() < kMaxSpareDownstreams) {
          made.value()->recycle();
          spares_.push_back(std::move(made.value()));
        }
        co_return;
      }
      // No exchange to run (never the case in gantry-proxy once it serves h2):
      // the gateway answers instead of leaving the stream open.
      exchange::LocalReply r;
      r.status = 503;
      r.body = "HTTP/2 requests are not routed by this build";
      co_await made.value()->send_local_reply(r);
      co_return;
    }
    // A request the exchange cannot see (a :path or :authority that does not
    // normalise, CONNECT): 400, counted and logged like HTTP/1.1's.
    const auto started = Clock::now();  // create() above does not wait: the stream's start
    std::string text = made.error().message;
    text += '\n';
    const std::vector<http2::Field> fields = {{"content-type", "text/plain"},
                                              {"content-length", std::to_string(text.size())}};
    if (co_await st->send_head(400, fields, false)) co_await st->send_body(text, true);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - started).count();
    static const std::string kNoRoute = "none";
    metrics_.request_done(kNoRoute, 400, ms / 1000.0);
    if (log_.enabled()) {
      std::string id;
      new_request_id(id);
      AccessRecord r;
      r.client = c->peer_ip;
      r.method = st->head().method;
      r.host = st->head().authority;
      r.path = std::string_view(st->head().path).substr(0, 256);
      r.proto = "HTTP/2";
      r.status = 400;
      r.bytes_out = text.size();
      r.duration_ms = ms;
      r.request_id = id;
      log_.write(r);
    }
  } catch (const std::exception& e) {
    spdlog::error("HTTP/2 stream {} from {} failed: {}", st->id(), c->peer_ip, e.what());
    st->reset(http2::ErrorCode::kInternalError);
  } catch (...) {
    spdlog::error("HTTP/2 stream {} from {} failed: unknown exception", st->id(), c->peer_ip);
    st->reset(http2::ErrorCode::kInternalError);
  }
}

void H2Connections::drain_listener(const std::string& name) {
  for (Conn* c = conns_; c != nullptr; c = c->next)
    if (c->listener && c->listener->name == name)
      if (auto d = c->drainable.lock()) d->drain();
}

void H2Connections::trim_spares() {
  const size_t n = std::min(spare_low_water_, spares_.size());
  spares_.erase(spares_.begin(), spares_.begin() + static_cast<std::ptrdiff_t>(n));
  spare_low_water_ = spares_.size();
}

void H2Connections::drain_all() {
  for (Conn* c = conns_; c != nullptr; c = c->next)
    if (auto d = c->drainable.lock()) d->drain();
}

}  // namespace gantry::net
