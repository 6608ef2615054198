#include "proxy/net/server.h"
#include "proxy/base/aio.h"

#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl.hpp>
#include <spdlog/spdlog.h>

#include "proxy/exchange/downstream.h"
#include "proxy/http/message.h"
#include "proxy/http/parser.h"
#include "proxy/http/path.h"
#include "proxy/net/drained_read.h"
#include "proxy/net/exchange_driver.h"
#include "proxy/net/h2_listener.h"
#include "proxy/net/passthrough.h"
#include "proxy/net/worker.h"
#include "proxy/tls/client_hello.h"
#include "proxy/tls/tls_contexts.h"

namespace gantry::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using std::chrono::milliseconds;
using TlsStream = asio::ssl::stream<aio::tcp_socket>;

namespace {

// A keep-alive connection idle this long gives its read buffer back (and
// waits for the next request with a one-byte read): an idle connection then
// holds about 1-2 KiB instead of ~17 KiB. Busy connections never pay for it.
constexpr std::chrono::milliseconds kReleaseIdleAfter{1000};
// An idle HTTP/1.1 connection's exchange driver goes back to the worker's
// spares sooner (Session::release_driver): it is most of what a connection
// that has answered a request holds until it parks.
constexpr std::chrono::milliseconds kDriverIdleAfter{100};

bool try_write_two(TlsStream&, std::string_view&, std::string_view&, error_code&) { return false; }

aio::tcp_socket& lowest(aio::tcp_socket& s) { return s; }
aio::tcp_socket& lowest(TlsStream& s) { return s.next_layer(); }

// The peer's address as routes and logs see it (an IPv4-mapped IPv6 address
// as IPv4); empty when the socket has no peer any more.
std::string peer_address(const aio::tcp_socket& s) {
  error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return {};
  auto a = ep.address();
  return a.is_v6() && a.to_v6().is_v4_mapped() ? asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6()).to_string()
                                               : a.to_string();
}

}  // namespace

// ------------------------------------------------------------------ Session

// One client connection: the HTTP/1.1 codec. Reads and parses each request
// head, answers what the codec must itself (400 malformed, 408, the target
// and Host checks), then hands the request to the exchange driver as its
// exchange::Downstream (the connection's current request) and turns the
// driver's calls into HTTP/1.1 bytes. HTTP/1.1 alone: keep-alive and
// pipelining, 100-continue (sent on the first read_body()), the WebSocket
// tunnel after a 101 (the driver hands the upstream connection back).
// A WebSocket to an HTTP/2 backend is tunnelled by the driver instead
// (net/stream_tunnel.h) through this interface: once the 101 went out,
// read_body() yields the client's bytes as they come (its EOF is the end),
// send_body() writes the stream's DATA (its end half-closes the connection),
// and reset() closes the connection.
// Owned by a shared_ptr so that timer handlers can outlive a phase safely.
template <class Stream>
class Session final : public SessionBase,
                      public exchange::Downstream,
                      public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  Session(Worker& w, Stream stream, std::shared_ptr<const ListenerTag> listener)
      : w_(w), client_(std::move(stream)), listener_(std::move(listener)) {
    can_release = !kTls;
    tag = listener_.get();
    w_.link(this);
    error_code ec;
    peer_ip_ = peer_address(lowest(client_));
    set_nodelay(lowest(client_));
    if constexpr (!kTls) enable_drained_reads(client_);
    lowest(client_).non_blocking(true, ec);
    auto local = lowest(client_).local_endpoint(ec);
    if (!ec) local_port_ = local.port();
    if (listener_->public_port != 0) local_port_ = listener_->public_port;  // a Service port onto this one
  }
  ~Session() override { w_.unlink(this); }

  aio::awaitable<void> run() {
    if constexpr (kTls) {
      error_code ec;
      SSL* ssl = client_.native_handle();
      std::string hello;  // the ClientHello, when read for TLS passthrough
      if (co_await try_passthrough(hello)) co_return;  // relayed, or the client left
      if (!listener_->own) prepare_client_auth(ssl);
      arm(lowest(client_), w_.server().options().request_header_timeout);
      if (hello.empty()) {
        co_await client_.async_handshake(asio::ssl::stream_base::server, awaitable_ec(ec));
      } else {  // OpenSSL starts from the bytes already read
        co_await client_.async_handshake(asio::ssl::stream_base::server, asio::buffer(hello), awaitable_ec(ec));
      }
      disarm();
      const bool listener_checked = client_auth_ != nullptr;
      if (client_auth_) {
        tls::ClientAuth::forget(ssl);
        client_auth_.reset();
      }
      if (ec) {
        error_code ignore;
        lowest(client_).close(ignore);
        co_return;
      }
      if (!listener_->own) sni_ = connection_sni(ssl);
      keep_client_cert(ssl, listener_checked);
      if (negotiated_h2(ssl)) {  // ALPN h2: the HTTP/2 codec's
        w_.h2().serve(std::move(client_), std::move(peer_ip_), listener_, local_port_, std::move(sni_),
                      std::move(client_cert_));
        co_return;
      }
    }
    co_await serve(true);
  }

  // The connection's request loop, from its first request (`first`: an h2c
  // preface may start it), or after park() from the next one.
  aio::awaitable<void> serve(bool first) {
    while (true) {
      release_deadline_.reset();
      bool keep = co_await handle_one(first);
      first = false;
      if (release_deadline_) {
        if constexpr (!kTls) {
          park();
          co_return;  // the coroutines end; then a reactor wait holds the session (wait_parked)
        }
      }
      if (!keep || client_broken_) break;
    }
    if constexpr (!kTls) {
      if (h2c_) {  // the client preface: the HTTP/2 codec's, with the bytes read
        w_.h2().serve(std::move(client_), std::string(in_.view()), std::move(peer_ip_), listener_,
                      local_port_);
        co_return;
      }
    }
    error_code ec;
    lowest(client_).shutdown(aio::tcp_socket::shutdown_send, ec);
    lowest(client_).close(ec);
  }

  // TLS passthrough (net/passthrough.h): on a listener with passthrough
  // entries, reads the ClientHello (bounded, within the request-header
  // timeout) and relays the connection when its SNI has an entry. True when
  // the session is over (relayed, or the client left or timed out); false
  // when it goes on to the handshake, with the bytes read in `hello`.
  // Listeners without entries read nothing here.
  aio::awaitable<bool> try_passthrough(std::string& hello) {
    std::shared_ptr<const control::PassthroughTable> table;
    if (const auto& cfg = w_.view().get()) table = cfg->passthrough;
    const std::string listener = listener_->own ? std::string() : listener_->name;
    if (!table || !table->on(listener)) co_return false;
    aio::tcp_socket& sock = lowest(client_);
    tls::ClientHello parsed;
    error_code ec;
    arm(sock, w_.server().options().request_header_timeout);
    do {
      const size_t had = hello.size();
      const size_t room = std::min<size_t>(4096, tls::kMaxClientHelloBytes - had);
      hello.resize(had + room);
      size_t n = co_await sock.async_read_some(asio::buffer(hello.data() + had, room), awaitable_ec(ec));
      hello.resize(had + n);
      if (!ec) parsed = tls::parse_client_hello(hello);
    } while (!ec && parsed.status == tls::HelloStatus::kNeedMore);
    disarm();
    if (ec) {
      error_code ignore;
      sock.close(ignore);
      co_return true;
    }
    const std::string* cluster =
        parsed.status == tls::HelloStatus::kDone ? table->find(listener, parsed.server_name) : nullptr;
    if (cluster == nullptr) co_return false;  // terminated here, as without passthrough
    co_await relay_passthrough(w_, *this, sock, std::move(hello), *cluster);
    co_return true;
  }

  // A snapshot listener with client-certificate validation: the handshake
  // asks for the certificate (tls_contexts.h).
  void prepare_client_auth(SSL* ssl) {
    const auto& cfg = w_.view().get();
    if (!cfg || !cfg->tls) return;
    client_auth_ = cfg->tls->client_auth(listener_->name);
    if (client_auth_) client_auth_->prepare(ssl);
  }

  // Client certificates per hostname: what the handshake established, kept
  // while the snapshot has entries (tls/client_certificates.h).
  void keep_client_cert(SSL* ssl, bool listener_checked) {
    const auto& cfg = w_.view().get();
    const bool any = cfg && cfg->tls && !cfg->tls->host_client_auth().empty();
    client_cert_ = tls::ClientCertificate::after_handshake(ssl, any, any && listener_checked);
  }

  // The client's address for rate limiting: the peer, or, when the peer is a
  // trusted proxy, the right-most X-Forwarded-For entry that is not trusted.
  std::string_view client_ip() {
    const auto& trusted = w_.server().options().trusted_proxies;
    if (trusted.empty() || !contains(trusted, peer_ip_)) return peer_ip_;
    return forwarded_client(peer_ip_, http::find_header(req_.headers, "x-forwarded-for"), trusted);
  }

  void close_if_idle() override {
    error_code ec;
    lowest(client_).cancel(ec);
    closing_ = true;
  }

  // ---- exchange::Downstream: the connection's current request in HTTP/1.1 words
  const exchange::RequestInfo& request() const override { return info_; }
  aio::awaitable<exchange::BodyChunk> read_body() override;
  void keep_request() override;
  aio::awaitable<bool> send_interim(int status, std::string_view reason,
                                     std::span<const http::Header> fields) override;
  aio::awaitable<bool> send_head(const exchange::ResponseHead& head) override;
  exchange::SendNow try_send_head(const exchange::ResponseHead& head) override;
  aio::awaitable<bool> send_body(std::string_view data, bool end_stream) override;
  // Trailers reach an HTTP/1.1 client inside a relayed chunked body, as the
  // upstream framed them; this codec frames no chunked body of its own, so
  // trailers handed here are dropped.
  aio::awaitable<bool> send_trailers(std::span<const http::Header>) override { co_return !client_broken_; }
  aio::awaitable<void> send_local_reply(const exchange::LocalReply& r) override;
  // The connection closes after the exchange: the only way to tell an
  // HTTP/1.1 client that a framed body was cut. A tunnel's ends at once.
  void reset(exchange::ResetReason) override {
    keep_ = false;
    if (upgraded_) end_tunnel();
  }

 private:
  // Reads what is there (at least one byte) into `b`, waiting up to `timeout`.
  // Asio tries the read at once and queues it on EAGAIN. (Measured: a sync read
  // then async_wait costs more, because every non-speculative wait re-arms the
  // descriptor with epoll_ctl.)
  aio::awaitable<size_t> read_some(Buffer& b, milliseconds timeout, error_code& ec) {
    char* p = b.prepare(kReadChunk);
    arm(lowest(client_), timeout);
    size_t n = co_await client_.async_read_some(asio::buffer(p, b.writable()), awaitable_ec(ec));
    disarm();
    if (!ec) b.commit(n);
    co_return n;
  }

  // Writes `a` then `b` to the client: at once when the socket takes them
  // (no coroutine suspension), else asynchronously. False: the client is gone.
  aio::awaitable<bool> write_client(std::string_view a, std::string_view b) {
    error_code ec;
    if (!try_write_two(client_, a, b, ec)) co_await write_rest(client_, a, b, ec);
    bytes_sent += a.size() + b.size();
    if (ec) {
      client_broken_ = true;
      keep_ = false;
    }
    co_return !ec;
  }

  // ---- the answers of the codec itself and of LocalReply: status line,
  // fields, a short text body and the X-Request-Id
  // `verbatim`: the body as it is, its Content-Type among extra_headers (LocalReply::verbatim).
  aio::awaitable<void> local_reply(int status, std::string_view body, bool close,
                                    std::string_view extra_headers, std::string_view request_id,
                                    bool verbatim = false) {
    out_.clear();
    out_.append("HTTP/1.1 ").append(std::to_string(status)).append(" ").append(reason_phrase(status));
    bool no_body = status == 204 || status == 304;
    if (no_body) {
      out_.append("\r\nx-request-id: ").append(request_id);
    } else {
      if (!verbatim) out_.append("\r\ncontent-type: text/plain; charset=utf-8");
      out_.append("\r\ncontent-length: ");
      out_.append(std::to_string(body.size() + (verbatim ? 0 : 1))).append("\r\nx-request-id: ").append(request_id);
    }
    out_.append("\r\n");
    out_.append(extra_headers);
    if (close) out_.append("connection: close\r\n");
    out_.append("\r\n");
    if (!no_body) {
      out_.append(body);
      if (!verbatim) out_.append("\n");
    }
    co_await write_client(out_, {});
  }
  // A codec error before (or instead of) an exchange: answered, logged, and
  // the connection closes.
  aio::awaitable<bool> codec_error(int status, std::string_view text) {
    driver().record.status = status;
    co_await local_reply(status, text, true, {}, driver().record.request_id);
    driver().log(peer_ip_, bytes_received, bytes_sent);
    co_return false;
  }

  // Reads and answers one request. Returns whether the connection stays open.
  // Sets release_deadline_ instead when the sweeper asked an idle connection
  // for its buffers.
  aio::awaitable<bool> handle_one(bool first);
  // Idle past kReleaseIdleAfter (plain TCP): the connection parks, as nginx
  // keeps an idle one. Its read buffer goes back to the allocator and its
  // exchange driver to the worker's spares, and its coroutines end: what stays
  // is this object and one reactor wait for readability, until
  // release_deadline_. unpark() then closes it (timed out, drained, closed by
  // the peer's EOF on the next read) or serves on in a new coroutine. Bytes
  // that came before the wait started are seen by a peek (base/peek.h).
  void park() {
    release_buffers = false;
    released = true;
    parked = true;
    w_.note_release();
    in_.release();
    std::string().swap(out_);
    std::vector<http::Header>().swap(req_.headers);
    std::string().swap(reply_fields_);
    give_back_driver(w_, std::move(driver_));
  }
  // Waiting for the next request with nothing buffered (`idle`): nothing
  // holds the driver until the read completes (handle_one takes it through
  // driver()). A burst of connections that each made a request then holds
  // a few drivers, not one per connection, when their buffers go.
  void release_driver() override { give_back_driver(w_, std::move(driver_)); }
  // After the coroutine has ended (its completion handler calls this).
  void wait_parked() override {
    const auto now = Clock::now();
    auto self = this->shared_from_this();
    if (*release_deadline_ <= now || closing_) {
      unpark(asio::error::timed_out);
      return;
    }
    if (!nothing_to_read(lowest(client_).native_handle())) {  // bytes or an EOF came meanwhile (base/peek.h)
      unpark({});
      return;
    }
    arm(lowest(client_), std::chrono::duration_cast<milliseconds>(*release_deadline_ - now));
    lowest(client_).async_wait(aio::tcp_socket::wait_read, [self](error_code ec) { self->unpark(ec); });
  }
  void unpark(error_code ec) {
    disarm();
    released = false;
    parked = false;
    idle = false;
    if (ec || closing_ || timed_out) {
      error_code ignore;
      lowest(client_).close(ignore);
      w_.session_ended(*this);
      return;
    }
    w_.resume_session(this->shared_from_this());
  }
  aio::awaitable<void> tunnel(UpstreamConn& up, milliseconds idle_timeout);
  aio::awaitable<exchange::BodyChunk> read_tunnel();
  // The tunnel is over: the pending read and write stop, and the connection closes.
  void end_tunnel() {
    client_broken_ = true;
    error_code ignore;
    lowest(client_).cancel(ignore);
  }
  void serialize_head(const exchange::ResponseHead& h);

  Worker& w_;
  Stream client_;
  bool closing_ = false;
  bool client_broken_ = false;  // a write to the client failed: stop serving it
  bool h2c_ = false;            // the connection began with the HTTP/2 client preface
  std::string peer_ip_;
  std::shared_ptr<const ListenerTag> listener_;  // where this connection came in
  uint16_t local_port_ = 0;                      // the listener's port
  std::shared_ptr<const tls::ClientAuth> client_auth_;  // TLS: held during the handshake
  std::string sni_;  // TLS on a snapshot listener: the client's SNI, lower case
  std::shared_ptr<const tls::ClientCertificate> client_cert_;  // TLS: RequestInfo::client_cert

  Buffer in_{kReadChunk};
  std::string out_;
  http::RequestParser req_parser_;
  http::RequestHead req_;
  // The exchange driver of the request in progress: taken from the worker's
  // spares when a request (or a codec error to log) needs it; the sweeper
  // gives it back once the connection has waited kDriverIdleAfter for its next
  // request (release_driver()), and park() when it parks.
  std::unique_ptr<ExchangeDriver> driver_;
  ExchangeDriver& driver() {
    if (!driver_) driver_ = take_driver(w_);
    return *driver_;
  }
  std::optional<Clock::time_point> release_deadline_;  // set by handle_one: wait_released() until then

  // per request
  exchange::RequestInfo info_;
  http::Target target_;
  std::string host_;            // normalised
  bool keep_ = true;            // the connection may serve another request after this one
  bool answered_ = false;       // a head or a local reply went out
  bool body_done_ = true;       // the request body has been read to its end
  bool continue_sent_ = false;  // 100 Continue (Expect: 100-continue, on the first read_body)
  // A 101 went out: the connection is a tunnel (the last exchange on it).
  bool upgraded_ = false;
  uint64_t body_left_ = 0;      // Content-Length body bytes still to read
  size_t body_taken_ = 0;       // bytes of in_ handed out by the last read_body()
  http::ChunkedDecoder chunked_;
  std::string body_error_;
  std::string reply_fields_;    // a LocalReply's fields, serialised
  bool head_pending_ = false;   // try_send_head() left bytes for send_head()
  std::string_view head_rest_, body_rest_;
  // The request head in in_ (valid until the first read_body()), and its
  // copy once keep_request() moved req_'s and info_'s views there.
  const char* head_at_ = nullptr;
  size_t head_len_ = 0;
  bool head_kept_ = false;
  std::string head_copy_;
};

// Moves every view of the request that points into the head's bytes in in_
// to a copy of them, so a body read may overwrite in_.
template <class Stream>
void Session<Stream>::keep_request() {
  if (head_kept_ || body_taken_ > 0 || head_at_ == nullptr) return;
  head_kept_ = true;
  head_copy_.assign(head_at_, head_len_);
  const char* from = head_at_;
  const char* to = head_copy_.data();
  const size_t len = head_len_;
  auto move = [&](std::string_view& v) {
    if (v.data() != nullptr && v.data() >= from && v.data() + v.size() <= from + len)
      v = std::string_view(to + (v.data() - from), v.size());
  };
  move(req_.method);
  move(req_.target);
  move(req_.host);
  for (auto& h : req_.headers) {
    move(h.name);
    move(h.value);
  }
  move(target_.query);
  move(info_.method);
  move(info_.query);
  move(info_.host_header);
  move(info_.client_ip);
  move(info_.upgrade);
}

template <class Stream>
aio::awaitable<bool> Session<Stream>::handle_one(bool first) {
  auto& opts = w_.server().options();
  milliseconds first_byte_timeout = first ? opts.request_header_timeout : opts.client_idle_timeout;
  req_parser_.reset();
  req_.clear();
  if (driver_) driver_->record.reset();  // kept from the last request (pipelined bytes)
  bytes_received = bytes_sent = 0;

  // ---- read the head
  auto deadline = Clock::now() + first_byte_timeout;
  bool got_bytes = !in_.empty();
  if (got_bytes) deadline = Clock::now() + opts.request_header_timeout;
  while (true) {
    bool preface_pending = false;  // the first bytes so far are a prefix of the HTTP/2 preface
    if constexpr (!kTls) {
      // h2c with prior knowledge: looked at only when a connection's first
      // byte is 'P' (no cost for any other request).
      if (first && !in_.empty() && in_.view()[0] == 'P' && w_.server().options().http2) {
        const auto m = http2::match_preface(in_.view());
        if (m == http2::PrefaceMatch::kFull) {
          h2c_ = true;
          co_return false;
        }
        preface_pending = m == http2::PrefaceMatch::kPartial;
      }
    }
    if (!in_.empty() && !preface_pending) {
      auto st = req_parser_.parse(in_.view(), req_);
      if (st == http::ParseState::kComplete) break;
      if (st == http::ParseState::kError) {
        driver().record.started = Clock::now();
        new_request_id(driver().record.request_id);
        const auto& e = req_parser_.error();
        co_return co_await codec_error(e.status, e.reason);
      }
    }
    // While draining, a keep-alive connection is still served (its answers
    // carry Connection: close): closing it between requests races with a
    // request the client may already have sent. Idle ones are closed when the
    // drain window ends (close_if_idle sets closing_).
    if (closing_) co_return false;
    auto now = Clock::now();
    if (now >= deadline) {
      timed_out = true;
    } else {
      bool idle = in_.empty();
      this->idle = idle;
      if (idle) this->idle_since = now;
      error_code ec;
      // read_some(), inlined on this hot path: one coroutine frame fewer per request.
      char* p = in_.prepare(kReadChunk);
      arm(lowest(client_), std::chrono::duration_cast<milliseconds>(deadline - now));
      size_t n = co_await client_.async_read_some(drained_read_buffer(p, in_.writable()), awaitable_ec(ec));
      disarm();
      if (!ec) in_.commit(n);
      if (ec == asio::error::operation_aborted && release_buffers && !timed_out && !closing_) {
        // Idle for kReleaseIdleAfter: the sweeper cancelled the read so that
        // the buffers can go. run() gives them back and waits for the next
        // request's first byte, without this coroutine's frame.
        release_deadline_ = deadline;
        co_return true;
      }
      this->idle = false;
      if (!ec) {
        w_.metrics().received(n);
        if (!got_bytes) {
          got_bytes = true;
          deadline = Clock::now() + opts.request_header_timeout;
        }
        continue;
      }
      if (!timed_out) co_return false;  // peer closed or reset: nothing to answer
    }
    // Timed out: a partial head gets 408; an idle connection just closes.
    if (in_.empty()) co_return false;
    driver().record.started = Clock::now();
    new_request_id(driver().record.request_id);
    co_return co_await codec_error(408, "request header timeout");
  }

  // The head leaves the buffer now, so that whatever path answers this
  // request, the next one starts at the right byte. req_'s views stay valid
  // until the next read into in_ (the exchange's first read_body()).
  head_at_ = in_.data();
  head_len_ = req_parser_.head_size();
  head_kept_ = false;
  in_.consume(req_parser_.head_size());
  bytes_received = req_parser_.head_size();
  // A target or Host the codec refuses is answered here (the exchange never
  // starts); its log line carries what the request said.
  auto refuse = [&](std::string_view path, std::string_view why) {
    driver().record.started = Clock::now();
    assign_request_id(&req_.headers, driver().record.request_id);
    driver().record.method.assign(req_.method);
    driver().record.path.assign(path);
    return codec_error(400, why);
  };
  auto target = http::parse_target(req_.method, req_.target);
  if (!target.ok()) co_return co_await refuse(req_.target.substr(0, 256), target.error().message);
  target_ = std::move(target).value();
  std::string_view raw_host = !target_.authority.empty() ? std::string_view(target_.authority) : req_.host;
  host_.clear();
  if (!raw_host.empty()) {
    auto h = http::normalize_host(raw_host);
    if (!h.ok()) co_return co_await refuse(target_.path, h.error().message);
    host_ = std::move(h).value();
  }

  // ---- the exchange
  info_.method = req_.method;
  info_.host = host_;
  info_.path = target_.path;
  info_.query = target_.query;
  info_.host_header = req_.host;
  info_.headers = &req_.headers;
  info_.body = req_.body;
  info_.content_length = req_.content_length;
  info_.client_ip = client_ip();
  info_.peer_ip = peer_ip_;
  info_.proto = req_.version == http::Version::kHttp10 ? "HTTP/1.0" : "HTTP/1.1";
  info_.tls = kTls;
  if constexpr (kTls) info_.sni = sni_;
  if constexpr (kTls) info_.client_cert = client_cert_.get();
  info_.listener = listener_->name;
  info_.own_listener = listener_->own;
  info_.listener_port = local_port_;
  info_.upgrade = {};
  if (req_.upgrade_websocket) {
    auto up = http::find_header(req_.headers, "upgrade");
    info_.upgrade = up ? *up : std::string_view("websocket");
  }
  relays_h1_chunked = req_.version != http::Version::kHttp10;
  keep_ = true;
  answered_ = false;
  head_pending_ = false;
  body_done_ = req_.body == http::BodyKind::kNone;
  continue_sent_ = false;
  body_left_ = req_.body == http::BodyKind::kContentLength ? req_.content_length : 0;
  body_taken_ = 0;
  chunked_.reset();

  co_await driver().run(*this);

  if (driver_->upgraded) {
    std::unique_ptr<UpstreamConn> up = std::move(driver_->upgraded);
    co_await tunnel(*up, driver_->tunnel_idle);
    co_return false;
  }
  if (body_taken_ > 0) {  // the last body bytes handed out leave the buffer
    in_.consume(body_taken_);
    body_taken_ = 0;
  }
  co_return keep_ && answered_ && body_done_;
}

// The next bytes of the request body, from in_ (the head's leftovers first).
// A chunked body is handed out with its framing (validated, the size limits
// of ChunkedDecoder enforced), for an HTTP/1.1 upstream to take as is.
template <class Stream>
aio::awaitable<exchange::BodyChunk> Session<Stream>::read_body() {
  exchange::BodyChunk c;
  if (body_taken_ > 0) {
    in_.consume(body_taken_);
    body_taken_ = 0;
  }
  if (body_done_) {
    if (upgraded_) co_return co_await read_tunnel();  // an upgrade has no body: never a body's read
    c.end = true;
    co_return c;
  }
  if (req_.expect_continue && !continue_sent_) {
    continue_sent_ = true;
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    error_code ec;
    co_await asio::async_write(client_, asio::buffer(kContinue), awaitable_ec(ec));
    if (ec) {
      client_broken_ = true;
      c.failed = true;
      co_return c;
    }
  }
  const bool chunked = info_.body == http::BodyKind::kChunked;
  auto& opts = w_.server().options();
  while (true) {
    size_t take = 0;
    bool done = false;
    if (!chunked) {
      take = static_cast<size_t>(std::min<uint64_t>(in_.size(), body_left_));
      body_left_ -= take;
      done = body_left_ == 0;
    } else {
      auto step = chunked_.feed(in_.view());
      if (!step.ok()) {
        body_error_ = "malformed chunked request body: " + step.error().message;
        c.failed = true;
        c.error = 400;
        c.why = body_error_;
        co_return c;
      }
      take = step->consumed;
      done = step->done;
    }
    if (take > 0 || done) {
      bytes_received += take;
      body_taken_ = take;
      body_done_ = done;
      c.data = std::string_view(in_.data(), take);
      c.end = done;
      c.h1_chunked = chunked;
      c.payload_bytes = chunked ? chunked_.data_bytes() : req_.content_length - body_left_;
      co_return c;
    }
    error_code rec;
    co_await read_some(in_, opts.request_header_timeout * 6, rec);
    if (rec) {
      c.failed = true;
      co_return c;
    }
  }
}

// After the 101 of a tunnel the driver runs (an HTTP/2 backend's): what the
// client sent since, as it comes, without a deadline (the tunnel's idle
// watch has it); its EOF (TLS: with or without close_notify) is the end.
template <class Stream>
aio::awaitable<exchange::BodyChunk> Session<Stream>::read_tunnel() {
  exchange::BodyChunk c;
  if (client_broken_) {
    c.failed = true;
    co_return c;
  }
  if (in_.empty()) {  // else: bytes that came with the handshake (or after it) first
    error_code ec;
    char* p = in_.prepare(kReadChunk);
    const size_t n = co_await client_.async_read_some(drained_read_buffer(p, in_.writable()), awaitable_ec(ec));
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      c.end = true;
      co_return c;
    }
    if (ec || client_broken_) {
      end_tunnel();
      c.failed = true;
      co_return c;
    }
    in_.commit(n);
  }
  body_taken_ = in_.size();
  bytes_received += body_taken_;
  c.data = std::string_view(in_.data(), body_taken_);
  co_return c;
}

// Interim answers without their hop-by-hop and framing fields; an HTTP/1.0
// client never gets a 1xx (RFC 9110 15.2).
template <class Stream>
aio::awaitable<bool> Session<Stream>::send_interim(int status, std::string_view reason,
                                                   std::span<const http::Header> fields) {
  if (req_.version == http::Version::kHttp10) co_return true;
  std::string interim("HTTP/1.1 ");
  interim.append(std::to_string(status)).append(" ");
  interim.append(reason.empty() ? std::string_view(reason_phrase(status)) : reason);
  interim.append("\r\n");
  for (const auto& h : fields)
    if (!http::is_hop_by_hop(h.name) && !http::iequals(h.name, "content-length"))
      append_header(interim, h.name, h.value);
  interim.append("\r\n");
  error_code ec;
  co_await asio::async_write(client_, asio::buffer(interim), awaitable_ec(ec));
  if (ec) {
    client_broken_ = true;
    keep_ = false;
    co_return false;
  }
  bytes_sent += interim.size();
  co_return true;
}

// The response head in HTTP/1.1 words, into out_; decides keep-alive.
template <class Stream>
void Session<Stream>::serialize_head(const exchange::ResponseHead& h) {
  answered_ = true;
  // A body delimited by the end of the connection (an upstream that reads
  // until close, or chunks de-framed for an HTTP/1.0 client) cannot keep it.
  const bool until_close = !h.end_stream && !h.content_length && !h.h1_chunked;
  const bool keep = req_.keep_alive && !w_.server().draining() && !until_close && !h.upgrade &&
                    !listener_->closed.load(std::memory_order_relaxed);
  keep_ = keep_ && keep;
  out_.clear();
  out_.append("HTTP/1.1 ").append(std::to_string(h.status)).append(" ");
  out_.append(h.reason.empty() ? std::string_view(reason_phrase(h.status)) : h.reason);
  out_.append("\r\n");
  bool has_request_id = false;
  bool has_length = false;
  // 1xx, 204 and 304 have no body: a Content-Length or Transfer-Encoding on
  // them is never relayed (RFC 9110 8.6, 6.4.1).
  const bool bodiless_status = h.status < 200 || h.status == 204 || h.status == 304;
  const exchange::HeaderEdits* edits = h.edits != nullptr && !h.edits->empty() ? h.edits : nullptr;
  if (h.fields != nullptr) {
    const auto& fields = *h.fields;
    bool resp_connection = has_connection_header(fields);
    for (const auto& f : fields) {
      if (h.upgrade && (http::iequals(f.name, "upgrade") || http::iequals(f.name, "connection"))) {
        append_header(out_, f.name, f.value);
        continue;
      }
      const bool is_length = f.name.size() == 14 && http::iequals(f.name, "content-length");
      if (bodiless_status && (is_length || (f.name.size() == 17 && http::iequals(f.name, "transfer-encoding"))))
        continue;
      if (http::is_hop_by_hop(f.name) || (resp_connection && named_by_connection(fields, f.name))) continue;
      if (edits != nullptr && edits->drops(f.name)) continue;
      if (http::iequals(f.name, "x-request-id")) has_request_id = true;
      has_length = has_length || is_length;
      append_header(out_, f.name, f.value);
    }
  }
  if (edits != nullptr) {
    for (const auto& f : edits->set) append_header(out_, f.name, f.value);
    for (const auto& f : edits->add) append_header(out_, f.name, f.value);
  }
  if (!has_request_id) append_header(out_, "x-request-id", h.request_id);
  if (h.added != nullptr)
    for (const auto& [name, value] : *h.added) append_header(out_, name, value);
  if (h.content_length && !has_length) append_header(out_, "content-length", std::to_string(*h.content_length));
  if (h.h1_chunked) append_header(out_, "transfer-encoding", "chunked");
  for (const auto& f : h.debug) append_header(out_, f.name, f.value);
  if (!h.upgrade) {
    if (!keep) append_header(out_, "connection", "close");
    else if (req_.version == http::Version::kHttp10) append_header(out_, "connection", "keep-alive");
  } else {
    upgraded_ = true;
  }
  out_.append("\r\n");
}

// Head and its body bytes in one gather write (sendmsg), so a small response
// leaves in one syscall and the client wakes once.
template <class Stream>
exchange::SendNow Session<Stream>::try_send_head(const exchange::ResponseHead& h) {
  serialize_head(h);
  head_rest_ = out_;
  body_rest_ = h.body;
  error_code ec;
  if (!try_write_two(client_, head_rest_, body_rest_, ec)) {
    head_pending_ = true;
    return exchange::SendNow::kWouldBlock;
  }
  bytes_sent += out_.size() + h.body.size();
  if (ec) {
    client_broken_ = true;
    keep_ = false;
    return exchange::SendNow::kFailed;
  }
  return exchange::SendNow::kDone;
}

template <class Stream>
aio::awaitable<bool> Session<Stream>::send_head(const exchange::ResponseHead& h) {
  if (!head_pending_) {
    exchange::SendNow now = try_send_head(h);
    if (now != exchange::SendNow::kWouldBlock) co_return now == exchange::SendNow::kDone;
  }
  head_pending_ = false;
  error_code ec;
  co_await write_rest(client_, head_rest_, body_rest_, ec);
  bytes_sent += out_.size() + h.body.size();
  if (ec) {
    client_broken_ = true;
    keep_ = false;
  }
  co_return !ec;
}

// A tunnel's end (`end_stream` after a 101) half-closes the connection: the
// client reads its EOF and may still send (TLS: a TCP FIN without
// close_notify, whose exchange would need the read side).
template <class Stream>
aio::awaitable<bool> Session<Stream>::send_body(std::string_view data, bool end_stream) {
  if (data.empty()) {
    if (end_stream && upgraded_ && !client_broken_) {
      error_code ignore;
      lowest(client_).shutdown(aio::tcp_socket::shutdown_send, ignore);
    }
    co_return !client_broken_;
  }
  const bool ok = co_await write_client(data, {});
  if (!ok && upgraded_) end_tunnel();  // the read side stops too
  co_return ok;
}

template <class Stream>
aio::awaitable<void> Session<Stream>::send_local_reply(const exchange::LocalReply& r) {
  answered_ = true;
  // A request body that was not read to its end cannot keep the connection.
  const bool close = r.close || !req_.keep_alive || w_.server().draining() || !body_done_ ||
                     listener_->closed.load(std::memory_order_relaxed);
  if (close) keep_ = false;
  reply_fields_.clear();
  for (const auto& [name, value] : r.headers) append_header(reply_fields_, name, value);
  if (!r.gateway_reason.empty()) append_header(reply_fields_, "x-gateway-reason", r.gateway_reason);
  co_await local_reply(r.status, r.body, close, reply_fields_, r.request_id, r.verbatim);
}

// Copies bytes both ways after a 101 Switching Protocols until either side closes.
template <class Stream>
aio::awaitable<void> Session<Stream>::tunnel(UpstreamConn& up, milliseconds idle_timeout) {
  // One deadline for the tunnel, on the client socket, pushed forward by
  // traffic in either direction; when it passes, the sweeper cancels the
  // client side and the tunnel winds down.
  arm(lowest(client_), idle_timeout);
  auto& m = w_.metrics().global();
  m.websocket_upgrades.Increment();
  m.websockets_active.Increment();
  auto pump = [this, idle_timeout](auto& from, Buffer& buf, auto& to,
                                   prometheus::Counter& relayed) -> aio::awaitable<void> {
    error_code ec;
    while (true) {
      if (!buf.empty()) {
        co_await asio::async_write(to, asio::buffer(buf.data(), buf.size()), awaitable_ec(ec));
        if (ec) break;
        relayed.Increment(static_cast<double>(buf.size()));
        buf.clear();
      }
      char* p = buf.prepare(kReadChunk);
      size_t n = co_await from.async_read_some(asio::buffer(p, buf.writable()), awaitable_ec(ec));
      if (ec) break;
      buf.commit(n);
      deadline = Clock::now() + idle_timeout;
    }
  };
  aio::steady_timer done(w_.io(), Clock::time_point::max());
  bool finished = false;
  // Who ended it: the first side whose pump stops (or the idle deadline).
  const char* ended_by = nullptr;
  auto upstream_done = [&](std::exception_ptr) {
    finished = true;
    if (!ended_by) ended_by = "upstream";
    error_code ignore;
    lowest(client_).cancel(ignore);  // the upstream side ended: end the client side too
    done.cancel();
  };
  // A TLS upstream: one read and one write in flight on its stream at a time, as for the client.
  if (up.tls) {
    asio::co_spawn(w_.io(), pump(*up.tls, up.buf, client_, m.websocket_bytes_to_client), upstream_done);
    co_await pump(client_, in_, *up.tls, m.websocket_bytes_to_upstream);
  } else {
    asio::co_spawn(w_.io(), pump(up.sock, up.buf, client_, m.websocket_bytes_to_client), upstream_done);
    co_await pump(client_, in_, up.sock, m.websocket_bytes_to_upstream);
  }
  if (!ended_by) ended_by = timed_out ? "idle_timeout" : "client";
  error_code ignore;
  up.sock.cancel(ignore);  // the client side ended: end the upstream side too
  if (!finished) {
    error_code ec;
    co_await done.async_wait(awaitable_ec(ec));
  }
  disarm();
  up.sock.close(ignore);
  m.websocket_closed.Add({{"reason", ended_by}}).Increment();  // before: see stream_tunnel.cc
  m.websockets_active.Decrement();
}

aio::awaitable<void> Worker::accept_loop(aio::tcp_acceptor& acc, bool tls,
                                          std::shared_ptr<const ListenerTag> tag) {
  while (true) {
    error_code ec;
    aio::tcp_socket sock = co_await acc.async_accept(awaitable_ec(ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
      continue;  // EMFILE and friends: keep accepting
    }
    if (tls) spawn_session(TlsStream(std::move(sock), server_.tls_context()), tag);
    else spawn_session(std::move(sock), tag);
  }
}

aio::awaitable<void> Worker::accept_h2c(std::shared_ptr<const ListenerTag> tag) {
  while (true) {
    error_code ec;
    aio::tcp_socket sock = co_await h2c_acceptor_.async_accept(awaitable_ec(ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !h2c_acceptor_.is_open()) co_return;
      continue;  // EMFILE and friends: keep accepting
    }
    metrics_.global().connections_total.Increment();
    set_nodelay(sock);
    enable_drained_reads(sock);
    sock.non_blocking(true, ec);
    const uint16_t local_port = sock.local_endpoint(ec).port();
    std::string peer = peer_address(sock);
    h2_.serve(std::move(sock), std::string(), std::move(peer), tag, ec ? 0 : local_port);
  }
}

template <class Stream>
void Worker::spawn_session(Stream stream, std::shared_ptr<const ListenerTag> tag) {
  metrics_.global().connections_total.Increment();
  metrics_.global().active_connections.Increment();
  connections_.fetch_add(1, std::memory_order_relaxed);
  auto s = std::make_shared<Session<Stream>>(*this, std::move(stream), std::move(tag));
  asio::co_spawn(io_, [s]() -> aio::awaitable<void> { co_await s->run(); }, session_completion(s));
}

// A parked session (Session::park) ends its coroutine without ending the
// connection: unpark() accounts for the end, or resumes it here.
template <class S>
void Worker::resume_session(std::shared_ptr<S> s) {
  asio::co_spawn(io_, [s]() -> aio::awaitable<void> { co_await s->serve(false); }, session_completion(s));
}

std::function<void(std::exception_ptr)> Worker::session_completion(std::shared_ptr<SessionBase> s) {
  return [this, s = std::move(s)](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        spdlog::error("connection handler failed: {}", ex.what());
      }
    }
    if (s->parked) s->wait_parked();  // the connection goes on without a coroutine
    else session_ended(*s);
  };
}

void Worker::session_ended(SessionBase& s) {
  if (s.ended) return;
  s.ended = true;
  metrics_.global().active_connections.Decrement();
  connections_.fetch_sub(1, std::memory_order_relaxed);
}

void Worker::sweep() {
  server_.log().flush_thread();
  auto now = Clock::now();
  if (++sweeps_ % 10 == 0) {
    reap_idle(now);
    spare_drivers_.trim();
    trim_spare_frames();
    h2_.trim_spares();
    if (released_since_trim_ > 0) {
      released_since_trim_ = 0;
      ::malloc_trim(0);
    }
  }
  http2::park_quiet_connections(now);  // h2c connections quiet for 100 ms park
  for (SessionBase* s = sessions_; s != nullptr; s = s->next) {
    if (s->deadline <= now && s->deadline_socket != nullptr) {
      s->timed_out = true;
      s->deadline = Clock::time_point::max();
      error_code ignore;
      s->deadline_socket->cancel(ignore);
    } else if (s->idle && s->can_release && !s->released && !s->release_buffers &&
               s->deadline_socket != nullptr && now - s->idle_since >= kReleaseIdleAfter) {
      s->release_buffers = true;  // the session gives its buffers back (handle_one)
      error_code ignore;
      s->deadline_socket->cancel(ignore);
    } else if (s->idle && now - s->idle_since >= kDriverIdleAfter) {
      s->release_driver();
    }
  }
  sweep_timer_.expires_after(kSweepInterval);
  sweep_timer_.async_wait([this](error_code ec) {
    if (!ec) sweep();
  });
}

// Closes pooled upstream connections idle longer than --upstream-idle-timeout
// (a backend that closed one leaves it in CLOSE_WAIT until then) and forgets
// the pools of endpoints that have none left, e.g. after they left the snapshot.
// A pooled connection idle for kReleaseIdleAfter gives its read buffer's
// pages back, as an idle client connection does, so a large pool left by a
// burst does not keep them (the next request on it takes a block again).
void Worker::reap_idle(Clock::time_point now) {
  const auto limit = server_.options().upstream_idle_timeout;
  idle_.erase_if([&](auto& entry) {
    auto& v = entry.second;
    std::erase_if(v, [&](const std::unique_ptr<UpstreamConn>& c) { return now - c->idle_since >= limit; });
    for (auto& c : v)
      if (c->buf.holds_storage() && c->buf.empty() && now - c->idle_since >= kReleaseIdleAfter) c->buf.release();
    return v.empty();
  });
  // HTTP/2 upstream connections without an open stream for as long end
  // with GOAWAY(NO_ERROR) (then close); dead ones and lists left empty are
  // forgotten. The mirror's HTTP/2 connections likewise.
  reap_idle_h2(h2_upstreams, now, limit);
  if (mirror_) mirror_->reap_idle(now, limit);
}

void Worker::close_listener(const std::string& name) {
  asio::post(io_, [this, name] {
    auto it = snapshot_listeners_.find(name);
    if (it == snapshot_listeners_.end()) return;
    error_code ec;
    it->second->acc.close(ec);  // the accept loop ends; it holds the listener till then
    it->second->tag->closed.store(true, std::memory_order_relaxed);
    snapshot_listeners_.erase(it);
    // Its connections: idle keep-alive ones close now, busy ones after their
    // answer (Connection: close), HTTP/2 ones get GOAWAY.
    for (SessionBase* s = sessions_; s != nullptr; s = s->next)
      if (s->idle && s->tag != nullptr && s->tag->closed.load(std::memory_order_relaxed)) s->close_if_idle();
    h2_.drain_listener(name);
  });
}

void Worker::close_idle() {
  asio::post(io_, [this] {
    for (SessionBase* s = sessions_; s != nullptr; s = s->next)
      if (s->idle) s->close_if_idle();
    idle_.clear();
    h2_.drain_all();
  });
}

// ------------------------------------------------------------------ Server

namespace {

// SNI: swap the handshake onto the context of the matching certificate of the
// Config published now.
int on_servername(SSL* ssl, int* alert, void* arg) {
  auto* store = static_cast<control::ConfigStore*>(arg);
  auto cfg = store->current();
  if (!cfg || !cfg->tls) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::string sni = name ? name : "";
  for (auto& c : sni) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  SSL_CTX* ctx = cfg->tls->select(sni);
  if (ctx == nullptr) {
    *alert = SSL_AD_UNRECOGNIZED_NAME;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  SSL_set_SSL_CTX(ssl, ctx);
  if (const tls::ClientAuth* auth = tls::ClientAuth::of(ssl)) auth->restore_anchors(ssl);
  if (const tls::HostClientAuth* host = tls::HostClientAuth::attached(ssl)) host->restore_anchors(ssl);
  return SSL_TLSEXT_ERR_OK;
}

// The ClientHello, before OpenSSL looks for a session to resume: the client
// certificates of the SNI's hostname (client_certificates.h), on listeners
// without a clientValidation of their own.
int on_client_hello(SSL* ssl, int*, void* arg) {
  if (tls::ClientAuth::of(ssl) != nullptr) return SSL_CLIENT_HELLO_SUCCESS;
  auto cfg = static_cast<control::ConfigStore*>(arg)->current();
  if (!cfg || !cfg->tls || cfg->tls->host_client_auth().empty()) return SSL_CLIENT_HELLO_SUCCESS;
  if (const auto* host = cfg->tls->host_client_auth().find(tls::client_hello_sni(ssl)))
    tls::HostClientAuth::prepare(ssl, *host);
  return SSL_CLIENT_HELLO_SUCCESS;
}

}  // namespace

Server::Server(ServerOptions opts, control::ConfigStore& store, admin::Metrics& metrics, AccessLog& log)
    : opts_(std::move(opts)),
      store_(store),
      metrics_(metrics),
      log_(log),
      tls_ctx_(std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server)) {
  SSL_CTX* base = tls_ctx_->native_handle();
  tls::set_offer_h2(opts_.http2);  // ALPN h2 before http/1.1
  tls::apply_server_defaults(base);
  SSL_CTX_set_tlsext_servername_callback(base, on_servername);
  SSL_CTX_set_tlsext_servername_arg(base, &store_);
  SSL_CTX_set_client_hello_cb(base, on_client_hello, &store_);
  int n = std::max(1, opts_.workers);
  for (int i = 0; i < n; ++i) {
    workers_.push_back(std::make_unique<Worker>(*this, i));
    // Each HTTP/2 stream runs one exchange on its worker.
    workers_.back()->h2().set_worker(workers_.back().get());
  }
  health_ = std::make_unique<upstream::HealthChecker>(store_);
}

Server::~Server() {
  store_.on_publish(nullptr);
  health_->stop();
  for (auto& w : workers_) w->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
}

Status Server::listen() {
  // Binds `hp` on every worker (the first bind picks the port when it is 0,
  // the others reuse it), then tags the listener.
  auto bind_own = [this](HostPort& hp, OwnListener which, std::shared_ptr<const ListenerTag>& tag) -> Status {
    uint16_t port = 0;
    for (auto& w : workers_) {
      auto st = w->listen(hp, port, which);
      if (!st.ok()) return st;
      if (port == 0) port = w->bound_port(which);
    }
    hp.port = port;
    tag = std::make_shared<const ListenerTag>(hp.str(), true);
    return ok_status();
  };
  if (auto st = bind_own(opts_.http_listen, OwnListener::kPlain, http_tag_); !st.ok()) return st;
  if (opts_.https_listen) {
    if (auto st = bind_own(*opts_.https_listen, OwnListener::kTls, https_tag_); !st.ok()) return st;
  }
  if (opts_.h2c_listen) {
    if (auto st = bind_own(*opts_.h2c_listen, OwnListener::kH2c, h2c_tag_); !st.ok()) return st;
  }
  if (auto cfg = store_.current()) sync_listeners(cfg->snapshot);
  store_.on_publish([this](const control::Config& cfg) { sync_listeners(cfg.snapshot); });
  return ok_status();
}

void Server::sync_listeners(const std::shared_ptr<const snapshot::Snapshot>& snap) {
  std::lock_guard lock(listeners_mu_);
  if (!accepting_ || !snap || synced_ == snap) return;  // an endpoint delta keeps the snapshot
  synced_ = snap;
  std::map<std::string, const snapshot::Listener*> want;
  for (const auto& l : snap->listeners) {
    if (l.name == http_tag_->name || (https_tag_ && l.name == https_tag_->name) ||
        (h2c_tag_ && l.name == h2c_tag_->name))
      continue;  // our own
    want.emplace(l.name, &l);
  }
  for (auto it = bound_.begin(); it != bound_.end();) {
    auto w = want.find(it->first);
    if (w != want.end() && std::make_pair(w->second->tls, w->second->public_port) == it->second) {
      ++it;
      continue;
    }
    for (auto& wk : workers_) wk->close_listener(it->first);
    spdlog::info("closed listener {}", it->first);
    it = bound_.erase(it);
  }
  for (const auto& [name, l] : want) {
    if (bound_.count(name) != 0) continue;
    error_code ec;
    auto addr = asio::ip::make_address(l->address, ec);
    if (ec) continue;  // validated: cannot happen
    auto tag = std::make_shared<const ListenerTag>(name, false, l->public_port);
    std::vector<std::shared_ptr<SnapshotListener>> made;
    Status st = ok_status();
    for (auto& wk : workers_) {
      auto sl = std::make_shared<SnapshotListener>(wk->io());
      sl->tls = l->tls;
      sl->tag = tag;
      st = bind_acceptor(sl->acc, tcp::endpoint(addr, l->port), name);
      if (!st.ok()) break;
      made.push_back(std::move(sl));
    }
    if (!st.ok()) {
      for (auto& sl : made) sl->acc.close(ec);
      metrics_.listener_bind_errors.Increment();
      spdlog::error("snapshot listener not served: {}", st.error().message);
      continue;
    }
    for (size_t i = 0; i < workers_.size(); ++i) workers_[i]->open_listener(std::move(made[i]));
    bound_.emplace(name, std::make_pair(l->tls, l->public_port));
    spdlog::info("listening on {} ({})", name, l->tls ? "https" : "http");
  }
}


void Server::start() {
  health_->start();
  for (auto& w : workers_) {
    w->start();
    threads_.emplace_back([wp = w.get()] { wp->run(); });
  }
}

void Server::begin_drain() {
  draining_.store(true);
  for (auto& w : workers_) w->begin_drain();
}

void Server::stop_accepting() {
  {
    std::lock_guard lock(listeners_mu_);
    accepting_ = false;
    bound_.clear();
  }
  for (auto& w : workers_) w->stop_accepting();
  for (auto& w : workers_) w->close_idle();
}

size_t Server::active_connections() const {
  size_t n = 0;
  for (const auto& w : workers_) n += w->connections().load(std::memory_order_relaxed);
  return n;
}

void Server::shutdown(std::chrono::milliseconds grace) {
  auto deadline = Clock::now() + grace;
  while (active_connections() > 0 && Clock::now() < deadline) {
    for (auto& w : workers_) w->close_idle();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : workers_) w->stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  health_->stop();
}

}  // namespace gantry::net
