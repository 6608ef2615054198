#include "proxy/tracing/exporter.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include "proxy/http/parser.h"
#include "proxy/tracing/otlp_json.h"

namespace gantry::tracing {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Waits until fd is ready for `events` or the deadline passes.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

}  // namespace

Result<Endpoint> parse_endpoint(std::string_view url) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme)
    return Error{"expected http://host[:port][/path] (OTLP/HTTP; https is not supported)"};
  url.remove_prefix(kScheme.size());
  Endpoint e;
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  if (slash != std::string_view::npos && slash + 1 < url.size()) e.path = std::string(url.substr(slash));
  std::string_view host = authority;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return Error{"bad IPv6 literal in " + std::string(authority)};
    host = authority.substr(1, close - 1);
    authority.remove_prefix(close + 1);
    if (!authority.empty() && authority.front() != ':') return Error{"bad authority"};
  } else {
    size_t colon = authority.rfind(':');
    host = authority.substr(0, colon);
    authority = colon == std::string_view::npos ? std::string_view{} : authority.substr(colon);
  }
  if (!authority.empty()) {
    std::string_view port = authority.substr(1);
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (port.empty() || ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535)
      return Error{"bad port " + std::string(port)};
    e.port = static_cast<uint16_t>(v);
  }
  if (host.empty()) return Error{"missing host"};
  e.host = std::string(host);
  return e;
}

Exporter::Exporter(ExporterOptions opts) : opts_(std::move(opts)) { queue_.reserve(kBatchSpans); }

Exporter::~Exporter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  close_socket();
}

void Exporter::start() { thread_ = std::thread([this] { run(); }); }

bool Exporter::submit(Span&& s) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() >= opts_.queue_spans) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    queue_.push_back(std::move(s));
    wake = queue_.size() == kBatchSpans;
  }
  if (wake) cv_.notify_one();
  return true;
}

void Exporter::run() {
  std::vector<Span> batch;
  milliseconds backoff{0};
  bool stopping = false;
  while (!stopping) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      // After a failure: wait the backoff (spans keep queueing, bounded).
      auto wait = backoff.count() > 0 ? backoff : opts_.interval;
      cv_.wait_for(lock, wait, [&] { return stop_ || (backoff.count() == 0 && queue_.size() >= kBatchSpans); });
      stopping = stop_;
      if (queue_.empty()) continue;
      size_t take = std::min(queue_.size(), kBatchSpans);
      batch.clear();
      batch.insert(batch.end(), std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + static_cast<std::ptrdiff_t>(take)));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(take));
    }
    std::string body = encode_otlp_json(batch, opts_.service_name, opts_.service_version);
    if (send(body)) {
      exported_.fetch_add(batch.size(), std::memory_order_relaxed);
      if (backoff.count() > 0)
        spdlog::info("tracing: export to {}:{}{} works again", opts_.endpoint.host, opts_.endpoint.port,
                     opts_.endpoint.path);
      backoff = milliseconds(0);
    } else {
      errors_.fetch_add(1, std::memory_order_relaxed);
      dropped_.fetch_add(batch.size(), std::memory_order_relaxed);
      if (backoff.count() == 0)
        spdlog::warn("tracing: export to {}:{}{} failed; {} spans dropped; retrying with backoff "
                     "(gantry_tracing_export_errors_total counts failures)",
                     opts_.endpoint.host, opts_.endpoint.port, opts_.endpoint.path, batch.size());
      backoff = std::min(milliseconds(5000), std::max(milliseconds(100), backoff * 2));
    }
    batch.clear();
  }
}

bool Exporter::connect_socket() {
  close_socket();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string port = std::to_string(opts_.endpoint.port);
  if (::getaddrinfo(opts_.endpoint.host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return false;
  const auto deadline = Clock::now() + opts_.io_timeout;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int r = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (r != 0 && errno == EINPROGRESS && wait_fd(fd, POLLOUT, deadline)) {
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      r = err == 0 ? 0 : -1;
    }
    if (r == 0) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
      break;
    }
    ::close(fd);
  }
  ::freeaddrinfo(res);
  return fd_ >= 0;
}

void Exporter::close_socket() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

bool Exporter::send(const std::string& body) {
  std::string head = "POST " + opts_.endpoint.path + " HTTP/1.1\r\nHost: " + opts_.endpoint.host + ":" +
                     std::to_string(opts_.endpoint.port) +
                     "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\n\r\n";
  // A kept connection the collector closed while idle fails at once: one
  // more try on a fresh connection.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = fd_ >= 0;
    if (!reused && !connect_socket()) return false;
    const auto deadline = Clock::now() + opts_.io_timeout;
    bool ok = true;
    for (std::string_view out : {std::string_view(head), std::string_view(body)}) {
      while (ok && !out.empty()) {
        ssize_t n = ::send(fd_, out.data(), out.size(), MSG_NOSIGNAL);
        if (n > 0) out.remove_prefix(static_cast<size_t>(n));
        else if (n < 0 && (errno == EAGAIN || errno == EINTR)) ok = wait_fd(fd_, POLLOUT, deadline);
        else ok = false;
      }
    }
    // The response: head, then a Content-Length or chunked body (read and dropped).
    http::ResponseParser parser;
    http::ResponseHead resp;
    std::string in;
    bool complete = false, keep = false;
    char buf[4096];
    while (ok && !complete) {
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n > 0) {
        in.append(buf, static_cast<size_t>(n));
        if (resp.status == 0 || parser.head_size() == 0) {
          resp.clear();
          parser.reset();
          auto st = parser.parse(in, resp, false);
          if (st == http::ParseState::kError) ok = false;
          if (st != http::ParseState::kComplete) continue;
        }
        std::string_view rest = std::string_view(in).substr(parser.head_size());
        if (resp.body == http::BodyKind::kContentLength) {
          complete = rest.size() >= resp.content_length;
          keep = resp.keep_alive && rest.size() == resp.content_length;
        } else if (resp.body == http::BodyKind::kChunked) {
          complete = rest.size() >= 5 && rest.substr(rest.size() - 5) == "0\r\n\r\n";
          keep = resp.keep_alive && complete;
        } else if (resp.body == http::BodyKind::kNone) {
          complete = true;
          keep = resp.keep_alive;
        }
      } else if (n == 0) {
        ok = resp.status != 0 && resp.body == http::BodyKind::kUntilClose && parser.head_size() > 0;
        complete = ok;
        keep = false;
        break;
      } else if (errno == EAGAIN || errno == EINTR) {
        ok = wait_fd(fd_, POLLIN, deadline);
      } else {
        ok = false;
      }
    }
    if (!ok || !complete) {
      close_socket();
      if (reused && in.empty()) continue;  // the idle connection was gone: try a fresh one
      return false;
    }
    if (!keep) close_socket();
    if (resp.status >= 200 && resp.status < 300) return true;
    spdlog::debug("tracing: collector answered {}", resp.status);
    return false;
  }
  return false;
}

}  // namespace gantry::tracing
