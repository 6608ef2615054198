// gantry-echo: the HTTP/1.1 backend that tests, the demo and the benchmarks
// put behind the proxy.
//
// It answers every request with 200 and a JSON description of what it
// received (its name, the address it listens on, method, raw request-target,
// lower-cased headers, body byte count, a chunked body's trailers as
// "trailers" when it had some), so a test can tell which backend a
// request reached and what the proxy forwarded. Special paths: /status/NNN,
// /delay/MS, /bytes/N, /chunked/N (N bytes in chunked encoding), /healthz,
// /stats (requests answered so far, for tests that count backend hits),
// /close, /plain, and /ws: a WebSocket echo (RFC 6455 handshake, then every
// data frame is sent back unmasked with its opcode and FIN bit, ping gets
// pong, close is answered with close). The WebSocket part is test
// scaffolding: no extensions, no UTF-8 validation, frames up to 64 MiB.
//
// Invariants:
// - Its request parsing is its own and deliberately minimal: it shares no code
//   with the proxy's HTTP parser, so a parser bug cannot hide on both sides.
// - One io_context per thread, each accepting on its own duplicate of one
//   listening socket; connections never move between threads.
// - Keep-alive and pipelining: bytes after a request stay buffered for the
//   next one. Content-Length and chunked request bodies are read and counted.
// - A malformed request gets 400 and the connection is closed; nothing throws
//   out of a connection.
// - SIGTERM/SIGINT stop every io_context and the process exits 0.
// - Every JSON answer carries "seq", the number of requests this process has
//   answered (a relaxed atomic counter, /stats and /healthz not counted), so a
//   test can tell a replayed (cached) answer from a fresh one. A query
//   parameter `header=Name:Value` (percent-encoded, repeatable) adds that
//   field to the JSON answer's head (e.g. Cache-Control, Vary, Set-Cookie);
//   `trailer=Name:Value` adds a trailer field to a /chunked/N answer.
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>  // before Boost 1.74's awaitable.hpp, which uses std::exchange
#include <vector>

#include <unistd.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "proxy/base/flags.h"
#include "tests/backends/websocket_frame.h"

namespace gantry::echo {
namespace {

namespace asio = boost::asio;
using asio::awaitable;
using asio::ip::tcp;
using boost::system::error_code;

constexpr size_t kMaxHead = 64 * 1024;
constexpr uint64_t kMaxBytes = 4ull << 30;    // /bytes/N and /chunked/N upper bound
constexpr uint64_t kMaxDelayMs = 120000;      // /delay/MS upper bound
constexpr size_t kReadChunk = 16 * 1024;
constexpr uint64_t kMaxWsFrame = 64ull << 20;  // /ws: larger frames close the connection

// Requests answered by this process (see "seq" above).
std::atomic<uint64_t> g_answered{0};

struct Config {
  std::string name = "echo";
  std::string address;  // "ip:port" actually bound, filled in after bind
  bool plain = false;
};

struct Request {
  std::string method;
  std::string target;
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  uint64_t body_bytes = 0;
  std::vector<std::pair<std::string, std::string>> trailers;  // a chunked body's; names lower-cased
  bool keep_alive = true;
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_token_char(char c) {
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Appends `s` as a JSON string literal. Bytes >= 0x80 are escaped as \u00XX
// (read as Latin-1) so the output is always valid ASCII JSON.
void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += ch;
    }
  }
  out += '"';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// The "Name: Value\r\n" lines asked for by `header=Name:Value` query
// parameters of `target` (percent-decoded; `trailer=` with param "trailer=").
// Malformed ones (no colon, a name that is not a token, control characters)
// are ignored.
std::string requested_headers(std::string_view target, std::string_view param_name = "header=") {
  std::string out;
  auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (!param.starts_with(param_name)) continue;
    std::string v;
    bool bad = false;
    for (size_t i = param_name.size(); i < param.size(); ++i) {
      char c = param[i];
      if (c == '%' && i + 2 < param.size() && hex_value(param[i + 1]) >= 0 &&
          hex_value(param[i + 2]) >= 0) {
        c = static_cast<char>(hex_value(param[i + 1]) * 16 + hex_value(param[i + 2]));
        i += 2;
      } else if (c == '+') {
        c = ' ';
      }
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) bad = true;
      v += c;
    }
    auto colon = v.find(':');
    if (bad || colon == 0 || colon == std::string::npos) continue;
    std::string_view name = std::string_view(v).substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) continue;
    out += std::string(name) + ": " + std::string(trim(std::string_view(v).substr(colon + 1))) +
           "\r\n";
  }
  return out;
}

std::optional<uint64_t> parse_dec(std::string_view s) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// Parses the request line and header fields of `head` (without the final
// CRLFCRLF). Returns an error message for a malformed head.
std::optional<std::string> parse_head(std::string_view head, Request& req) {
  size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return "bad request line";
  req.method = std::string(line.substr(0, sp1));
  req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  req.version = std::string(line.substr(sp2 + 1));
  if (req.method.empty() || !std::all_of(req.method.begin(), req.method.end(), is_token_char))
    return "bad method";
  if (req.target.empty()) return "empty request-target";
  if (req.version != "HTTP/1.1" && req.version != "HTTP/1.0") return "unsupported version";
  req.keep_alive = req.version == "HTTP/1.1";

  size_t pos = eol == std::string_view::npos ? head.size() : eol + 2;
  while (pos < head.size()) {
    size_t end = head.find("\r\n", pos);
    if (end == std::string_view::npos) end = head.size();
    std::string_view field = head.substr(pos, end - pos);
    pos = end + 2;
    size_t colon = field.find(':');
    if (colon == 0 || colon == std::string_view::npos) return "bad header field";
    std::string_view name = field.substr(0, colon);
    if (!std::all_of(name.begin(), name.end(), is_token_char)) return "bad header name";
    req.headers.emplace_back(lower(name), std::string(trim(field.substr(colon + 1))));
  }
  return std::nullopt;
}

const std::string* find_header(const Request& req, std::string_view name) {
  for (const auto& [n, v] : req.headers)
    if (n == name) return &v;
  return nullptr;
}

bool has_token(std::string_view list, std::string_view token) {
  std::string l = lower(list);
  size_t pos = 0;
  while (pos <= l.size()) {
    size_t comma = l.find(',', pos);
    if (comma == std::string::npos) comma = l.size();
    if (trim(std::string_view(l).substr(pos, comma - pos)) == token) return true;
    pos = comma + 1;
  }
  return false;
}

const char* reason(int status) {
  switch (status) {
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

std::string json_body(const Config& cfg, const Request& req, uint64_t seq) {
  // Repeated header fields are joined with ", " as RFC 9110 allows.
  std::map<std::string, std::string> headers;
  for (const auto& [n, v] : req.headers) {
    auto [it, inserted] = headers.emplace(n, v);
    if (!inserted) it->second += ", " + v;
  }
  std::string out;
  out.reserve(256);
  out += "{\"name\":";
  append_json_string(out, cfg.name);
  out += ",\"address\":";
  append_json_string(out, cfg.address);
  out += ",\"method\":";
  append_json_string(out, req.method);
  out += ",\"path\":";
  append_json_string(out, req.target);
  out += ",\"seq\":" + std::to_string(seq);
  out += ",\"headers\":{";
  bool first = true;
  for (const auto& [n, v] : headers) {
    if (!first) out += ',';
    first = false;
    append_json_string(out, n);
    out += ':';
    append_json_string(out, v);
  }
  out += "},\"bodyBytes\":" + std::to_string(req.body_bytes);
  if (!req.trailers.empty()) {
    out += ",\"trailers\":{";
    first = true;
    for (const auto& [n, v] : req.trailers) {
      if (!first) out += ',';
      first = false;
      append_json_string(out, n);
      out += ':';
      append_json_string(out, v);
    }
    out += '}';
  }
  out += "}\n";
  return out;
}

std::string response_head(const Config& cfg, int status, std::string_view content_type,
                          uint64_t length, bool keep_alive, std::string_view extra = {}) {
  std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\n";
  h += "Server: gantry-echo\r\n";
  h += "X-Echo-Name: " + cfg.name + "\r\n";
  h += extra;
  if (status != 204 && status != 304) {
    h += "Content-Type: " + std::string(content_type) + "\r\n";
    h += "Content-Length: " + std::to_string(length) + "\r\n";
  }
  if (!keep_alive) h += "Connection: close\r\n";
  h += "\r\n";
  return h;
}

// One connection: reads requests until the peer closes, an error, or a
// response that closes. `buf` keeps pipelined bytes between requests.
class Connection {
 public:
  Connection(tcp::socket socket, const Config& cfg) : socket_(std::move(socket)), cfg_(cfg) {}

  awaitable<void> run() {
    error_code ec;
    socket_.set_option(tcp::no_delay(true), ec);
    for (;;) {
      Request req;
      size_t head_end;
      while ((head_end = buf_.find("\r\n\r\n")) == std::string::npos) {
        if (buf_.size() > kMaxHead) {
          co_await send_error(431, "request head too large");
          co_return;
        }
        if (!co_await fill()) co_return;
      }
      // Tolerate blank lines before a request (RFC 9112 §2.2).
      size_t start = 0;
      while (buf_.compare(start, 2, "\r\n") == 0 && start < head_end) start += 2;
      if (start >= head_end) {
        buf_.erase(0, head_end + 4);
        continue;
      }
      std::string head = buf_.substr(start, head_end - start);
      buf_.erase(0, head_end + 4);
      if (auto err = parse_head(head, req)) {
        co_await send_error(400, *err);
        co_return;
      }
      if (auto* c = find_header(req, "connection")) {
        if (has_token(*c, "close")) req.keep_alive = false;
        if (has_token(*c, "keep-alive")) req.keep_alive = true;
      }
      if (!co_await read_body(req)) co_return;
      if (!co_await respond(req)) co_return;
      if (!req.keep_alive) break;
    }
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    socket_.close(ec);
  }

 private:
  // Reads more bytes into buf_. False on EOF or error.
  awaitable<bool> fill() {
    char tmp[kReadChunk];
    error_code ec;
    size_t n = co_await socket_.async_read_some(asio::buffer(tmp),
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec || n == 0) co_return false;
    buf_.append(tmp, n);
    co_return true;
  }

  awaitable<bool> write(std::string_view data) {
    error_code ec;
    co_await asio::async_write(socket_, asio::buffer(data.data(), data.size()),
                               asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  awaitable<void> send_error(int status, std::string_view message) {
    std::string body = std::string(message) + "\n";
    std::string out = response_head(cfg_, status, "text/plain", body.size(), false) + body;
    co_await write(out);
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    socket_.close(ec);
  }

  // Discards exactly `n` body bytes, counting them.
  awaitable<bool> skip(uint64_t n, Request& req) {
    while (n > 0) {
      if (buf_.empty() && !co_await fill()) co_return false;
      uint64_t take = std::min<uint64_t>(n, buf_.size());
      buf_.erase(0, take);
      n -= take;
      req.body_bytes += take;
    }
    co_return true;
  }

  // Reads one CRLF-terminated line (without the CRLF) from buf_.
  awaitable<std::optional<std::string>> read_line() {
    size_t eol;
    while ((eol = buf_.find("\r\n")) == std::string::npos) {
      if (buf_.size() > kMaxHead) co_return std::nullopt;
      if (!co_await fill()) co_return std::nullopt;
    }
    std::string line = buf_.substr(0, eol);
    buf_.erase(0, eol + 2);
    co_return line;
  }

  awaitable<bool> read_body(Request& req) {
    const std::string* te = find_header(req, "transfer-encoding");
    const std::string* cl = find_header(req, "content-length");
    if (te != nullptr || cl != nullptr) {
      if (auto* expect = find_header(req, "expect"); expect && lower(*expect) == "100-continue")
        if (!co_await write("HTTP/1.1 100 Continue\r\n\r\n")) co_return false;
    }
    if (te != nullptr) {
      if (cl != nullptr) {
        co_await send_error(400, "Content-Length with Transfer-Encoding");
        co_return false;
      }
      std::string codings = lower(*te);
      std::string_view last = trim(std::string_view(codings).substr(codings.rfind(',') + 1));
      if (last != "chunked") {
        co_await send_error(400, "Transfer-Encoding does not end in chunked");
        co_return false;
      }
      for (;;) {
        auto line = co_await read_line();
        if (!line) co_return false;
        std::string_view size_text = trim(std::string_view(*line).substr(0, line->find(';')));
        uint64_t size = 0;
        auto [p, ec] =
            std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
        if (size_text.empty() || ec != std::errc() || p != size_text.data() + size_text.size()) {
          co_await send_error(400, "bad chunk size");
          co_return false;
        }
        if (size == 0) break;
        if (!co_await skip(size, req)) co_return false;
        auto crlf = co_await read_line();
        if (!crlf || !crlf->empty()) {
          co_await send_error(400, "chunk not followed by CRLF");
          co_return false;
        }
      }
      // Trailer section: lines until an empty one (reported as "trailers").
      for (;;) {
        auto trailer = co_await read_line();
        if (!trailer) co_return false;
        if (trailer->empty()) break;
        const size_t colon = trailer->find(':');
        if (colon != std::string::npos)
          req.trailers.emplace_back(lower(trim(std::string_view(*trailer).substr(0, colon))),
                                    std::string(trim(std::string_view(*trailer).substr(colon + 1))));
      }
      co_return true;
    }
    if (cl != nullptr) {
      auto n = parse_dec(*cl);
      if (!n) {
        co_await send_error(400, "bad Content-Length");
        co_return false;
      }
      co_return co_await skip(*n, req);
    }
    co_return true;
  }

  // Writes the answer to `req`. False when the connection must end.
  awaitable<bool> respond(Request& req) {
    const bool head_only = req.method == "HEAD";
    std::string_view path = req.target;
    path = path.substr(0, path.find('?'));

    if (cfg_.plain || path == "/plain") {
      static constexpr std::string_view kBody = "OK\n";
      std::string out = response_head(cfg_, 200, "text/plain", kBody.size(), req.keep_alive);
      if (!head_only) out += kBody;
      co_return co_await write(out);
    }
    if (path == "/stats") {
      std::string body =
          "{\"requests\":" + std::to_string(g_answered.load(std::memory_order_relaxed)) + "}\n";
      std::string out = response_head(cfg_, 200, "application/json", body.size(), req.keep_alive);
      if (!head_only) out += body;
      co_return co_await write(out);
    }
    if (path == "/healthz") {
      std::string out = response_head(cfg_, 200, "text/plain", 3, req.keep_alive);
      if (!head_only) out += "ok\n";
      co_return co_await write(out);
    }
    const uint64_t seq = g_answered.fetch_add(1, std::memory_order_relaxed) + 1;
    if (path == "/ws") co_return co_await websocket(req);
    if (path.starts_with("/chunked/")) co_return co_await chunked(req, path.substr(9));
    int status = 200;
    if (path.starts_with("/status/")) {
      auto code = parse_dec(path.substr(8));
      if (!code || *code < 200 || *code > 599) {
        co_await send_error(400, "/status/NNN needs a status from 200 to 599");
        co_return false;
      }
      status = static_cast<int>(*code);
    } else if (path.starts_with("/delay/")) {
      auto ms = parse_dec(path.substr(7));
      if (!ms || *ms > kMaxDelayMs) {
        co_await send_error(400, "/delay/MS needs a number of milliseconds up to 120000");
        co_return false;
      }
      asio::steady_timer timer(socket_.get_executor(), std::chrono::milliseconds(*ms));
      error_code ec;
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    } else if (path.starts_with("/bytes/")) {
      auto n = parse_dec(path.substr(7));
      if (!n || *n > kMaxBytes) {
        co_await send_error(400, "/bytes/N needs a number up to 4294967296");
        co_return false;
      }
      if (!co_await write(response_head(cfg_, 200, "application/octet-stream", *n, req.keep_alive)))
        co_return false;
      if (head_only) co_return true;
      static const std::string kBlock(64 * 1024, 'x');
      for (uint64_t left = *n; left > 0;) {
        size_t take = static_cast<size_t>(std::min<uint64_t>(left, kBlock.size()));
        if (!co_await write(std::string_view(kBlock).substr(0, take))) co_return false;
        left -= take;
      }
      co_return true;
    } else if (path == "/close") {
      req.keep_alive = false;
    }
    std::string body = json_body(cfg_, req, seq);
    std::string out = response_head(cfg_, status, "application/json", body.size(), req.keep_alive,
                                    requested_headers(req.target));
    if (!head_only && status != 204 && status != 304) out += body;
    co_return co_await write(out);
  }

  // /chunked/N: N bytes of 'x' in 64 KiB chunks, then the last chunk with
  // the trailer fields asked for by `trailer=Name:Value` query parameters.
  awaitable<bool> chunked(Request& req, std::string_view count) {
    auto n = parse_dec(count);
    if (!n || *n > kMaxBytes) {
      co_await send_error(400, "/chunked/N needs a number up to 4294967296");
      co_return false;
    }
    std::string head = "HTTP/1.1 200 OK\r\nServer: gantry-echo\r\nX-Echo-Name: " + cfg_.name +
                       "\r\nContent-Type: application/octet-stream\r\n";
    if (req.method == "HEAD") {
      head += req.keep_alive ? "\r\n" : "Connection: close\r\n\r\n";
      co_return co_await write(head);
    }
    head += "Transfer-Encoding: chunked\r\n";
    head += req.keep_alive ? "\r\n" : "Connection: close\r\n\r\n";
    if (!co_await write(head)) co_return false;
    static const std::string kBlock = [] {
      std::string chunk(64 * 1024, 'x');
      char size[16];
      std::snprintf(size, sizeof size, "%zx\r\n", chunk.size());
      return size + chunk + "\r\n";
    }();
    uint64_t left = *n;
    for (; left >= 64 * 1024; left -= 64 * 1024) {
      bool ok = co_await write(kBlock);
      if (!ok) co_return false;
    }
    std::string tail;
    if (left > 0) {
      char size[24];
      std::snprintf(size, sizeof size, "%llx\r\n", static_cast<unsigned long long>(left));
      tail = size + std::string(static_cast<size_t>(left), 'x') + "\r\n";
    }
    tail += "0\r\n" + requested_headers(req.target, "trailer=") + "\r\n";
    co_return co_await write(tail);
  }

  // Makes sure buf_ holds at least `n` bytes. False on EOF or error.
  awaitable<bool> need(size_t n) {
    bool ok = true;
    while (ok && buf_.size() < n) ok = co_await fill();
    co_return ok;
  }

  // /ws: the RFC 6455 handshake, then echo frames until close. Always ends
  // the connection (returns false).
  awaitable<bool> websocket(Request& req) {
    const std::string* upgrade = find_header(req, "upgrade");
    const std::string* connection = find_header(req, "connection");
    const std::string* key = find_header(req, "sec-websocket-key");
    if (req.method != "GET" || !upgrade || lower(*upgrade) != "websocket" || !connection ||
        !has_token(*connection, "upgrade") || !key || key->empty()) {
      co_await send_error(400, "/ws needs a WebSocket upgrade request");
      co_return false;
    }
    std::string accept_src = *key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(accept_src.data()), accept_src.size(), digest);
    unsigned char accept[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
    EVP_EncodeBlock(accept, digest, SHA_DIGEST_LENGTH);
    std::string head =
        "HTTP/1.1 101 Switching Protocols\r\nServer: gantry-echo\r\nX-Echo-Name: " + cfg_.name +
        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
        reinterpret_cast<const char*>(accept) + "\r\n\r\n";
    if (!co_await write(head)) co_return false;
    for (;;) {
      if (!co_await need(2)) co_return false;
      auto b0 = static_cast<unsigned char>(buf_[0]);
      auto b1 = static_cast<unsigned char>(buf_[1]);
      const bool masked = (b1 & 0x80) != 0;
      uint64_t len = b1 & 0x7f;
      size_t hdr = 2;
      if (len >= 126) {
        size_t ext = len == 126 ? 2 : 8;
        if (!co_await need(2 + ext)) co_return false;
        len = 0;
        for (size_t i = 0; i < ext; ++i) len = (len << 8) | static_cast<unsigned char>(buf_[2 + i]);
        hdr += ext;
      }
      if (len > kMaxWsFrame) co_return false;
      size_t mask_at = hdr;
      if (masked) hdr += 4;
      if (!co_await need(hdr + static_cast<size_t>(len))) co_return false;
      std::string payload = buf_.substr(hdr, static_cast<size_t>(len));
      if (masked)
        for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= buf_[mask_at + (i & 3)];
      buf_.erase(0, hdr + static_cast<size_t>(len));
      const unsigned opcode = b0 & 0x0f;
      if (opcode == 0xA) continue;  // pong: nothing to do
      // Echo data frames as they came (FIN and opcode kept, so fragmented
      // messages come back fragmented); ping -> pong; close -> close.
      unsigned char out_b0 = static_cast<unsigned char>(b0 & 0x8f);
      if (opcode == 0x9) out_b0 = 0x8A;
      const std::string frame = test_backends::websocket_frame(out_b0, payload);
      if (!co_await write(frame)) co_return false;
      if (opcode == 0x8) co_return false;  // our close answered theirs: done
    }
  }

  tcp::socket socket_;
  const Config& cfg_;
  std::string buf_;
};

awaitable<void> serve(tcp::socket socket, const Config& cfg) {
  Connection conn(std::move(socket), cfg);
  co_await conn.run();
}

awaitable<void> accept_loop(tcp::acceptor& acceptor, const Config& cfg) {
  for (;;) {
    error_code ec;
    tcp::socket socket =
        co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
    if (ec) {
      // EMFILE and friends: back off briefly instead of spinning.
      asio::steady_timer timer(acceptor.get_executor(), std::chrono::milliseconds(10));
      co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), cfg), asio::detached);
  }
}

// Opens the listening socket. SO_REUSEPORT is deliberately not used: a second
// process on a busy address must fail to start, not silently share the port.
bool open_acceptor(tcp::acceptor& a, const tcp::endpoint& ep, std::string& err) {
  error_code ec;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) err = ec.message();
  return !ec;
}

int run(int argc, char** argv) {
  Config cfg;
  HostPort listen{"127.0.0.1", 9001};
  uint64_t threads = 1;

  FlagSet flags(
      "gantry-echo",
      "HTTP/1.1 echo backend for tests, the demo and benchmarks. Answers 200 with a JSON\n"
      "description of the request. Special paths: /status/NNN, /delay/MS, /bytes/N,\n"
      "/chunked/N, /healthz, /stats (requests answered), /close (answers with Connection:\n"
      "close), /plain (fixed tiny body), /ws (WebSocket echo). Query parameter\n"
      "header=Name:Value (repeatable) adds a response header to JSON answers.",
      "GANTRY_ECHO_");
  flags.add("listen", "ADDR:PORT", "127.0.0.1:9001", "address to listen on (port 0: any free port)",
            [&](std::string_view v) -> Status {
              auto hp = parse_host_port(v);
              if (!hp.ok()) return hp.error();
              listen = *hp;
              return ok_status();
            });
  flags.add("name", "NAME", "echo", "name reported in every answer",
            [&](std::string_view v) -> Status {
              if (v.empty()) return Error{"name must not be empty"};
              cfg.name = std::string(v);
              return ok_status();
            });
  flags.add("threads", "N", "1", "threads, each with its own io_context and acceptor",
            [&](std::string_view v) -> Status {
              auto n = parse_uint(v, 1, 256);
              if (!n.ok()) return n.error();
              threads = *n;
              return ok_status();
            });
  flags.add_bool("plain", "answer every request with a fixed 200 \"OK\" text body (benchmarks)",
                 &cfg.plain);
  flags.parse_or_exit(argc, argv);

  error_code ec;
  auto addr = asio::ip::make_address(listen.host, ec);
  if (ec) {
    std::cerr << "gantry-echo: bad value for --listen: \"" << listen.host
              << "\" is not an IP address\n";
    return 2;
  }
  tcp::endpoint endpoint(addr, listen.port);

  std::vector<std::unique_ptr<asio::io_context>> contexts;
  std::vector<std::unique_ptr<tcp::acceptor>> acceptors;
  for (uint64_t i = 0; i < threads; ++i) {
    contexts.push_back(std::make_unique<asio::io_context>(1));
    acceptors.push_back(std::make_unique<tcp::acceptor>(*contexts.back()));
    std::string err;
    if (i == 0) {
      if (!open_acceptor(*acceptors.back(), endpoint, err)) {
        std::cerr << "gantry-echo: cannot listen on " << endpoint << ": " << err << "\n";
        return 1;
      }
      endpoint = acceptors.front()->local_endpoint();  // the real port when 0 was asked
      continue;
    }
    // Every further thread accepts on a duplicate of the same listening socket.
    int fd = ::dup(acceptors.front()->native_handle());
    if (fd < 0) {
      std::cerr << "gantry-echo: dup of the listening socket failed\n";
      return 1;
    }
    acceptors.back()->assign(endpoint.protocol(), fd, ec);
    if (ec) {
      std::cerr << "gantry-echo: cannot share the listening socket: " << ec.message() << "\n";
      return 1;
    }
  }
  HostPort bound{endpoint.address().to_string(), endpoint.port()};
  cfg.address = bound.str();

  asio::signal_set signals(*contexts.front(), SIGINT, SIGTERM);
  signals.async_wait([&](const error_code& e, int) {
    if (e) return;
    for (auto& a : acceptors) {
      // Each acceptor belongs to its own thread; close it there.
      asio::post(a->get_executor(), [&a] {
        error_code ignored;
        a->close(ignored);
      });
    }
    for (auto& c : contexts) c->stop();
  });

  for (size_t i = 0; i < contexts.size(); ++i)
    asio::co_spawn(*contexts[i], accept_loop(*acceptors[i], cfg), asio::detached);

  std::cout << "gantry-echo " << cfg.name << " listening on " << cfg.address << std::endl;

  std::vector<std::thread> workers;
  for (size_t i = 1; i < contexts.size(); ++i)
    workers.emplace_back([&c = *contexts[i]] { c.run(); });
  contexts.front()->run();
  for (auto& c : contexts) c->stop();
  for (auto& w : workers) w.join();
  return 0;
}

}  // namespace
}  // namespace gantry::echo

int main(int argc, char** argv) { return gantry::echo::run(argc, argv); }
