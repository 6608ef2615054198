#include "proxy/net/h2_upstream.h"
#include "proxy/base/aio.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <cctype>

#include "proxy/net/drained_read.h"

namespace gantry::net {

namespace asio = boost::asio;
using boost::system::error_code;

namespace {
constexpr std::chrono::seconds kGoawayFlushLimit{5};
}  // namespace

aio::awaitable<void> H2Call::wait(bool writer) {
  error_code ec;
  auto& t = writer ? write_signal : signal;
  t.expires_at(aio::steady_timer::time_point::max());
  co_await t.async_wait(asio::redirect_error(aio::use_awaitable, ec));
}

http2::RequestHead h2_request_head(std::string_view h1, bool tls) {
  http2::RequestHead head;
  head.scheme = tls ? "https" : "http";
  size_t eol = h1.find("\r\n");
  std::string_view line = h1.substr(0, eol);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.rfind(' ');
  head.method.assign(line.substr(0, sp1));
  head.path.assign(line.substr(sp1 + 1, sp2 - sp1 - 1));
  size_t pos = eol + 2;
  while (pos < h1.size()) {
    eol = h1.find("\r\n", pos);
    if (eol == std::string_view::npos || eol == pos) break;
    line = h1.substr(pos, eol - pos);
    pos = eol + 2;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (name == "host") {
      head.authority.assign(value);
      continue;
    }
    head.headers.push_back(http2::Field{std::move(name), std::string(value)});
  }
  return head;
}

H2UpstreamConn::H2UpstreamConn(asio::io_context& io, aio::tcp_socket sock)
    : sock_(std::move(sock)), write_signal_(io), ready_signal_(io), keepalive_(io) {}

H2UpstreamConn::~H2UpstreamConn() = default;

aio::awaitable<std::shared_ptr<H2UpstreamConn>> H2UpstreamConn::connect(
    asio::io_context& io, asio::ip::tcp::endpoint ep, std::chrono::milliseconds timeout, error_code& ec,
    std::shared_ptr<const tls::UpstreamTlsContext> tls, std::string* tls_error, Options options) {
  aio::tcp_socket sock(io);
  aio::steady_timer limit(io);
  bool timed_out = false;
  limit.expires_after(timeout);
  limit.async_wait([&](error_code e) {
    if (!e) {
      timed_out = true;
      error_code ignore;
      sock.cancel(ignore);
    }
  });
  co_await sock.async_connect(ep, asio::redirect_error(aio::use_awaitable, ec));
  if (timed_out) ec = asio::error::timed_out;
  if (ec) {
    limit.cancel();
    co_return nullptr;
  }
  error_code ignore;
  sock.set_option(asio::ip::tcp::no_delay(true), ignore);
  if (!tls) enable_drained_reads(sock);
  auto conn = std::make_shared<H2UpstreamConn>(io, std::move(sock));
  if (tls) {
    // The handshake on the connection's own socket (the limit cancels it there now).
    conn->tls_ctx_ = tls;
    conn->tls_ = std::make_unique<asio::ssl::stream<aio::tcp_socket&>>(conn->sock_, tls->context());
    std::string why;
    SSL* ssl = conn->tls_->native_handle();
    if (tls->prepare(ssl, why)) {
      limit.async_wait([&](error_code e) {  // re-armed on the moved socket
        if (!e) {
          timed_out = true;
          error_code i;
          conn->sock_.cancel(i);
        }
      });
      co_await conn->tls_->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(aio::use_awaitable, ec));
      if (timed_out) why = "handshake timed out";
      else if (ec) why = tls::UpstreamTlsContext::failure(ssl, ec.message());
      else why = tls->check_names(ssl);
      const unsigned char* proto = nullptr;
      unsigned len = 0;
      SSL_get0_alpn_selected(ssl, &proto, &len);
      if (why.empty() && std::string_view(reinterpret_cast<const char*>(proto), len) != "h2")
        why = "the backend did not select h2 by ALPN";
    }
    if (!why.empty()) {
      limit.cancel();
      if (!ec) ec = asio::error::connection_refused;
      if (tls_error != nullptr) *tls_error = std::move(why);
      conn->sock_.close(ignore);
      co_return nullptr;
    }
  }
  const auto until = limit.expiry();
  limit.cancel();
  auto session = http2::ClientSession::create(http2::ClientLimits{}, *conn);
  if (!session.ok()) {
    ec = asio::error::no_memory;
    co_return nullptr;
  }
  conn->session_ = std::move(session).value();
  conn->options_ = std::move(options);
  conn->write_signal_.expires_at(aio::steady_timer::time_point::max());
  asio::co_spawn(io, [c = conn]() { return c->read_loop(); }, asio::detached);
  asio::co_spawn(io, [c = conn]() { return c->write_loop(); }, asio::detached);
  // Handed out once the server's SETTINGS came, within the connect timeout.
  if (!conn->ready_ && !conn->dead_) {
    conn->ready_signal_.expires_at(until);
    error_code wait;
    co_await conn->ready_signal_.async_wait(asio::redirect_error(aio::use_awaitable, wait));
  }
  if (!conn->ready_) {
    ec = conn->dead_ ? asio::error::connection_reset : asio::error::timed_out;
    conn->fail();
    co_return nullptr;
  }
  if (conn->options_.keepalive_interval.count() > 0)
    asio::co_spawn(io, [c = conn]() { return c->keepalive_loop(); }, asio::detached);
  co_return conn;
}

H2Call* H2UpstreamConn::find(int32_t id) {
  auto it = calls_.find(id);
  return it == calls_.end() ? nullptr : it->second;
}

aio::awaitable<void> H2UpstreamConn::read_loop() {
  auto self = shared_from_this();
  std::string buf(16 * 1024, '\0');
  while (!dead_) {
    error_code ec;
    // Not `co_await (c ? a : b)`: GCC 12 destroys such a temporary awaitable twice.
    size_t n;
    if (tls_) n = co_await tls_->async_read_some(asio::buffer(buf), asio::redirect_error(aio::use_awaitable, ec));
    else n = co_await sock_.async_read_some(drained_read_buffer(buf.data(), buf.size()), asio::redirect_error(aio::use_awaitable, ec));
    if (ec || dead_) break;
    last_read_ = std::chrono::steady_clock::now();
    if (!session_->receive(std::string_view(buf.data(), n)).ok()) break;
    if (!ready_ && session_->settings_received()) {
      ready_ = true;
      ready_signal_.cancel();
    }
    wake_writer();
  }
  fail();
}

aio::awaitable<void> H2UpstreamConn::write_loop() {
  auto self = shared_from_this();
  while (!dead_) {
    std::string_view out = session_->output();
    if (out.empty()) {
      if (closing_) break;  // the GOAWAY went out: the socket closes (fail())
      error_code ec;
      write_signal_.expires_at(aio::steady_timer::time_point::max());
      co_await write_signal_.async_wait(asio::redirect_error(aio::use_awaitable, ec));
      continue;
    }
    error_code ec;
    size_t n;
    if (tls_)
      n = co_await asio::async_write(*tls_, asio::buffer(out.data(), out.size()),
                                     asio::redirect_error(aio::use_awaitable, ec));
    else
      n = co_await asio::async_write(sock_, asio::buffer(out.data(), out.size()),
                                     asio::redirect_error(aio::use_awaitable, ec));
    if (ec) break;
    session_->written(n);
  }
  fail();
}

// Keepalive: sleeps until `keepalive_interval` after the last read; with
// nothing read since, PINGs and waits `keepalive_timeout` for anything to
// arrive (a PING ack or any other frame: a busy connection's ack may queue
// behind DATA). Nothing: the connection fails, its calls with it.
aio::awaitable<void> H2UpstreamConn::keepalive_loop() {
  auto self = shared_from_this();
  using clock = std::chrono::steady_clock;
  while (!dead_) {
    error_code ec;
    keepalive_.expires_at(last_read_ + options_.keepalive_interval);
    co_await keepalive_.async_wait(asio::redirect_error(aio::use_awaitable, ec));
    if (dead_) break;
    if (clock::now() - last_read_ < options_.keepalive_interval) continue;
    const auto pinged = clock::now();
    session_->ping();
    wake_writer();
    keepalive_.expires_after(options_.keepalive_timeout);
    co_await keepalive_.async_wait(asio::redirect_error(aio::use_awaitable, ec));
    if (dead_) break;
    if (last_read_ < pinged) {
      if (options_.on_keepalive_timeout) options_.on_keepalive_timeout();
      fail();
    }
  }
}

void H2UpstreamConn::shutdown() {
  if (dead_ || closing_) return;
  closing_ = true;
  session_->goaway(http2::ErrorCode::kNoError);
  wake_writer();
  // A peer that does not read never lets the GOAWAY out: closed anyway.
  // (ready_signal_ served connect() only; fail() cancels it.)
  ready_signal_.expires_after(kGoawayFlushLimit);
  ready_signal_.async_wait([self = shared_from_this()](error_code e) {
    if (!e) self->fail();
  });
}

void H2UpstreamConn::fail() {
  if (dead_) return;
  dead_ = true;
  error_code ignore;
  sock_.close(ignore);
  wake_writer();
  ready_signal_.cancel();
  keepalive_.cancel();
  auto calls = std::move(calls_);
  calls_.clear();
  for (auto& [id, c] : calls) {
    c->closed = true;
    if (!c->ended) c->code = http2::ErrorCode::kInternalError;
    c->notify();
  }
}

void H2UpstreamConn::close() { fail(); }

bool H2UpstreamConn::open(H2Call& call, const http2::RequestHead& head, bool end_stream) {
  if (!usable()) return false;
  auto id = session_->request(head, end_stream);
  if (!id.ok()) return false;
  call.id = *id;
  calls_[call.id] = &call;
  wake_writer();
  return true;
}

size_t H2UpstreamConn::send_data(H2Call& call, std::string_view data) {
  if (dead_ || call.closed) return 0;
  const size_t n = session_->send_data(call.id, data);
  if (n > 0) wake_writer();
  return n;
}

void H2UpstreamConn::end_request(H2Call& call, std::span<const http2::Field> trailers) {
  if (dead_ || call.closed) return;
  session_->end_request(call.id, trailers);
  wake_writer();
}

void H2UpstreamConn::consume(H2Call& call, size_t n) {
  if (dead_ || call.closed || n == 0) return;
  session_->consume(call.id, n);
  wake_writer();
}

void H2UpstreamConn::release(H2Call& call) {
  if (call.id < 0) return;
  if (calls_.erase(call.id) > 0 && !dead_ && !call.closed) {
    session_->reset(call.id, http2::ErrorCode::kCancel);
    wake_writer();
  }
  if (calls_.empty()) idle_since_ = std::chrono::steady_clock::now();
  call.id = -1;
}

void H2UpstreamConn::on_response(int32_t id, int status, std::vector<http2::Field>&& headers, bool end_stream) {
  H2Call* c = find(id);
  if (c == nullptr) return;
  c->head = true;
  c->status = status;
  c->headers = std::move(headers);
  if (end_stream) c->ended = true;
  c->notify();
}

void H2UpstreamConn::on_data(int32_t id, std::string_view data) {
  H2Call* c = find(id);
  if (c == nullptr) return;
  c->data.append(data);
  c->notify();
}

void H2UpstreamConn::on_response_end(int32_t id, const std::vector<http2::Field>* trailers) {
  H2Call* c = find(id);
  if (c == nullptr) return;
  c->ended = true;
  if (trailers != nullptr) c->trailers = *trailers;
  c->notify();
}

void H2UpstreamConn::on_closed(int32_t id, http2::ErrorCode code) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  H2Call* c = it->second;
  calls_.erase(it);
  if (calls_.empty()) idle_since_ = std::chrono::steady_clock::now();
  c->closed = true;
  c->code = code;
  c->notify();
}

void H2UpstreamConn::on_writable(int32_t id) {
  if (H2Call* c = find(id)) c->notify();
}

std::shared_ptr<H2UpstreamConn> usable_conn(std::vector<std::shared_ptr<H2UpstreamConn>>& pool) {
  std::erase_if(pool, [](const auto& c) { return c->dead(); });
  for (const auto& c : pool)
    if (c->usable()) return c;
  return nullptr;
}

void reap_idle_h2(std::unordered_map<std::string, std::vector<std::shared_ptr<H2UpstreamConn>>>& pools,
                  std::chrono::steady_clock::time_point now, std::chrono::milliseconds limit) {
  for (auto it = pools.begin(); it != pools.end();) {
    std::erase_if(it->second, [&](const std::shared_ptr<H2UpstreamConn>& c) {
      if (!c->dead() && c->open_streams() == 0 && now - c->idle_since() >= limit) c->shutdown();
      return c->dead() || c->closing();
    });
    it = it->second.empty() ? pools.erase(it) : std::next(it);
  }
}

}  // namespace gantry::net
