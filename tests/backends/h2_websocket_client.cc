// gantry-h2ws-client: a WebSocket client over HTTP/2 (RFC 8441 extended
// CONNECT) on libnghttp2's client session, for the integration tests: no
// Debian tool speaks RFC 8441. h2c with prior knowledge, or TLS with ALPN h2.
//
//   gantry-h2ws-client --port P [--tls --ca FILE --sni NAME] [--authority A]
//                      [--path /ws] [--plain-connect] [--protocol websocket]
//                      [--window BYTES] STEP...
//
// It waits for the server's SETTINGS, prints
// `settings enable_connect_protocol=N`, sends the CONNECT (with :protocol and
// sec-websocket-version: 13 unless --plain-connect), prints `status N` and
// any `header NAME: VALUE` of the answer, then runs the steps in order while
// the stream is open (each prints one line):
//   text:MSG      a text message; its echo must come back equal  -> `echo text N`
//   binary:N      N random bytes as one binary message, echoed     -> `echo binary N`
//   stall:N       N random bytes (64 KiB messages) sent while the client reads
//                 nothing and grants no window: prints `stalled sent=S of=T`
//                 once the proxy has taken nothing for a second (S: bytes it
//                 took of T), keeps not reading for 1.5 s more, then reads
//                 and checks every echo                            -> `echo binary N`
//   close         a close frame; expects the echoed close, then the proxy's
//                 END_STREAM (`end_stream`), then ends its own side -> `closed`
//   reset         RST_STREAM CANCEL                                -> `reset`
//   end           END_STREAM from the client, then waits for the proxy's -> `end_stream`
//   wait-end      waits for the proxy's END_STREAM or RST_STREAM   -> `end_stream` / `rst CODE`
//   sleep:MS      waits (the session keeps being served)
// Exit status 0 when every step did what it says, 1 otherwise (why on stderr).
// The stream's receive window is --window (default 65535): a message larger
// than it crosses several WINDOW_UPDATEs, which the client sends only as it
// reads (nghttp2's automatic window updates are off).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "gantry-h2ws-client: %s\n", why.c_str());
  std::exit(1);
}

struct Client {
  int fd = -1;
  SSL* ssl = nullptr;
  nghttp2_session* s = nullptr;
  int32_t id = -1;
  bool got_settings = false;
  int status = 0;
  bool headers_done = false;
  std::vector<std::pair<std::string, std::string>> headers;
  bool remote_ended = false;  // END_STREAM from the proxy
  bool closed = false;        // the stream closed (either way)
  uint32_t rst_code = 0;
  bool rst = false;
  bool conn_gone = false;
  std::string in;         // received DATA not yet parsed into frames
  bool reading = true;    // false: received bytes are not consumed (no WINDOW_UPDATE)
  size_t unconsumed = 0;  // bytes received while not reading
  std::string out;        // to send on the stream
  size_t out_off = 0;
  size_t taken = 0;       // bytes of `out` nghttp2 took (serialised into DATA)
  bool out_eof = false;
  bool deferred = false;

  // ---- I/O
  ssize_t raw_send(const uint8_t* p, size_t n) {
    if (ssl != nullptr) {
      const int r = SSL_write(ssl, p, static_cast<int>(n));
      if (r > 0) return r;
      const int e = SSL_get_error(ssl, r);
      if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return NGHTTP2_ERR_WOULDBLOCK;
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    const ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r >= 0) return r;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return NGHTTP2_ERR_WOULDBLOCK;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }
  // Reads what is there; false when the connection is gone.
  bool read_some() {
    uint8_t buf[16384];
    while (true) {
      ssize_t n;
      if (ssl != nullptr) {
        const int r = SSL_read(ssl, buf, sizeof buf);
        if (r <= 0) {
          const int e = SSL_get_error(ssl, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
          return false;
        }
        n = r;
      } else {
        n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK;
        if (n == 0) return false;
      }
      if (nghttp2_session_mem_recv(s, buf, static_cast<size_t>(n)) < 0) return false;
    }
  }
  // Serves the connection until `done()` or `ms` pass; false on timeout.
  bool run_until(const std::function<bool()>& done, int ms) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    while (!done()) {
      if (nghttp2_session_send(s) != 0) {
        conn_gone = true;
        return done();
      }
      if (conn_gone) return done();
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      if (ssl != nullptr && SSL_pending(ssl) > 0) {
        if (!read_some()) conn_gone = true;
        continue;
      }
      pollfd p{fd, static_cast<short>(POLLIN | (nghttp2_session_want_write(s) ? POLLOUT : 0)), 0};
      ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 50)));
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        if (!read_some()) conn_gone = true;
      }
    }
    nghttp2_session_send(s);
    return true;
  }
  void wait(int ms) {
    run_until([] { return false; }, ms);
  }

  // ---- the stream's body
  void push(const std::string& bytes) {
    out.append(bytes);
    if (deferred) {
      deferred = false;
      nghttp2_session_resume_data(s, id);
    }
  }
  void end_stream() {
    out_eof = true;
    if (deferred) {
      deferred = false;
      nghttp2_session_resume_data(s, id);
    }
  }
  static ssize_t read_cb(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                         nghttp2_data_source* src, void*) {
    auto& c = *static_cast<Client*>(src->ptr);
    const size_t n = std::min(len, c.out.size() - c.out_off);
    std::memcpy(buf, c.out.data() + c.out_off, n);
    c.out_off += n;
    c.taken += n;
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    }
    if (n == 0 && !c.out_eof) {
      c.deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (c.out_eof && c.out.empty()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
  void set_reading(bool on) {
    reading = on;
    if (on && unconsumed > 0) {
      nghttp2_session_consume(s, id, unconsumed);
      unconsumed = 0;
    }
  }
};

// ---- WebSocket frames (RFC 6455 5.2): the client masks what it sends.
std::string ws_frame(unsigned opcode, const std::string& payload) {
  std::string f(1, static_cast<char>(0x80 | opcode));
  const size_t n = payload.size();
  if (n < 126) {
    f += static_cast<char>(0x80 | n);
  } else if (n <= 0xffff) {
    f += static_cast<char>(0x80 | 126);
    f += static_cast<char>(n >> 8);
    f += static_cast<char>(n & 0xff);
  } else {
    f += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) f += static_cast<char>((static_cast<uint64_t>(n) >> shift) & 0xff);
  }
  unsigned char mask[4];
  RAND_bytes(mask, 4);
  f.append(reinterpret_cast<char*>(mask), 4);
  for (size_t i = 0; i < n; ++i) f += static_cast<char>(payload[i] ^ mask[i & 3]);
  return f;
}

// One message from c.in (continuation frames joined); false when incomplete.
bool ws_message(Client& c, unsigned& opcode, std::string& payload) {
  size_t at = 0;
  std::string msg;
  unsigned first = 0;
  while (true) {
    if (c.in.size() < at + 2) return false;
    const auto b0 = static_cast<unsigned char>(c.in[at]);
    const auto b1 = static_cast<unsigned char>(c.in[at + 1]);
    if (b1 & 0x80) die("the server sent a masked frame");
    uint64_t len = b1 & 0x7f;
    size_t hdr = 2;
    if (len >= 126) {
      const size_t ext = len == 126 ? 2 : 8;
      if (c.in.size() < at + 2 + ext) return false;
      len = 0;
      for (size_t i = 0; i < ext; ++i) len = (len << 8) | static_cast<unsigned char>(c.in[at + 2 + i]);
      hdr += ext;
    }
    if (c.in.size() < at + hdr + len) return false;
    if (at == 0) first = b0 & 0x0f;
    msg.append(c.in, at + hdr, static_cast<size_t>(len));
    at += hdr + static_cast<size_t>(len);
    if (b0 & 0x80) break;
  }
  c.in.erase(0, at);
  opcode = first;
  payload = std::move(msg);
  return true;
}

std::string random_bytes(size_t n) {
  std::string s(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n));
  return s;
}

void expect_echo(Client& c, unsigned opcode, const std::string& sent, int timeout_ms) {
  unsigned op = 0;
  std::string got;
  const bool ok = c.run_until([&] { return ws_message(c, op, got) || c.closed || c.conn_gone; }, timeout_ms);
  if (!ok) die("no echo within " + std::to_string(timeout_ms) + " ms (have " + std::to_string(c.in.size()) + " bytes)");
  if (c.closed && got.empty() && !sent.empty()) die("the stream closed before the echo");
  if (op != opcode) die("echo has opcode " + std::to_string(op) + ", sent " + std::to_string(opcode));
  if (got != sent)
    die("echo differs: " + std::to_string(got.size()) + " bytes back for " + std::to_string(sent.size()));
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  bool tls = false;
  std::string ca, sni, authority = "ws.example.com", path = "/ws", protocol = "websocket";
  bool plain = false;
  uint32_t window = 65535;
  std::vector<std::string> steps;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value after " + a);
      return argv[++i];
    };
    if (a == "--port") port = std::stoi(next());
    else if (a == "--tls") tls = true;
    else if (a == "--ca") ca = next();
    else if (a == "--sni") sni = next();
    else if (a == "--authority") authority = next();
    else if (a == "--path") path = next();
    else if (a == "--protocol") protocol = next();
    else if (a == "--plain-connect") plain = true;
    else if (a == "--window") window = static_cast<uint32_t>(std::stoul(next()));
    else if (!a.empty() && a[0] == '-') die("unknown flag " + a);
    else steps.push_back(a);
  }
  if (port == 0) die("--port is required");
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  Client c;
  c.fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(c.fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) die("cannot connect");
  int one = 1;
  ::setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  SSL_CTX* ctx = nullptr;
  if (tls) {
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ca.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1) die("cannot load " + ca);
      SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    }
    static const unsigned char alpn[] = {2, 'h', '2'};
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn);
    c.ssl = SSL_new(ctx);
    SSL_set_fd(c.ssl, c.fd);
    const std::string name = sni.empty() ? authority : sni;
    SSL_set_tlsext_host_name(c.ssl, name.c_str());
    if (!ca.empty()) SSL_set1_host(c.ssl, name.c_str());
    if (SSL_connect(c.ssl) != 1) die("TLS handshake failed");
    const unsigned char* proto = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(c.ssl, &proto, &len);
    if (len != 2 || std::memcmp(proto, "h2", 2) != 0) die("the server did not select ALPN h2");
  }
  ::fcntl(c.fd, F_SETFL, O_NONBLOCK);

  nghttp2_session_callbacks* cb;
  nghttp2_session_callbacks_new(&cb);
  nghttp2_session_callbacks_set_send_callback(
      cb, [](nghttp2_session*, const uint8_t* p, size_t n, int, void* u) -> ssize_t {
        return static_cast<Client*>(u)->raw_send(p, n);
      });
  nghttp2_session_callbacks_set_on_header_callback(
      cb, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl,
             uint8_t, void* u) {
        auto& c = *static_cast<Client*>(u);
        if (f->hd.stream_id != c.id) return 0;
        std::string name(reinterpret_cast<const char*>(n), nl), value(reinterpret_cast<const char*>(v), vl);
        if (name == ":status") c.status = std::stoi(value);
        else c.headers.emplace_back(name, value);
        return 0;
      });
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      cb, [](nghttp2_session* s, uint8_t, int32_t sid, const uint8_t* d, size_t n, void* u) {
        auto& c = *static_cast<Client*>(u);
        if (sid != c.id) return 0;
        c.in.append(reinterpret_cast<const char*>(d), n);
        nghttp2_session_consume_connection(s, n);  // only the stream's window is the test's
        if (c.reading) nghttp2_session_consume_stream(s, sid, n);
        else c.unconsumed += n;
        return 0;
      });
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
    auto& c = *static_cast<Client*>(u);
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) c.got_settings = true;
    if (f->hd.stream_id == c.id) {
      if (f->hd.type == NGHTTP2_HEADERS) c.headers_done = true;
      if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) && (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS))
        c.remote_ended = true;
      if (f->hd.type == NGHTTP2_RST_STREAM) {
        c.rst = true;
        c.rst_code = f->rst_stream.error_code;
      }
    }
    return 0;
  });
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, [](nghttp2_session*, int32_t sid, uint32_t, void* u) {
    auto& c = *static_cast<Client*>(u);
    if (sid == c.id) c.closed = true;
    return 0;
  });
  nghttp2_option* opt;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_session_client_new2(&c.s, cb, &c, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window},
                                       {NGHTTP2_SETTINGS_ENABLE_PUSH, 0}};
  nghttp2_submit_settings(c.s, NGHTTP2_FLAG_NONE, iv, 2);

  if (!c.run_until([&] { return c.got_settings || c.conn_gone; }, 5000) || !c.got_settings) die("no SETTINGS");
  std::printf("settings enable_connect_protocol=%u\n",
              nghttp2_session_get_remote_settings(c.s, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL));

  std::vector<std::pair<std::string, std::string>> fields = {{":method", "CONNECT"}};
  if (!plain) {
    fields.push_back({":protocol", protocol});
    fields.push_back({":scheme", tls ? "https" : "http"});
    fields.push_back({":path", path});
  }
  fields.push_back({":authority", authority});
  if (!plain) fields.push_back({"sec-websocket-version", "13"});
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : fields)
    nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  nghttp2_data_provider prov{};
  prov.source.ptr = &c;
  prov.read_callback = Client::read_cb;
  c.id = nghttp2_submit_request(c.s, nullptr, nv.data(), nv.size(), &prov, nullptr);
  if (c.id < 0) die(std::string("cannot submit the CONNECT: ") + nghttp2_strerror(c.id));
  if (!c.run_until([&] { return c.headers_done || c.closed || c.conn_gone; }, 10000) || !c.headers_done) {
    if (c.rst) die("the CONNECT was reset with code " + std::to_string(c.rst_code));
    die("no answer to the CONNECT");
  }
  std::printf("status %d\n", c.status);
  for (const auto& [n, v] : c.headers) std::printf("header %s: %s\n", n.c_str(), v.c_str());

  for (const std::string& step : steps) {
    const size_t colon = step.find(':');
    const std::string verb = step.substr(0, colon);
    const std::string arg = colon == std::string::npos ? "" : step.substr(colon + 1);
    if (verb == "text") {
      c.push(ws_frame(0x1, arg));
      expect_echo(c, 0x1, arg, 10000);
      std::printf("echo text %zu\n", arg.size());
    } else if (verb == "binary") {
      const std::string payload = random_bytes(std::stoul(arg));
      c.push(ws_frame(0x2, payload));
      expect_echo(c, 0x2, payload, 30000);
      std::printf("echo binary %zu\n", payload.size());
    } else if (verb == "stall") {
      // N bytes as 64 KiB binary messages, sent while the client reads
      // nothing: the echo fills the client's window, then every buffer on the
      // way back, and the proxy must stop taking bytes instead of keeping them.
      const size_t total = std::stoul(arg);
      std::vector<std::string> sent;
      for (size_t left = total; left > 0;) {
        const size_t n = std::min<size_t>(left, 65536);
        sent.push_back(random_bytes(n));
        c.push(ws_frame(0x2, sent.back()));
        left -= n;
      }
      c.set_reading(false);
      size_t last = 0;
      auto still = Clock::now();
      c.run_until([&] {
        if (c.taken != last) {
          last = c.taken;
          still = Clock::now();
        }
        return Clock::now() - still > std::chrono::seconds(1) || c.closed || c.conn_gone;
      }, 60000);
      std::printf("stalled sent=%zu of=%zu\n", c.taken, total + 14 * sent.size());
      c.wait(1500);  // still not reading: the test looks at the proxy meanwhile
      c.set_reading(true);
      for (const std::string& m : sent) expect_echo(c, 0x2, m, 30000);
      std::printf("echo binary %zu\n", total);
    } else if (verb == "close") {
      const std::string body = std::string("\x03\xe8", 2) + "bye";  // 1000, normal closure
      c.push(ws_frame(0x8, body));
      expect_echo(c, 0x8, body, 10000);
      if (!c.run_until([&] { return c.remote_ended || c.closed || c.conn_gone; }, 10000) || !c.remote_ended)
        die(c.rst ? "RST_STREAM " + std::to_string(c.rst_code) + " instead of END_STREAM"
                  : "no END_STREAM after the close");
      std::printf("end_stream\n");
      c.end_stream();
      if (!c.run_until([&] { return c.closed || c.conn_gone; }, 10000) || c.rst)
        die("the stream did not close cleanly");
      std::printf("closed\n");
    } else if (verb == "reset") {
      nghttp2_submit_rst_stream(c.s, NGHTTP2_FLAG_NONE, c.id, NGHTTP2_CANCEL);
      c.run_until([&] { return c.closed || c.conn_gone; }, 5000);
      std::printf("reset\n");
    } else if (verb == "end") {
      c.end_stream();
      if (!c.run_until([&] { return c.remote_ended || c.closed || c.conn_gone; }, 10000) || !c.remote_ended)
        die(c.rst ? "RST_STREAM " + std::to_string(c.rst_code) + " instead of END_STREAM"
                  : "no END_STREAM after the client's");
      std::printf("end_stream\n");
    } else if (verb == "wait-end") {
      if (!c.run_until([&] { return c.remote_ended || c.rst || c.closed || c.conn_gone; }, 30000))
        die("the stream stayed open");
      if (c.rst) std::printf("rst %u\n", c.rst_code);
      else if (c.remote_ended) std::printf("end_stream\n");
      else std::printf("connection_closed\n");
    } else if (verb == "sleep") {
      c.wait(std::stoi(arg));
    } else {
      die("unknown step " + step);
    }
  }
  nghttp2_session_terminate_session(c.s, NGHTTP2_NO_ERROR);
  nghttp2_session_send(c.s);
  nghttp2_session_del(c.s);
  if (c.ssl != nullptr) SSL_free(c.ssl);
  if (ctx != nullptr) SSL_CTX_free(ctx);
  ::close(c.fd);
  return 0;
}
