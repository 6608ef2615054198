// TLS passthrough (snapshot `passthrough`, docs/http.md): a TLS connection
// whose ClientHello names a passthrough hostname is relayed as raw TCP to an
// endpoint of the entry's cluster; the backend terminates TLS, so the client
// sees the backend's certificate. The HTTP/1.1 session (net/server.cc) reads
// the ClientHello (tls/client_hello.h) before any handshake, only on TLS
// listeners that have entries, and calls relay_passthrough() on a match; a
// miss hands the bytes read to OpenSSL (a buffered handshake).
//
// The relay: the endpoint is chosen as the cluster's requests choose theirs
// (the worker's round-robin balancer, endpoints failing active health checks
// left out unless fewer than half remain), up to three endpoints are tried;
// then the ClientHello is written and both directions are copied through one
// 16 KiB buffer each (a read waits for the previous write: bounded memory,
// and backpressure from the slower side). A side that ends (EOF) half-closes
// the other (shutdown of its sending side) and the other direction goes on;
// a side that fails (reset) ends both. --passthrough-idle-timeout without a
// byte in either direction ends both, enforced by the worker's sweep (the
// session's deadline, on the socket of a direction still reading).
#pragma once

#include "proxy/base/aio.h"
#include <string>
#include <utility>  // std::exchange: awaitable.hpp uses it without including it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace gantry::net {

class Worker;
class SessionBase;

// Relays `client` (its ClientHello, `hello`, already read from it) to an
// endpoint of `cluster` until both directions ended. `s` is the client's
// session: its deadline bounds the connect and the idle time. Closes both
// sockets before returning.
::gantry::aio::awaitable<void> relay_passthrough(Worker& w, SessionBase& s, ::gantry::aio::tcp_socket& client,
                                               std::string hello, std::string cluster);

}  // namespace gantry::net
