// The health listener; see health_server.h.
#include "controller/cmd/health_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <spdlog/spdlog.h>

namespace gantry::controller {

namespace {

struct Bound {
  int fd;
  uint16_t port;
};

Result<Bound> bind_listener(const std::string& flag, const HostPort& listen) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
  addrinfo* res = nullptr;
  std::string port = std::to_string(listen.port);
  if (int rc = getaddrinfo(listen.host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return Error{flag + " " + listen.str() + ": " + gai_strerror(rc)};
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      ::bind(fd, res->ai_addr, res->ai_addrlen) != 0 || ::listen(fd, 64) != 0) {
    std::string err = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return Error{flag + " " + listen.str() + ": " + err};
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  uint16_t actual = bound.ss_family == AF_INET6
                        ? ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port)
                        : ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return Bound{fd, actual};
}

}  // namespace

Result<std::unique_ptr<HealthServer>> HealthServer::start(const HostPort& health,
                                                          const std::optional<HostPort>& admin) {
  auto h = bind_listener("--health-listen", health);
  if (!h.ok()) return h.error();
  Bound a{-1, 0};
  if (admin) {
    auto b = bind_listener("--admin-listen", *admin);
    if (!b.ok()) {
      ::close(h->fd);
      return b.error();
    }
    a = *b;
  }
  return std::unique_ptr<HealthServer>(new HealthServer(h->fd, h->port, a.fd, a.port));
}

HealthServer::HealthServer(int fd, uint16_t port, int admin_fd, uint16_t admin_port)
    : fd_(fd), port_(port), admin_fd_(admin_fd), admin_port_(admin_port) {
  thread_ = std::thread([this] { run(); });
}

HealthServer::~HealthServer() {
  stop_ = true;
  thread_.join();
  ::close(fd_);
  if (admin_fd_ >= 0) ::close(admin_fd_);
}

void HealthServer::update(const HealthState& s) {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = s;
}

void HealthServer::run() {
  bool reported[2] = {false, false};
  while (!stop_) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {admin_fd_, POLLIN, 0}};
    const int n = admin_fd_ >= 0 ? 2 : 1;
    for (int i = 0; i < n; ++i)
      if (reported[i]) p[i].fd = -1;  // poll() skips it
    if (::poll(p, static_cast<nfds_t>(n), 200) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (p[i].revents & POLLNVAL) {
        // The descriptor was closed under this thread by another part of the
        // process: nothing listens any more (connections are refused, a
        // liveness probe fails). Said once, loudly; the loop stops polling it
        // instead of spinning on POLLNVAL.
        reported[i] = true;
        spdlog::critical("the {} listener's descriptor {} was closed by another part of the process; "
                         "nothing answers on port {} any more",
                         i == 0 ? "health" : "admin", p[i].fd, i == 0 ? port_ : admin_port_);
        continue;
      }
      if (!(p[i].revents & POLLIN)) continue;
      int client = ::accept4(p[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      timeval tv{2, 0};
      setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      serve(client, i == 1);
      ::close(client);
    }
  }
}

void HealthServer::serve(int client, bool admin) {
  std::string req;
  char buf[2048];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos &&
         req.size() < 16384) {
    ssize_t n = ::recv(client, buf, sizeof(buf), 0);
    if (n <= 0) break;
    req.append(buf, static_cast<size_t>(n));
  }
  std::string method = req.substr(0, req.find(' '));
  size_t start = req.find(' ');
  std::string target =
      start == std::string::npos ? "" : req.substr(start + 1, req.find(' ', start + 1) - start - 1);
  target = target.substr(0, target.find('?'));

  int code = 200;
  std::string type = "text/plain; charset=utf-8";
  std::string body;
  HealthState s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    s = state_;
  }
  if (method != "GET" && method != "HEAD") {
    code = 405;
    body = "method not allowed\n";
  } else if (target == "/healthz") {
    body = "ok\n";
  } else if (target == "/readyz") {
    code = s.ready ? 200 : 503;
    body = s.ready ? "ready\n" : "not ready: " + s.not_ready_reason + "\n";
  } else if (target == "/metrics") {
    type = "text/plain; version=0.0.4";
    auto metric = [&](const char* name, const char* kind, const char* help, uint64_t v) {
      body += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + kind + "\n" +
              name + " " + std::to_string(v) + "\n";
    };
    metric("gantry_controller_pushes_total", "counter", "Frames pushed to the proxy.", s.pushes);
    metric("gantry_controller_acks_total", "counter", "Frames the proxy acknowledged.", s.acks);
    metric("gantry_controller_nacks_total", "counter", "Frames the proxy rejected.", s.nacks);
    metric("gantry_controller_acked_version", "gauge", "Last snapshot version the proxy acked.",
           s.acked_version);
    metric("gantry_controller_proxy_connected", "gauge", "1 while connected to the proxy.",
           s.proxy_connected ? 1 : 0);
    metric("gantry_controller_ready", "gauge", "1 once the proxy acked a snapshot.",
           s.ready ? 1 : 0);
    metric("gantry_controller_loads_total", "counter", "Directory loads.", s.loads);
    metric("gantry_controller_objects", "gauge", "Objects in the cache.", s.objects);
    metric("gantry_controller_files_with_errors", "gauge", "Manifest files that do not parse.",
           s.files_with_errors);
    metric("gantry_controller_routes_not_accepted", "gauge", "Routes with Accepted=False.",
           s.routes_not_accepted);
    body += s.extra_metrics;
  } else if (target == "/status" && admin) {
    type = "application/json";
    body = s.status_json + "\n";
  } else if (target == "/ingress-nginx" && admin) {
    type = "application/json";
    body = s.ingress_nginx_json + "\n";
  } else {
    code = 404;
    body = target == "/status" ? "not found: /status is served on the admin listener only "
                                 "(--admin-listen, loopback by default)\n"
                               : "not found\n";
  }
  const char* reason = code == 200   ? "OK"
                       : code == 503 ? "Service Unavailable"
                       : code == 404 ? "Not Found"
                                     : "Method Not Allowed";
  std::string resp =
      "HTTP/1.1 " + std::to_string(code) + " " + reason + "\r\nContent-Type: " + type +
      "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (method != "HEAD") resp += body;
  size_t off = 0;
  while (off < resp.size()) {
    ssize_t n = ::send(client, resp.data() + off, resp.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace gantry::controller
