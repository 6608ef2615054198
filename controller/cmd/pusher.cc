// The push client; see pusher.h.
#include "controller/cmd/pusher.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "proxy/snapshot/codec.h"

namespace gantry::controller {

namespace {

namespace sn = gantry::snapshot;
using std::chrono::duration_cast;
using std::chrono::milliseconds;

constexpr milliseconds kMaxBackoff{5000};
constexpr milliseconds kAckTimeout{30000};

std::string key_of(const sn::Snapshot& s) {
  sn::Snapshot copy = s;
  copy.version = 0;
  return sn::encode(copy);
}

// True when `a` and `b` differ in endpoints only (same routes, certificates,
// listeners, rate-limit store, cluster names, protocols and TLS): the change
// can travel as an ENDPOINTS delta, which carries endpoints only (the proxy
// keeps a cluster's protocol and tls across a delta: a CA or client
// certificate that changes with the endpoints needs a FULL snapshot).
bool endpoints_only(const sn::Snapshot& a, const sn::Snapshot& b) {
  if (a.routes != b.routes || a.certificates != b.certificates) return false;
  if (a.listeners != b.listeners || a.rate_limit_store != b.rate_limit_store) return false;
  if (a.clusters.size() != b.clusters.size()) return false;
  for (size_t i = 0; i < a.clusters.size(); ++i)
    if (a.clusters[i].name != b.clusters[i].name || a.clusters[i].protocol != b.clusters[i].protocol ||
        a.clusters[i].tls != b.clusters[i].tls)
      return false;
  return true;
}

std::string describe(const sn::Snapshot& s) {
  return std::to_string(s.routes.size()) + " routes, " + std::to_string(s.clusters.size()) +
         " clusters";
}

}  // namespace

Pusher::Pusher(std::string socket_path, uint64_t first_version, milliseconds hold_off)
    : path_(std::move(socket_path)),
      hold_off_(hold_off),
      next_version_(first_version),
      rng_(std::random_device{}()) {}

Pusher::~Pusher() {
  if (fd_ >= 0) ::close(fd_);
}

void Pusher::set_desired(const sn::Snapshot& s, Clock::time_point now) {
  std::string key = key_of(s);
  if (have_desired_ && key == desired_key_) return;  // a no-op update
  desired_ = s;
  desired_key_ = std::move(key);
  have_desired_ = true;
  rejection_.clear();
  ++generation_;
  // Endpoint-only changes take the fast path. A FULL goes at once after a
  // quiet spell, and at most one per hold-off: the changes of a burst behind
  // the first coalesce into the next one (leading edge, then rate-limited).
  bool fast = applied_ && endpoints_only(desired_, *applied_);
  Clock::time_point due = fast || !last_full_at_ ? now : std::max(now, *last_full_at_ + hold_off_);
  if (!push_at_ || due < *push_at_) push_at_ = due;
}

short Pusher::events() const {
  if (fd_ < 0) return 0;
  return static_cast<short>(POLLIN | (out_.empty() ? 0 : POLLOUT));
}

std::optional<Pusher::Clock::time_point> Pusher::deadline() const {
  switch (state_) {
    case State::kDisconnected:
      return reconnect_at_;
    case State::kReady:
      return push_at_;
    case State::kInFlight:
      return inflight_since_ + kAckTimeout;
    case State::kAwaitHello:
      return std::nullopt;
  }
  return std::nullopt;
}

void Pusher::connect(Clock::time_point now) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (fd < 0 || path_.size() >= sizeof(addr.sun_path)) {
    if (fd >= 0) ::close(fd);
    disconnect(fd < 0 ? std::string("socket: ") + std::strerror(errno) : "socket path too long",
               now);
    return;
  }
  std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    int err = errno;
    ::close(fd);
    disconnect(std::strerror(err), now);
    return;
  }
  fd_ = fd;
  state_ = State::kAwaitHello;
  decoder_ = sn::FrameDecoder();
  out_.clear();
  stats_.connected = true;
  spdlog::info("connected to the proxy at {}; waiting for HELLO", path_);
}

void Pusher::disconnect(const std::string& why, Clock::time_point now) {
  bool was_connected = fd_ >= 0;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  out_.clear();
  state_ = State::kDisconnected;
  stats_.connected = false;
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  auto wait =
      milliseconds(static_cast<int64_t>(static_cast<double>(backoff_.count()) * jitter(rng_)));
  reconnect_at_ = now + wait;
  backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  if (was_connected || !quiet_failures_) {
    spdlog::warn("proxy at {}: {}; reconnecting in {} ms", path_, why, wait.count());
  } else {
    spdlog::debug("proxy at {}: {}; reconnecting in {} ms", path_, why, wait.count());
  }
  quiet_failures_ = !was_connected;
}

void Pusher::send(sn::FrameType type, const std::string& payload, Clock::time_point now) {
  out_ += sn::encode_frame(type, payload);
  ++stats_.pushes;
  flush(now);
}

void Pusher::flush(Clock::time_point now) {
  while (!out_.empty() && fd_ >= 0) {
    ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
    if (n > 0) {
      out_.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      return;
    } else {
      disconnect(std::string("write: ") + std::strerror(errno), now);
      return;
    }
  }
}

void Pusher::send_due(Clock::time_point now) {
  if (state_ != State::kReady || !have_desired_ || !push_at_ || now < *push_at_) return;
  push_at_.reset();
  if (!force_full_ && desired_key_ == applied_key_) return;  // the proxy has it
  if (desired_key_ == nacked_key_) return;                   // rejected already; wait for a change
  uint64_t version = next_version_++;
  inflight_ = desired_;
  inflight_.version = version;
  inflight_key_ = desired_key_;
  inflight_since_ = now;
  state_ = State::kInFlight;
  if (!force_full_ && applied_ && endpoints_only(desired_, *applied_)) {
    sn::EndpointDelta d;
    d.base_version = applied_->version;
    d.version = version;
    for (size_t i = 0; i < desired_.clusters.size(); ++i)
      if (desired_.clusters[i] != applied_->clusters[i]) d.clusters.push_back(desired_.clusters[i]);
    inflight_delta_ = true;
    send(sn::FrameType::kEndpoints, sn::encode(d), now);
  } else {
    inflight_delta_ = false;
    last_full_at_ = now;
    send(sn::FrameType::kFull, sn::encode(inflight_), now);
  }
}

void Pusher::handle(const sn::Frame& f, Clock::time_point now) {
  switch (f.type) {
    case sn::FrameType::kHello: {
      auto h = sn::decode_hello(f.payload);
      if (!h.ok()) {
        disconnect("bad HELLO: " + h.error().message, now);
        return;
      }
      spdlog::info("proxy {} says HELLO (last applied version {})", h->proxy_id, h->last_version);
      if (h->last_version >= next_version_) next_version_ = h->last_version + 1;
      backoff_ = milliseconds(100);
      quiet_failures_ = false;
      state_ = State::kReady;
      force_full_ = true;  // a (re)connected proxy always gets a FULL
      nacked_key_.clear();
      push_at_ = now;
      return;
    }
    case sn::FrameType::kAck: {
      auto a = sn::decode_ack(f.payload);
      if (!a.ok() || state_ != State::kInFlight || a->version != inflight_.version) {
        spdlog::warn("unexpected ACK from the proxy ({}); ignored",
                     a.ok() ? "version " + std::to_string(a->version) : a.error().message);
        return;
      }
      auto took = duration_cast<milliseconds>(now - inflight_since_).count();
      spdlog::info("pushed version {} ({}, {}) acked in {} ms", inflight_.version,
                   inflight_delta_ ? "ENDPOINTS" : "FULL", describe(inflight_), took);
      applied_ = inflight_;
      applied_key_ = inflight_key_;
      force_full_ = false;
      if (applied_key_ == desired_key_) rejection_.clear();
      ++stats_.acks;
      stats_.acked_version = inflight_.version;
      ++generation_;
      state_ = State::kReady;
      return;
    }
    case sn::FrameType::kNack: {
      auto n = sn::decode_nack(f.payload);
      if (!n.ok() || state_ != State::kInFlight || n->version != inflight_.version) {
        spdlog::warn("unexpected NACK from the proxy ({}); ignored",
                     n.ok() ? "version " + std::to_string(n->version) : n.error().message);
        return;
      }
      ++stats_.nacks;
      state_ = State::kReady;
      std::string errors;
      for (const auto& e : n->errors) errors += (errors.empty() ? "" : "; ") + e;
      if (inflight_delta_) {
        spdlog::warn("proxy rejected ENDPOINTS delta version {} ({}); sending a FULL snapshot",
                     n->version, errors);
        force_full_ = true;
        push_at_ = now;
        return;
      }
      spdlog::error("proxy rejected snapshot version {} ({}); it keeps serving version {}",
                    n->version, describe(inflight_), applied_ ? applied_->version : 0);
      for (const auto& e : n->errors) spdlog::error("  {}", e);
      nacked_key_ = inflight_key_;
      if (inflight_key_ == desired_key_) rejection_ = errors;
      ++generation_;
      if (desired_key_ != nacked_key_) push_at_ = now;
      return;
    }
    default:
      spdlog::warn("unexpected frame type {} from the proxy; ignored", static_cast<int>(f.type));
  }
}

void Pusher::on_io(short revents, Clock::time_point now) {
  if (fd_ < 0) return;
  if (revents & POLLOUT) flush(now);
  if (fd_ < 0 || !(revents & (POLLIN | POLLHUP | POLLERR))) return;
  char buf[65536];
  while (fd_ >= 0) {
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      if (auto st = decoder_.feed(std::string_view(buf, static_cast<size_t>(n))); !st.ok()) {
        disconnect("protocol error: " + st.error().message, now);
        return;
      }
      while (auto f = decoder_.next()) {
        handle(*f, now);
        if (fd_ < 0) return;
      }
    } else if (n == 0) {
      disconnect("connection closed", now);
      return;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else if (errno != EINTR) {
      disconnect(std::string("read: ") + std::strerror(errno), now);
      return;
    }
  }
  send_due(now);
}

void Pusher::tick(Clock::time_point now) {
  if (state_ == State::kDisconnected && now >= reconnect_at_) connect(now);
  if (state_ == State::kInFlight && now >= inflight_since_ + kAckTimeout) {
    disconnect("no ACK for version " + std::to_string(inflight_.version) + " within 30 s", now);
    return;
  }
  send_due(now);
}

}  // namespace gantry::controller
