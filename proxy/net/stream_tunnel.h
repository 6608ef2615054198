// The WebSocket tunnel of an HTTP/2 stream (RFC 8441 extended CONNECT),
// written against the exchange's Downstream interface: after the exchange
// sent the upstream's 101 as the stream's 200 (ExchangeDriver::upgraded),
// tunnel_upgraded() runs tunnel_stream() on the same stream and the upstream
// connection the handshake used.
//
// - Client -> upstream: each read_body() piece is written to the upstream
//   socket before the next is asked for, and asking is what reopens the
//   stream's window (http2::Stream::read_body), so a backend that stops
//   reading stops the client at the stream window (256 KiB) plus the
//   kernel's buffers.
// - Upstream -> client: each read from the upstream is sent with send_body(),
//   which completes only when the codec took it (the client's window plus its
//   64 KiB buffer), so a client that stops reading stops the upstream reads.
// - Ends: the client's END_STREAM half-closes the upstream socket
//   (shutdown(SHUT_WR); not on a TLS upstream, whose side stays open until
//   the upstream ends), the upstream's end of stream is END_STREAM to the
//   client; the tunnel is over when both halves are, or at once when either
//   side fails: RST_STREAM from the client (or its connection gone) closes the
//   upstream connection, an upstream error resets the stream with
//   CONNECT_ERROR (RFC 9113 8.5). No traffic either way for `idle` (the
//   route's timeouts.idle, else --websocket-idle-timeout) resets the stream
//   with CANCEL and closes the upstream connection.
// - Counted as an HTTP/1.1 WebSocket tunnel is: gantry_websocket_upgrades_total,
//   _connections_active, _bytes_total{direction}, _closed_total{reason} with
//   reason client, upstream or idle_timeout (the side that ended first).
//
// tunnel_h2_stream() is the same tunnel to an HTTP/2 backend that accepted
// the extended CONNECT itself (RFC 8441 on both sides; the backend's SETTINGS
// enabled it): the stream's DATA goes both ways between the client's stream
// and the upstream one (`call` on `conn`), under both windows:
// - Client -> upstream: each read_body() piece is handed to the upstream
//   session (at most its 64 KiB request buffer ahead of the backend's
//   window) before the next is asked for.
// - Upstream -> client: the upstream stream's window reopens (consume())
//   only once the client's stream took the bytes.
// - Ends: END_STREAM either way is END_STREAM the other way (half-closes);
//   RST_STREAM from the client is RST_STREAM CANCEL to the backend; the
//   backend's RST_STREAM (or its connection failing) resets the client's
//   stream with CONNECT_ERROR; the idle timeout cancels both. Counted in the
//   same metrics.
// The client's side may also be an HTTP/1.1 connection whose Upgrade the
// driver turned into the extended CONNECT (its 101 sent): the HTTP/1.1 codec's
// read_body() then yields the connection's bytes (its EOF as END_STREAM),
// send_body() writes to it (the end a half-close), and reset() closes it.
#pragma once

#include "proxy/base/aio.h"
#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include <boost/asio/awaitable.hpp>
#include <chrono>

#include "proxy/exchange/downstream.h"

namespace gantry::net {

class Worker;
struct UpstreamConn;
class H2UpstreamConn;
struct H2Call;

::gantry::aio::awaitable<void> tunnel_stream(Worker& w, exchange::Downstream& down, UpstreamConn& up,
                                           std::chrono::milliseconds idle);

// The caller releases `call` afterwards (a stream still open is cancelled).
::gantry::aio::awaitable<void> tunnel_h2_stream(Worker& w, exchange::Downstream& down, H2UpstreamConn& conn,
                                              H2Call& call, std::chrono::milliseconds idle);

}  // namespace gantry::net
