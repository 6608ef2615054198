#include "proxy/net/ext_auth_client.h"

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <cctype>
#include <cerrno>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "proxy/http/message.h"
#include "proxy/http/parser.h"
#include "proxy/net/buffer.h"

namespace gantry::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

namespace {

constexpr size_t kChunk = 16 * 1024;

auto awaitable_ec(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }

bool idle_alive(tcp::socket& s) {
  char b;
  ssize_t n = ::recv(s.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

// The attached worker thread's pooled connections.
struct ThreadState {
  explicit ThreadState(asio::io_context& i) : io(i) {}
  asio::io_context& io;
  std::unordered_map<std::string, std::vector<tcp::socket>> idle;  // by host:port
  bool closed = false;
};

thread_local std::shared_ptr<ThreadState> tl_state;

// One call's connection, shared with its timer and with abort().
struct Conn {
  explicit Conn(asio::io_context& io) : sock(io), timer(io) {}
  tcp::socket sock;
  asio::steady_timer timer;
  bool timed_out = false;
  bool aborted = false;
};

// Reads one answer into `call`. False with call.error set on failure.
asio::awaitable<bool> read_answer(Conn& c, filters::ExtAuthCall& call, bool& reusable, bool& got_any) {
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
    size_t n = co_await c.sock.async_read_some(asio::buffer(buf.prepare(kChunk), kChunk), awaitable_ec(ec));
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
    size_t n = co_await c.sock.async_read_some(asio::buffer(buf.prepare(kChunk), kChunk), awaitable_ec(ec));
    if (ec) {
      if (head.body == http::BodyKind::kUntilClose && ec == asio::error::eof) co_return true;
      call.error = std::string("connection lost in the answer body: ").append(ec.message());
      co_return false;
    }
    buf.commit(n);
  }
}

asio::awaitable<void> run_call(std::shared_ptr<ThreadState> ts, std::shared_ptr<filters::ExtAuthCall> call,
                               std::function<void()> done) {
  const std::string key = call->host + ":" + std::to_string(call->port);
  auto timer = std::make_shared<asio::steady_timer>(ts->io);
  timer->expires_after(call->timeout);
  bool ok = false;
  bool timed_out = false;
  // Two rounds at most: a pooled connection the service had closed gets one fresh retry.
  for (int round = 0; round < 2; ++round) {
    auto c = std::make_shared<Conn>(ts->io);
    call->io = c;
    bool reused = false;
    if (auto it = ts->idle.find(key); round == 0 && it != ts->idle.end()) {
      while (!it->second.empty() && !reused) {
        tcp::socket s = std::move(it->second.back());
        it->second.pop_back();
        if (idle_alive(s)) {
          c->sock = std::move(s);
          reused = true;
        }
      }
    }
    timer->async_wait([weak = std::weak_ptr<Conn>(c)](const error_code& ec) {
      auto conn = weak.lock();
      if (ec || !conn) return;
      conn->timed_out = true;
      error_code ignore;
      conn->sock.close(ignore);
    });
    error_code ec;
    if (!reused) {
      tcp::endpoint ep;
      auto addr = asio::ip::make_address(call->host, ec);
      if (!ec) {
        ep = tcp::endpoint(addr, call->port);
      } else {
        ec.clear();
        tcp::resolver resolver(ts->io);
        auto found = co_await resolver.async_resolve(call->host, std::to_string(call->port), awaitable_ec(ec));
        if (!ec && found.empty()) ec = asio::error::host_not_found;
        if (!ec) ep = *found.begin();
        if (ec) call->error = "cannot resolve " + call->host + ": " + ec.message();
      }
      if (!ec) {
        co_await c->sock.async_connect(ep, awaitable_ec(ec));
        if (ec) call->error = "cannot connect to " + key + ": " + ec.message();
      }
      if (!ec) c->sock.set_option(tcp::no_delay(true), ec);
    }
    if (!ec) {
      co_await asio::async_write(c->sock, asio::buffer(call->request), awaitable_ec(ec));
      if (ec) call->error = "cannot send to " + key + ": " + ec.message();
    }
    bool reusable = false, got_any = false;
    if (!ec) ok = co_await read_answer(*c, *call, reusable, got_any);
    timed_out = timed_out || c->timed_out;
    if (ok) {
      if (reusable && !ts->closed && !call->cancelled) {
        auto& pool = ts->idle[key];
        if (pool.size() < ExtAuthClient::kMaxIdlePerService) pool.push_back(std::move(c->sock));
      }
      break;
    }
    if (!reused || got_any || c->timed_out || c->aborted || call->cancelled) break;
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
  tl_state.reset();
}

void ExtAuthClient::start(std::shared_ptr<filters::ExtAuthCall> call, std::function<void()> done) {
  if (!tl_state || tl_state->closed) {
    call->ok = false;
    call->error = "no worker event loop on this thread";
    done();
    return;
  }
  asio::co_spawn(tl_state->io, run_call(tl_state, std::move(call), std::move(done)), asio::detached);
}

void ExtAuthClient::abort(filters::ExtAuthCall& call) {
  if (auto c = std::static_pointer_cast<Conn>(call.io)) {
    c->aborted = true;
    error_code ignore;
    c->sock.close(ignore);
  }
}

}  // namespace gantry::net
