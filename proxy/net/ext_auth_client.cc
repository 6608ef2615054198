#include "proxy/net/ext_auth_client.h"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include "proxy/base/aio.h"
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/http/message.h"
#include "proxy/http/parser.h"
#include "proxy/net/buffer.h"
#include "proxy/net/h2_upstream.h"
#include "proxy/tls/upstream_tls.h"

namespace gantry::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kChunk = 16 * 1024;

auto awaitable_ec(error_code& ec) { return asio::redirect_error(aio::use_awaitable, ec); }

// A connection to the service: the socket, and TLS over it (https://).
// Heap-held: the TLS stream refers to the socket.
struct Link {
  explicit Link(asio::io_context& io) : sock(io) {}
  aio::tcp_socket sock;
  std::unique_ptr<asio::ssl::stream<aio::tcp_socket&>> tls;
  // The TLS context, held while the connection lives: its address is in the
  // pool key, so it must not be reused by another context meanwhile.
  std::shared_ptr<const void> ctx;
};

// The I/O of one call, for abort() and the timeout.
struct CallIo {
  virtual ~CallIo() = default;
  virtual void stop() = 0;
};

bool idle_alive(aio::tcp_socket& s) {
  char b;
  ssize_t n = ::recv(s.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// The attached worker thread's pooled connections.
struct ThreadState {
  explicit ThreadState(asio::io_context& i) : io(i) {}
  asio::io_context& io;
  std::unordered_map<std::string, std::vector<std::unique_ptr<Link>>> idle;  // by [tls:]host:port
  std::unordered_map<std::string, std::shared_ptr<H2UpstreamConn>> h2;     // gRPC, by [tls:]host:port
  bool closed = false;
};

thread_local std::shared_ptr<ThreadState> tl_state;

// One call's connection, shared with its timer and with abort().
struct Conn final : CallIo {
  explicit Conn(asio::io_context& io) : link(std::make_unique<Link>(io)), timer(io) {}
  std::unique_ptr<Link> link;
  aio::steady_timer timer;
  bool timed_out = false;
  bool aborted = false;
  void stop() override {
    aborted = true;
    error_code ignore;
    link->sock.close(ignore);
  }
};

aio::awaitable<size_t> read_some(Link& l, Buffer& buf, error_code& ec) {
  // Not `co_await (c ? a : b)`: GCC 12 destroys such a temporary awaitable twice.
  size_t n;
  if (l.tls) n = co_await l.tls->async_read_some(asio::buffer(buf.prepare(kChunk), kChunk), awaitable_ec(ec));
  else n = co_await l.sock.async_read_some(asio::buffer(buf.prepare(kChunk), kChunk), awaitable_ec(ec));
  co_return n;
}

// Reads one answer into `call`. False with call.error set on failure.
aio::awaitable<bool> read_answer(Conn& c, filters::ExtAuthCall& call, bool& reusable, bool& got_any) {
  Buffer buf{kChunk};
  http::ResponseParser parser;
  http::ResponseHead head;
  error_code ec;
  while (true) {  // the head (1xx interim answers skipped)
    if (!buf.empty()) {
      auto st = parser.parse(buf.view(), head, call.head_only);
      if (st == http::ParseState::kError) {
        call.error = "malformed answer: ";
        call.error.append(parser.error().reason);
        co_return false;
      }
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
    size_t n = co_await read_some(*c.link, buf, ec);
    if (ec) {
      call.error = got_any ? "connection lost in the answer: " : "no answer: ";
      call.error.append(ec.message());
      co_return false;
    }
    buf.commit(n);
    got_any = true;
  }
  call.status = head.status;
  call.headers.clear();
  for (const auto& h : head.headers) {
    std::string name(h.name);
    for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    call.headers.emplace_back(std::move(name), std::string(h.value));
  }
  reusable = head.keep_alive && head.body != http::BodyKind::kUntilClose;
  if (head.body == http::BodyKind::kContentLength && head.content_length > call.max_body) {
    // appended: GCC PR 105329 (false -Wrestrict at -O3 for "literal" + std::string&&)
    call.error = std::string("answer body over ").append(std::to_string(call.max_body)).append(" bytes");
    co_return false;
  }
  uint64_t left = head.content_length;
  http::ChunkedDecoder chunked;
  call.body.clear();
  while (true) {
    bool done = false;
    switch (head.body) {
      case http::BodyKind::kNone:
        done = true;
        break;
      case http::BodyKind::kContentLength: {
        size_t take = static_cast<size_t>(std::min<uint64_t>(left, buf.size()));
        call.body.append(buf.data(), take);
        left -= take;
        buf.consume(take);
        done = left == 0;
        break;
      }
      case http::BodyKind::kChunked: {
        auto step = chunked.feed(buf.view(), &call.body);
        if (!step.ok()) {
          call.error = "malformed chunked answer body";
          co_return false;
        }
        buf.consume(step->consumed);
        done = step->done;
        break;
      }
      case http::BodyKind::kUntilClose:
        call.body.append(buf.data(), buf.size());
        buf.clear();
        break;
    }
    if (call.body.size() > call.max_body) {
      // appended: GCC PR 105329 (false -Wrestrict at -O3 for "literal" + std::string&&)
    call.error = std::string("answer body over ").append(std::to_string(call.max_body)).append(" bytes");
      co_return false;
    }
    if (done) {
      if (!buf.empty()) reusable = false;
      co_return true;
    }
    size_t n = co_await read_some(*c.link, buf, ec);
    if (ec) {
      if (head.body == http::BodyKind::kUntilClose && ec == asio::error::eof) co_return true;
      call.error = std::string("connection lost in the answer body: ").append(ec.message());
      co_return false;
    }
    buf.commit(n);
  }
}

// The service's address (an IP literal, else resolved). Empty `why`: found.
aio::awaitable<tcp::endpoint> endpoint_of(ThreadState& ts, const filters::ExtAuthCall& call, std::string& why) {
  error_code ec;
  auto addr = asio::ip::make_address(call.host, ec);
  if (!ec) co_return tcp::endpoint(addr, call.port);
  tcp::resolver resolver(ts.io);
  auto found = co_await resolver.async_resolve(call.host, std::to_string(call.port), awaitable_ec(ec));
  if (!ec && found.empty()) ec = asio::error::host_not_found;
  if (ec) {
    why = "cannot resolve " + call.host + ": " + ec.message();
    co_return tcp::endpoint{};
  }
  co_return *found.begin();
}

// Connections are pooled per address and, for TLS, per context: one that a
// route's CA verified is never handed to a route that trusts other CAs.
std::string pool_key(const filters::ExtAuthCall& call) {
  std::string key;
  if (call.tls) {
    char ctx[32];
    std::snprintf(ctx, sizeof ctx, "tls:%p:", call.tls.get());
    key.append(ctx);
  }
  key.append(call.host).append(":").append(std::to_string(call.port));
  return key;
}

aio::awaitable<void> run_call(std::shared_ptr<ThreadState> ts, std::shared_ptr<filters::ExtAuthCall> call,
                               std::function<void()> done) {
  const std::string key = pool_key(*call);
  const std::string where = call->host + ":" + std::to_string(call->port);
  const auto* tls = static_cast<const tls::UpstreamTlsContext*>(call->tls.get());
  auto timer = std::make_shared<aio::steady_timer>(ts->io);
  timer->expires_after(call->timeout);
  bool ok = false;
  bool timed_out = false;
  // Two rounds at most: a pooled connection the service had closed gets one fresh retry.
  for (int round = 0; round < 2; ++round) {
    auto c = std::make_shared<Conn>(ts->io);
    call->io = std::shared_ptr<CallIo>(c);
    bool reused = false;
    if (auto it = ts->idle.find(key); round == 0 && it != ts->idle.end()) {
      while (!it->second.empty() && !reused) {
        std::unique_ptr<Link> l = std::move(it->second.back());
        it->second.pop_back();
        if (idle_alive(l->sock)) {
          c->link = std::move(l);
          reused = true;
        }
      }
    }
    timer->async_wait([weak = std::weak_ptr<Conn>(c)](const error_code& ec) {
      auto conn = weak.lock();
      if (ec || !conn) return;
      conn->timed_out = true;
      error_code ignore;
      conn->link->sock.close(ignore);
    });
    error_code ec;
    if (!reused) {
      tcp::endpoint ep = co_await endpoint_of(*ts, *call, call->error);
      if (!call->error.empty()) ec = asio::error::host_not_found;
      if (!ec) {
        co_await c->link->sock.async_connect(ep, awaitable_ec(ec));
        if (ec) call->error = "cannot connect to " + where + ": " + ec.message();
      }
      if (!ec) c->link->sock.set_option(tcp::no_delay(true), ec);
      if (!ec && tls != nullptr) {  // https://: the certificate verified for the service's name
        c->link->tls = std::make_unique<asio::ssl::stream<aio::tcp_socket&>>(c->link->sock, tls->context());
        c->link->ctx = call->tls;
        SSL* ssl = c->link->tls->native_handle();
        std::string why;
        if (tls->prepare(ssl, why)) {
          co_await c->link->tls->async_handshake(asio::ssl::stream_base::client, awaitable_ec(ec));
          if (ec && !c->timed_out) why = tls::UpstreamTlsContext::failure(ssl, ec.message());
          else if (!ec) why = tls->check_names(ssl);
        }
        if (!why.empty()) {
          call->error = "TLS to " + where + ": " + why;
          if (!ec) ec = asio::error::connection_refused;
        } else if (ec) {
          call->error = "TLS to " + where + ": " + ec.message();
        }
      }
    }
    if (!ec) {
      if (c->link->tls) co_await asio::async_write(*c->link->tls, asio::buffer(call->request), awaitable_ec(ec));
      else co_await asio::async_write(c->link->sock, asio::buffer(call->request), awaitable_ec(ec));
      if (ec) call->error = "cannot send to " + where + ": " + ec.message();
    }
    bool reusable = false, got_any = false;
    if (!ec) ok = co_await read_answer(*c, *call, reusable, got_any);
    timed_out = timed_out || c->timed_out;
    if (ok) {
      if (reusable && !ts->closed && !call->cancelled) {
        auto& pool = ts->idle[key];
        if (pool.size() < ExtAuthClient::kMaxIdlePerService) pool.push_back(std::move(c->link));
      }
      break;
    }
    if (!reused || got_any || c->timed_out || c->aborted || call->cancelled) break;
    call->error.clear();
    timer->cancel();  // re-armed by the next round (the expiry stays)
  }
  timer->cancel();
  call->io.reset();
  if (call->cancelled) co_return;
  call->ok = ok;
  if (!ok && timed_out)
    call->error = std::string("no answer within ").append(std::to_string(call->timeout.count())).append(" ms");
  done();
}

// A gRPC call's stream, shared with the timeout and abort().
struct GrpcIo final : CallIo {
  explicit GrpcIo(asio::io_context& io) : h2(io.get_executor()) {}
  H2Call h2;
  bool stopped = false;
  bool timed_out = false;
  void stop() override {
    stopped = true;
    h2.notify();
  }
};

// gRPC ext_authz: one unary call (POST call->path, the framed CheckRequest)
// on the worker's HTTP/2 connection to the service; the answer's status,
// fields and trailers (merged, lower-case) and DATA into `call`.
aio::awaitable<void> run_grpc(std::shared_ptr<ThreadState> ts, std::shared_ptr<filters::ExtAuthCall> call,
                               std::function<void()> done) {
  const std::string key = pool_key(*call);
  const std::string where = call->host + ":" + std::to_string(call->port);
  auto io = std::make_shared<GrpcIo>(ts->io);
  call->io = std::shared_ptr<CallIo>(io);
  aio::steady_timer timer(ts->io);
  timer.expires_after(call->timeout);
  timer.async_wait([weak = std::weak_ptr<GrpcIo>(io)](const error_code& ec) {
    auto g = weak.lock();
    if (ec || !g) return;
    g->timed_out = true;
    g->stop();
  });
  const auto started = std::chrono::steady_clock::now();
  bool ok = false;
  std::shared_ptr<H2UpstreamConn> conn;
  if (auto it = ts->h2.find(key); it != ts->h2.end() && it->second->usable()) conn = it->second;
  if (!conn) {
    tcp::endpoint ep = co_await endpoint_of(*ts, *call, call->error);
    if (call->error.empty() && !io->stopped) {
      error_code ec;
      std::string tls_error;
      auto tls = std::static_pointer_cast<const tls::UpstreamTlsContext>(call->tls);
      conn = co_await H2UpstreamConn::connect(ts->io, ep, call->timeout, ec, tls, &tls_error);
      if (!conn) {
        call->error = tls_error.empty() ? "cannot connect to " + where + ": " + ec.message()
                                        : "TLS to " + where + ": " + tls_error;
      } else if (ts->closed) {
        conn->close();
        conn.reset();
        call->error = "the worker is stopping";
      } else {
        if (auto old = ts->h2.find(key); old != ts->h2.end() && old->second != conn) old->second->close();
        ts->h2[key] = conn;
      }
    }
  }
  H2Call& hc = io->h2;
  if (conn && !io->stopped) {
    http2::RequestHead head;
    head.method = "POST";
    head.scheme = call->tls ? "https" : "http";
    head.authority = call->authority;
    head.path = call->path;
    head.headers.push_back({"content-type", "application/grpc"});
    head.headers.push_back({"te", "trailers"});
    const auto left = call->timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - started);
    head.headers.push_back({"grpc-timeout", std::to_string(std::max<int64_t>(1, left.count())) + "m"});
    head.content_length = call->request.size();
    if (!conn->open(hc, head, false)) {
      call->error = "cannot open a stream to " + where;
    } else {
      std::string_view rest = call->request;
      while (!rest.empty() && !hc.closed && !io->stopped) {
        rest.remove_prefix(conn->send_data(hc, rest));
        if (!rest.empty()) co_await hc.wait(true);
      }
      if (rest.empty() && !hc.closed && !io->stopped) conn->end_request(hc);
      size_t consumed = 0;  // DATA bytes whose window was given back
      while (!hc.ended && !hc.closed && !io->stopped && hc.data.size() <= call->max_body) {
        co_await hc.wait(false);
        if (hc.data.size() > consumed) {
          conn->consume(hc, hc.data.size() - consumed);
          consumed = hc.data.size();
        }
      }
      if (hc.data.size() > call->max_body) {
        call->error = std::string("answer over ").append(std::to_string(call->max_body)).append(" bytes");
      } else if (hc.ended && hc.head) {
        ok = true;
        call->status = hc.status;
        call->headers.clear();
        for (auto* list : {&hc.headers, &hc.trailers})
          for (auto& f : *list) call->headers.emplace_back(f.name, f.value);
        call->body = std::move(hc.data);
      } else if (!io->stopped) {
        call->error = std::string("the stream to ").append(where).append(" closed without an answer (HTTP/2 error ")
                          .append(std::to_string(static_cast<int>(hc.code))).append(")");
      }
      conn->release(hc);
    }
  }
  timer.cancel();
  call->io.reset();
  if (call->cancelled) co_return;
  call->ok = ok;
  if (!ok && io->timed_out)
    call->error = std::string("no answer within ").append(std::to_string(call->timeout.count())).append(" ms");
  else if (!ok && call->error.empty())
    call->error = "the call failed";
  done();
}

}  // namespace

ExtAuthClient& ExtAuthClient::global() {
  static ExtAuthClient c;
  return c;
}

void ExtAuthClient::attach(asio::io_context& io) { tl_state = std::make_shared<ThreadState>(io); }

void ExtAuthClient::detach() {
  if (!tl_state) return;
  tl_state->closed = true;
  tl_state->idle.clear();
  for (auto& [key, conn] : tl_state->h2) conn->close();
  tl_state->h2.clear();
  tl_state.reset();
}

void ExtAuthClient::start(std::shared_ptr<filters::ExtAuthCall> call, std::function<void()> done) {
  if (!tl_state || tl_state->closed) {
    call->ok = false;
    call->error = "no worker event loop on this thread";
    done();
    return;
  }
  if (call->grpc)
    asio::co_spawn(tl_state->io, run_grpc(tl_state, std::move(call), std::move(done)), asio::detached);
  else
    asio::co_spawn(tl_state->io, run_call(tl_state, std::move(call), std::move(done)), asio::detached);
}

void ExtAuthClient::abort(filters::ExtAuthCall& call) {
  if (auto c = std::static_pointer_cast<CallIo>(call.io)) c->stop();
}

std::shared_ptr<const void> ExtAuthClient::prepare(const snapshot::ExtAuth& config, std::string& why) {
  if (!config.tls) return nullptr;
  snapshot::UpstreamTls t;
  t.server_name = config.host;  // SNI, and the name the certificate must carry
  t.ca_pem = config.ca_pem;
  t.system_ca = config.ca_pem.empty();
  t.verify = true;
  if (config.grpc) t.alpn = {"h2"};
  auto ctx = tls::UpstreamTlsContext::create("extAuth " + config.authority, t, config.grpc);
  if (!ctx.ok()) {
    why = ctx.error().message;
    return nullptr;
  }
  return std::move(ctx).value();
}

}  // namespace gantry::net
