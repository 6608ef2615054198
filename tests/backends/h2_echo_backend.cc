// gantry-h2-echo: an HTTP/2 server built on the proxy's HTTP/2 codec and
// connection driver (proxy/http2/), for the tests that exercise that codec on
// real sockets before it is wired into gantry-proxy's listeners: h2spec runs
// against it (tests/integration/test_http2_codec.py), and it is the h2 backend of
// later upstream-h2 tests.
//
// It listens for h2c with prior knowledge (--listen) and, with --tls-listen,
// --cert and --key, for TLS with ALPN h2. Every request is read to its end
// and answered 200 with a text body "METHOD PATH BYTES\n" (BYTES: request
// body bytes received), followed by the trailer `x-echo-bytes: BYTES` when the
// request said `te: trailers`. /bytes/N answers N bytes (flow-control tests);
// /local/NNN answers the gateway's local reply NNN (trailers-only gRPC status
// for an application/grpc request); /delay/MS answers after MS milliseconds,
// /stall/MS sends the head at once and the rest after MS milliseconds
// (deadline tests). With --fail-status NNN every request gets the local reply
// NNN instead (a failing endpoint for retry and outlier-detection tests).
// A request's `grpc-timeout` comes back as the response
// field `x-echo-grpc-timeout`, the request's trailers as the response field
// `x-echo-request-trailers` ("name=value" joined by ", "). With
// --log-requests every request is printed on stdout ("request METHOD
// AUTHORITY PATH BYTES") and every connection's end ("connection ended:
// goaway-received=CODE" or "=none": the client's GOAWAY). Requests go through
// H2Downstream, the codec's exchange::Downstream, as the proxy's exchange
// drives them. An extended CONNECT (RFC 8441) to /ws is a WebSocket echo
// (websocket() below; with --log-requests its sec-websocket-* fields are
// printed as sent, "websocket field NAME: VALUE"); with --no-connect-protocol
// the server does not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (a backend
// without RFC 8441).
//
// Invariants: one thread, one io_context; SIGTERM/SIGINT drain every
// connection with the two-step GOAWAY and exit 0 when their streams are done.
#include <openssl/ssl.h>

#include <utility>  // before Asio: its awaitable.hpp uses std::exchange

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>

#include "proxy/base/aio.h"
#include "proxy/base/flags.h"
#include "proxy/http2/connection.h"
#include "proxy/http2/h2_downstream.h"
#include "tests/backends/websocket_frame.h"

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;
using namespace gantry;

namespace {

int fail_status = 0;  // --fail-status: every request answered with this local reply
bool log_requests = false;  // --log-requests
constexpr uint64_t kMaxWsFrame = 64ull << 20;  // /ws: larger frames reset the stream

// An extended CONNECT (RFC 8441, :protocol websocket; the codec shows it as a
// GET with the upgrade) to /ws: 200, then every WebSocket frame of the
// stream's DATA is echoed unmasked with its opcode and FIN bit (ping gets
// pong, close gets close and then END_STREAM), as gantry-echo's /ws does over
// HTTP/1.1. The 200 accepts the offered sec-websocket-protocol and
// sec-websocket-extensions as they came (a test backend: it implements no
// extension). /ws-reset resets the stream (CANCEL) 100 ms after its 200.
aio::awaitable<void> websocket(http2::H2Downstream& d, const std::string& path) {
  std::vector<http::Header> fields = {{"x-echo-websocket", "h2"}};
  for (const http::Header& h : *d.request().headers)
    if (h.name == "sec-websocket-protocol" || h.name == "sec-websocket-extensions") fields.push_back(h);
  exchange::ResponseHead head;
  head.status = 200;
  head.fields = &fields;
  head.upgrade = true;
  if (!co_await d.send_head(head)) co_return;
  if (log_requests) std::cout << "websocket open " << path << std::endl;
  if (path == "/ws-reset") {  // the backend resets the open tunnel (after 100 ms)
    aio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(100));
    error_code ignore;
    co_await t.async_wait(asio::redirect_error(aio::use_awaitable, ignore));
    if (log_requests) std::cout << "websocket reset by the server" << std::endl;
    d.reset(exchange::ResetReason::kCancelled);
    co_return;
  }
  std::string buf;
  bool closed = false;  // our close went out, then END_STREAM
  while (true) {
    exchange::BodyChunk c = co_await d.read_body();
    if (c.failed) {
      if (log_requests) std::cout << "websocket reset by the client" << std::endl;
      co_return;
    }
    buf.append(c.data);
    while (!closed && buf.size() >= 2) {
      const auto b0 = static_cast<unsigned char>(buf[0]);
      const auto b1 = static_cast<unsigned char>(buf[1]);
      const bool masked = (b1 & 0x80) != 0;
      uint64_t len = b1 & 0x7f;
      size_t hdr = 2;
      if (len >= 126) {
        const size_t ext = len == 126 ? 2 : 8;
        if (buf.size() < 2 + ext) break;
        len = 0;
        for (size_t i = 0; i < ext; ++i) len = (len << 8) | static_cast<unsigned char>(buf[2 + i]);
        hdr += ext;
      }
      if (len > kMaxWsFrame) {
        d.reset(exchange::ResetReason::kCancelled);
        co_return;
      }
      const size_t mask_at = hdr;
      if (masked) hdr += 4;
      if (buf.size() < hdr + len) break;
      std::string payload = buf.substr(hdr, static_cast<size_t>(len));
      if (masked)
        for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= buf[mask_at + (i & 3)];
      buf.erase(0, hdr + static_cast<size_t>(len));
      const unsigned opcode = b0 & 0x0f;
      if (opcode == 0xA) continue;  // pong: nothing to do
      unsigned char out_b0 = static_cast<unsigned char>(b0 & 0x8f);
      if (opcode == 0x9) out_b0 = 0x8A;
      const std::string frame = test_backends::websocket_frame(out_b0, payload);
      if (!co_await d.send_body(frame, false)) co_return;
      if (opcode == 0x8) {  // our close answered theirs: our side ends
        closed = true;
        if (!co_await d.send_body({}, true)) co_return;
      }
    }
    if (c.end) {  // the client's END_STREAM
      if (log_requests) std::cout << "websocket end from the client" << std::endl;
      if (!closed) co_await d.send_body({}, true);
      co_return;
    }
  }
}

aio::awaitable<void> respond(std::shared_ptr<http2::Stream> st) {
  auto made = http2::H2Downstream::create(st, "127.0.0.1", false);
  if (!made.ok()) {
    const std::string text = "bad request\n";
    const std::vector<http2::Field> h = {{"content-type", "text/plain"}};
    if (co_await st->send_head(400, h, false)) co_await st->send_body(text, true);
    co_return;
  }
  http2::H2Downstream& d = *made.value();
  const exchange::RequestInfo& req = d.request();
  if (req.upgrade == "websocket" && fail_status == 0 && req.path.rfind("/ws", 0) == 0) {
    if (log_requests)  // the stream's own fields (the codec's RequestInfo leaves the key out)
      for (const http2::Field& f : st->head().headers)
        if (f.name.rfind("sec-websocket-", 0) == 0)
          std::cout << "websocket field " << f.name << ": " << f.value << std::endl;
    co_await websocket(d, std::string(req.path));
    co_return;
  }
  size_t bytes = 0;
  std::string request_trailers;  // "name=value, ..."
  while (true) {
    exchange::BodyChunk c = co_await d.read_body();
    if (c.failed) co_return;
    bytes += c.data.size();
    for (const http::Header& t : c.trailers) {
      if (!request_trailers.empty()) request_trailers.append(", ");
      request_trailers.append(t.name).append("=").append(t.value);
    }
    if (c.end) break;
  }
  if (log_requests)
    std::cout << "request " << req.method << " " << req.host_header << " " << req.path << " " << bytes << std::endl;
  const std::string path = fail_status != 0 ? "/local/" + std::to_string(fail_status) : std::string(req.path);
  auto sleep_ms = [](const std::string& p, size_t prefix) -> aio::awaitable<void> {
    int ms = 0;
    std::from_chars(p.data() + prefix, p.data() + p.size(), ms);
    aio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
    error_code ignore;
    co_await t.async_wait(asio::redirect_error(aio::use_awaitable, ignore));
  };
  if (path.rfind("/delay/", 0) == 0) co_await sleep_ms(path, 7);
  const bool stall = path.rfind("/stall/", 0) == 0;
  if (path.rfind("/local/", 0) == 0) {  // the gateway's own answer, as the exchange makes it
    exchange::LocalReply r;
    r.status = std::atoi(path.c_str() + 7);
    r.body = "local reply " + std::to_string(r.status);
    r.gateway_reason = "test";
    co_await d.send_local_reply(r);
    co_return;
  }
  std::vector<http::Header> fields;
  exchange::ResponseHead head;
  head.status = 200;
  head.fields = &fields;
  if (path.rfind("/bytes/", 0) == 0) {
    size_t n = 0;
    std::from_chars(path.data() + 7, path.data() + path.size(), n);
    fields = {{"Content-Type", "application/octet-stream"}};
    head.content_length = n;
    head.end_stream = n == 0;
    if (!co_await d.send_head(head)) co_return;
    const std::string chunk(16 * 1024, 'b');
    while (n > 0) {
      const size_t k = std::min(n, chunk.size());
      n -= k;
      if (!co_await d.send_body(std::string_view(chunk).substr(0, k), n == 0)) co_return;
    }
    co_return;
  }
  const std::string body = std::string(req.method) + " " + path + " " + std::to_string(bytes) + "\n";
  // HTTP/1.1 framing fields, as an upstream would send them: the codec drops them.
  fields = {{"Content-Type", "text/plain"}, {"Connection", "keep-alive"}, {"Transfer-Encoding", "chunked"}};
  for (const http::Header& h : *req.headers)
    if (h.name == "grpc-timeout") fields.push_back({"x-echo-grpc-timeout", h.value});
  if (!request_trailers.empty()) fields.push_back({"x-echo-request-trailers", request_trailers});
  head.content_length = body.size();
  if (stall) head.content_length.reset();
  head.end_stream = req.method == "HEAD";
  const bool trailers = std::any_of(req.headers->begin(), req.headers->end(), [](const http::Header& h) {
    return h.name == "te" && h.value == "trailers";
  });
  if (!co_await d.send_head(head) || head.end_stream) co_return;
  if (stall) co_await sleep_ms(path, 7);
  if (trailers) {
    if (!co_await d.send_body(body, false)) co_return;
    const std::string n = std::to_string(bytes);  // http::Header holds views: keep the value alive
    const std::vector<http::Header> t = {{"X-Echo-Bytes", n}};
    co_await d.send_trailers(t);
  } else {
    co_await d.send_body(body, true);
  }
}

// The codec's StreamRunner: a stream's coroutine is started detached and
// must not let an exception escape.
aio::awaitable<void> answer(std::shared_ptr<http2::Stream> st) {
  try {
    co_await respond(st);
  } catch (const std::exception& e) {
    std::cerr << "stream " << st->id() << " failed: " << e.what() << std::endl;
    st->reset(http2::ErrorCode::kInternalError);
  } catch (...) {
    std::cerr << "stream " << st->id() << " failed: unknown exception" << std::endl;
    st->reset(http2::ErrorCode::kInternalError);
  }
}

aio::awaitable<void> accept_h2c(aio::tcp_acceptor& acc, const http2::ConnectionOptions& opts) {
  while (true) {
    error_code ec;
    aio::tcp_socket s = co_await acc.async_accept(asio::redirect_error(aio::use_awaitable, ec));
    if (ec) co_return;
    s.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(acc.get_executor(), http2::serve(std::move(s), {}, opts, answer), asio::detached);
  }
}

aio::awaitable<void> tls_connection(aio::tcp_socket s, asio::ssl::context& ctx,
                                     const http2::ConnectionOptions& opts) {
  asio::ssl::stream<aio::tcp_socket> tls(std::move(s), ctx);
  error_code ec;
  co_await tls.async_handshake(asio::ssl::stream_base::server,
                               asio::redirect_error(aio::use_awaitable, ec));
  if (ec) co_return;
  const unsigned char* proto = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(tls.native_handle(), &proto, &len);
  if (std::string_view(reinterpret_cast<const char*>(proto), len) != "h2") co_return;
  co_await http2::serve(std::move(tls), {}, opts, answer);
}

aio::awaitable<void> accept_tls(aio::tcp_acceptor& acc, asio::ssl::context& ctx,
                                 const http2::ConnectionOptions& opts) {
  while (true) {
    error_code ec;
    aio::tcp_socket s = co_await acc.async_accept(asio::redirect_error(aio::use_awaitable, ec));
    if (ec) co_return;
    s.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(acc.get_executor(), tls_connection(std::move(s), ctx, opts), asio::detached);
  }
}

// ALPN: h2 only (this server speaks nothing else).
int select_h2(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
              unsigned int inlen, void*) {
  for (unsigned int i = 0; i < inlen; i += 1 + in[i]) {
    if (in[i] == 2 && i + 3 <= inlen && in[i + 1] == 'h' && in[i + 2] == '2') {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

bool bind_listener(aio::tcp_acceptor& acc, const HostPort& hp, const char* flag) {
  error_code ec;
  tcp::endpoint ep(asio::ip::make_address(hp.host, ec), hp.port);
  if (!ec) acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(aio::tcp_acceptor::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::cerr << "gantry-h2-echo: cannot listen on " << flag << " " << hp.str() << ": "
              << ec.message() << "\n";
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  HostPort listen{"127.0.0.1", 9101};
  std::optional<HostPort> tls_listen;
  std::string cert, key;
  FlagSet flags("gantry-h2-echo",
                "HTTP/2 test server on the proxy's HTTP/2 codec: h2c (prior knowledge) and TLS + ALPN h2.",
                "GANTRY_H2_ECHO_");
  flags.add("listen", "ADDR:PORT", "127.0.0.1:9101", "h2c address", [&](std::string_view v) -> Status {
    auto hp = parse_host_port(v);
    if (!hp.ok()) return hp.error();
    listen = *hp;
    return ok_status();
  });
  flags.add("tls-listen", "ADDR:PORT", "off", "TLS address (needs --cert and --key)",
            [&](std::string_view v) -> Status {
              auto hp = parse_host_port(v);
              if (!hp.ok()) return hp.error();
              tls_listen = *hp;
              return ok_status();
            });
  flags.add("cert", "PATH", "", "PEM certificate chain", [&](std::string_view v) -> Status {
    cert = v;
    return ok_status();
  });
  flags.add("key", "PATH", "", "PEM private key", [&](std::string_view v) -> Status {
    key = v;
    return ok_status();
  });
  flags.add("fail-status", "NNN", "off", "answer every request with the local reply NNN (100-599)",
            [&](std::string_view v) -> Status {
              int n = 0;
              auto [p, e] = std::from_chars(v.data(), v.data() + v.size(), n);
              if (e != std::errc() || p != v.data() + v.size() || n < 100 || n > 599)
                return Error{"--fail-status: want a status 100-599, not " + std::string(v)};
              fail_status = n;
              return ok_status();
            });
  flags.add_bool("log-requests", "print every request and every connection's end (the client's GOAWAY) on stdout",
                 &log_requests);
  bool no_connect_protocol = false;
  flags.add_bool("no-connect-protocol",
                 "do not advertise SETTINGS_ENABLE_CONNECT_PROTOCOL (no WebSocket over HTTP/2, RFC 8441)",
                 &no_connect_protocol);
  flags.parse_or_exit(argc, argv);

  asio::io_context io(1);
  http2::ConnectionOptions opts;
  opts.limits.connect_protocol = !no_connect_protocol;
  if (log_requests)
    opts.on_end = [](const http2::ServerSession& s) {
      const auto g = s.goaway_received();
      std::cout << "connection ended: goaway-received="
                << (g ? std::to_string(static_cast<uint32_t>(*g)) : std::string("none")) << std::endl;
    };
  aio::tcp_acceptor h2c(io);
  if (!bind_listener(h2c, listen, "--listen")) return 1;
  asio::co_spawn(io, accept_h2c(h2c, opts), asio::detached);

  asio::ssl::context ctx(asio::ssl::context::tls_server);
  aio::tcp_acceptor tls(io);
  if (tls_listen) {
    error_code ec;
    ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                    asio::ssl::context::no_tlsv1_1);
    ctx.use_certificate_chain_file(cert, ec);
    if (!ec) ctx.use_private_key_file(key, asio::ssl::context::pem, ec);
    if (ec) {
      std::cerr << "gantry-h2-echo: cannot load --cert/--key: " << ec.message() << "\n";
      return 1;
    }
    SSL_CTX_set_alpn_select_cb(ctx.native_handle(), select_h2, nullptr);
    if (!bind_listener(tls, *tls_listen, "--tls-listen")) return 1;
    asio::co_spawn(io, accept_tls(tls, ctx, opts), asio::detached);
  }
  // SIGTERM/SIGINT: stop accepting, drain every connection (two-step GOAWAY),
  // exit when their streams have finished (10 s at most).
  std::vector<std::weak_ptr<http2::Drainable>> conns;
  opts.on_start = [&conns](std::weak_ptr<http2::Drainable> d) {
    std::erase_if(conns, [](const auto& w) { return w.expired(); });
    conns.push_back(std::move(d));
  };
  asio::signal_set sigs(io, SIGTERM, SIGINT);
  aio::steady_timer deadline(io);
  std::function<void()> check;
  sigs.async_wait([&](error_code, int) {
    error_code ignored;
    h2c.close(ignored);
    tls.close(ignored);
    for (auto& w : conns) {
      if (auto d = w.lock()) d->drain();
    }
    // Exit when every connection has ended (checked every 100 ms), 10 s at most.
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    check = [&, until] {
      const bool all_done =
          std::all_of(conns.begin(), conns.end(), [](const auto& w) { return w.expired(); });
      if (all_done || std::chrono::steady_clock::now() > until) {
        io.stop();
        return;
      }
      deadline.expires_after(std::chrono::milliseconds(100));
      deadline.async_wait([&check](error_code e) {
        if (!e) check();
      });
    };
    check();
  });
  std::cout << "gantry-h2-echo: h2c on " << listen.str()
            << (tls_listen ? ", h2 (TLS) on " + tls_listen->str() : std::string()) << std::endl;
  io.run();
  // Every connection has ended: no more work (the deadline timer is the last).
  return 0;
}
