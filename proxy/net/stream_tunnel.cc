// The WebSocket tunnel of an HTTP/2 stream: see stream_tunnel.h.
#include "proxy/net/stream_tunnel.h"

#include <boost/asio/co_spawn.hpp>
#include "proxy/base/aio.h"
#include <boost/asio/write.hpp>
#include <memory>
#include <string_view>

#include "proxy/admin/metrics.h"
#include "proxy/net/h2_upstream.h"
#include "proxy/net/wire.h"
#include "proxy/net/worker.h"

namespace gantry::net {

namespace {

// What the two pumps and the idle watch share. The watch's handler may run
// after the tunnel ended (a timer already expired cannot be cancelled): it
// holds the state and looks at `over` before touching anything else.
struct TunnelState {
  explicit TunnelState(asio::io_context& io) : idle_timer(io), upstream_finished(io) {}
  aio::steady_timer idle_timer;
  aio::steady_timer upstream_finished;  // cancelled when the upstream pump returns
  Clock::time_point last_traffic = Clock::now();
  const char* ended_by = nullptr;  // client, upstream or idle_timeout: the first side to stop
  // The client's END_STREAM came before either side stopped: the upstream's
  // end that follows answers it, and the close is the client's.
  bool client_half_closed_first = false;
  bool over = false;
  bool upstream_done = false;
};

// The upstream pump's completion: what wait_upstream_pump() waits for.
auto upstream_pump_done(std::shared_ptr<TunnelState> st) {
  return [st](std::exception_ptr) {
    st->upstream_done = true;
    st->upstream_finished.cancel();
  };
}

// A half-closed tunnel waits for the upstream's end (or the idle watch).
aio::awaitable<void> wait_upstream_pump(TunnelState& st) {
  while (!st.upstream_done) {
    error_code ec;
    st.upstream_finished.expires_at(Clock::time_point::max());
    co_await st.upstream_finished.async_wait(awaitable_ec(ec));
  }
}

// The tunnel is over: the idle watch stops, and the close is counted by the
// side that ended first.
template <class Metrics>
void end_tunnel(TunnelState& st, Metrics& m) {
  st.over = true;
  st.idle_timer.cancel();
  const char* reason = st.ended_by != nullptr ? st.ended_by : "client";
  if (st.client_half_closed_first && std::string_view(reason) == "upstream") reason = "client";
  // Counted closed before it stops counting as open: a scrape that sees no
  // tunnel open sees its close.
  m.websocket_closed.Add({{"reason", reason}}).Increment();
  m.websockets_active.Decrement();
}

// `stop_upstream` wakes the upstream pump so that it ends.
template <class StopUpstream>
void watch_idle(std::shared_ptr<TunnelState> st, exchange::Downstream* down, StopUpstream stop_upstream,
                std::chrono::milliseconds idle) {
  st->idle_timer.expires_at(st->last_traffic + idle);
  st->idle_timer.async_wait([st, down, stop_upstream, idle](error_code ec) {
    if (st->over || ec) return;
    if (Clock::now() < st->last_traffic + idle) {
      watch_idle(st, down, stop_upstream, idle);  // traffic moved the deadline
      return;
    }
    if (st->ended_by == nullptr) st->ended_by = "idle_timeout";
    down->reset(exchange::ResetReason::kCancelled);  // wakes the client pump
    stop_upstream();
  });
}

// Upstream -> client, until the upstream's end (half-closes the client's
// side) or a failure on either side.
template <class UpStream>
aio::awaitable<void> pump_to_client(UpStream& from, UpstreamConn& up, exchange::Downstream& down,
                                     TunnelState& st, prometheus::Counter& relayed) {
  error_code ec;
  while (true) {
    if (!up.buf.empty()) {  // the handshake's leftovers first (frames sent right after the 101)
      const size_t n = up.buf.size();
      if (!co_await down.send_body(std::string_view(up.buf.data(), n), false)) {
        if (st.ended_by == nullptr) st.ended_by = "client";
        break;
      }
      relayed.Increment(static_cast<double>(n));
      up.buf.clear();
    }
    char* p = up.buf.prepare(kReadChunk);
    const size_t n = co_await from.async_read_some(asio::buffer(p, up.buf.writable()), awaitable_ec(ec));
    if (ec) {
      if (st.over || st.ended_by != nullptr) {
        // The other side ended first (or the idle watch): nothing to tell the client.
      } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
        st.ended_by = "upstream";
        co_await down.send_body({}, true);  // END_STREAM: the client's half stays open
      } else {
        st.ended_by = "upstream";
        down.reset(exchange::ResetReason::kTunnelBroken);
      }
      break;
    }
    up.buf.commit(n);
    st.last_traffic = Clock::now();
  }
}

// Client -> upstream, until the client's END_STREAM (half-closes the
// upstream socket) or a failure. Returns false when the tunnel must end now.
template <class UpStream>
aio::awaitable<bool> pump_to_upstream(UpStream& to, UpstreamConn& up, exchange::Downstream& down,
                                       TunnelState& st, prometheus::Counter& relayed, bool tls) {
  while (true) {
    exchange::BodyChunk c = co_await down.read_body();
    if (c.failed) {  // RST_STREAM, the connection gone, or our own reset
      if (st.ended_by == nullptr) st.ended_by = "client";
      co_return false;
    }
    if (!c.data.empty()) {
      error_code ec;
      co_await asio::async_write(to, asio::buffer(c.data.data(), c.data.size()), awaitable_ec(ec));
      if (ec) {
        if (st.ended_by == nullptr) st.ended_by = "upstream";
        down.reset(exchange::ResetReason::kTunnelBroken);
        co_return false;
      }
      relayed.Increment(static_cast<double>(c.data.size()));
      st.last_traffic = Clock::now();
    }
    if (c.end) {
      if (st.ended_by == nullptr) st.client_half_closed_first = true;
      if (!tls) {
        error_code ignore;
        up.sock.shutdown(aio::tcp_socket::shutdown_send, ignore);
      }
      co_return true;
    }
  }
}

// Upstream stream -> client, until the backend's END_STREAM (half-closes
// the client's side), its reset, or a failure on either side.
aio::awaitable<void> pump_h2_to_client(H2UpstreamConn& conn, H2Call& call, exchange::Downstream& down,
                                        TunnelState& st, prometheus::Counter& relayed) {
  std::string chunk;
  while (!st.over) {
    if (!call.data.empty()) {
      chunk.clear();
      chunk.swap(call.data);
      if (!co_await down.send_body(chunk, false)) {
        if (st.ended_by == nullptr) st.ended_by = "client";
        break;
      }
      conn.consume(call, chunk.size());  // the backend may send as much again
      relayed.Increment(static_cast<double>(chunk.size()));
      st.last_traffic = Clock::now();
      continue;
    }
    if (call.ended) {
      if (st.ended_by == nullptr) {
        st.ended_by = "upstream";
        co_await down.send_body({}, true);  // END_STREAM: the client's half stays open
      }
      break;
    }
    if (call.closed) {  // reset by the backend, its connection gone, or released by us
      if (st.ended_by == nullptr) {
        st.ended_by = "upstream";
        down.reset(exchange::ResetReason::kTunnelBroken);
      }
      break;
    }
    co_await call.wait(false);
  }
}

// Client -> upstream stream, until the client's END_STREAM (END_STREAM to
// the backend) or a failure. Returns false when the tunnel must end now.
aio::awaitable<bool> pump_h2_to_upstream(H2UpstreamConn& conn, H2Call& call, exchange::Downstream& down,
                                          TunnelState& st, prometheus::Counter& relayed) {
  while (true) {
    exchange::BodyChunk c = co_await down.read_body();
    if (c.failed) {  // RST_STREAM, the connection gone, or our own reset
      if (st.ended_by == nullptr) st.ended_by = "client";
      co_return false;
    }
    std::string_view data = c.data;
    while (!data.empty()) {
      if (call.closed || call.id < 0) {
        if (st.ended_by == nullptr) {
          st.ended_by = "upstream";
          down.reset(exchange::ResetReason::kTunnelBroken);
        }
        co_return false;
      }
      data.remove_prefix(conn.send_data(call, data));
      if (!data.empty()) co_await call.wait(true);  // the session's buffer is full: on_writable
    }
    if (!c.data.empty()) {
      relayed.Increment(static_cast<double>(c.data.size()));
      st.last_traffic = Clock::now();
    }
    if (c.end) {
      if (st.ended_by == nullptr) st.client_half_closed_first = true;
      conn.end_request(call);
      co_return true;
    }
  }
}

}  // namespace

aio::awaitable<void> tunnel_h2_stream(Worker& w, exchange::Downstream& down, H2UpstreamConn& conn,
                                       H2Call& call, std::chrono::milliseconds idle) {
  auto& m = w.metrics().global();
  m.websocket_upgrades.Increment();
  m.websockets_active.Increment();
  auto st = std::make_shared<TunnelState>(w.io());
  st->upstream_finished.expires_at(Clock::time_point::max());
  // The call outlives the watch's handler only while `over` is false.
  auto stop_upstream = [c = &call, cn = &conn] {
    cn->release(*c);  // RST_STREAM CANCEL
    c->closed = true;
    c->notify();
  };
  watch_idle(st, &down, stop_upstream, idle);
  asio::co_spawn(w.io(), pump_h2_to_client(conn, call, down, *st, m.websocket_bytes_to_client),
                 upstream_pump_done(st));
  const bool client_ok = co_await pump_h2_to_upstream(conn, call, down, *st, m.websocket_bytes_to_upstream);
  if (!client_ok && !st->upstream_done) stop_upstream();  // the client side failed: the upstream side ends too
  co_await wait_upstream_pump(*st);
  // Both sides ended: the stream closes once the client's END_STREAM went out
  // (the caller's release() before that would reset it instead). The idle
  // watch still bounds the wait.
  while (client_ok && call.ended && !call.closed) co_await call.wait(false);
  end_tunnel(*st, m);
}

aio::awaitable<void> tunnel_stream(Worker& w, exchange::Downstream& down, UpstreamConn& up,
                                    std::chrono::milliseconds idle) {
  auto& m = w.metrics().global();
  m.websocket_upgrades.Increment();
  m.websockets_active.Increment();
  auto st = std::make_shared<TunnelState>(w.io());
  st->upstream_finished.expires_at(Clock::time_point::max());
  watch_idle(st, &down, [up = &up] {
    error_code ignore;
    up->sock.cancel(ignore);  // wakes the upstream pump
  }, idle);
  auto upstream_done = upstream_pump_done(st);
  bool client_ok;
  if (up.tls) {
    asio::co_spawn(w.io(), pump_to_client(*up.tls, up, down, *st, m.websocket_bytes_to_client), upstream_done);
    client_ok = co_await pump_to_upstream(*up.tls, up, down, *st, m.websocket_bytes_to_upstream, true);
  } else {
    asio::co_spawn(w.io(), pump_to_client(up.sock, up, down, *st, m.websocket_bytes_to_client), upstream_done);
    client_ok = co_await pump_to_upstream(up.sock, up, down, *st, m.websocket_bytes_to_upstream, false);
  }
  if (!client_ok) {
    error_code ignore;
    up.sock.cancel(ignore);  // the client side failed: the upstream pump stops too
  }
  co_await wait_upstream_pump(*st);
  end_tunnel(*st, m);
  error_code ignore;
  up.sock.close(ignore);
}

}  // namespace gantry::net
