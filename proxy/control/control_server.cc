#include "proxy/control/control_server.h"
#include "proxy/base/aio.h"

#include <sys/stat.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "proxy/snapshot/frame.h"
#include "proxy/upstream/cluster_state.h"

namespace gantry::control {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;
using boost::system::error_code;

ApplyOutcome apply_and_record(ConfigStore& store, admin::Metrics& metrics, bool full,
                              std::string_view payload) {
  auto t0 = std::chrono::steady_clock::now();
  ApplyOutcome out = full ? store.apply_full(payload) : store.apply_delta(payload);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const char* what = full ? "snapshot" : "endpoint delta";
  if (out.errors.empty()) {
    // Per-cluster state (retry budgets, breakers, outlier detectors) of
    // clusters that left the snapshot is freed.
    if (auto cfg = store.current()) {
      size_t freed = upstream::ClusterRegistry::global().retain(
          [&](const std::string& name) { return cfg->clusters.count(name) != 0; });
      if (freed > 0)
        spdlog::info("freed the runtime state of {} cluster(s) no longer in the snapshot", freed);
    }
    metrics.snapshot_applies.Increment();
    metrics.snapshot_apply_seconds.Observe(secs);
    metrics.snapshot_version.Set(static_cast<double>(out.version));
    spdlog::info("applied {} version {} in {:.3f} ms", what, out.version, secs * 1000);
  } else {
    metrics.snapshot_nacks.Increment();
    spdlog::warn("rejected {} version {} ({} errors), keeping version {}: {}", what, out.version,
                 out.errors.size(), store.version(), out.errors.front());
  }
  return out;
}

ControlServer::ControlServer(asio::io_context& io, ConfigStore& store, admin::Metrics& metrics,
                             std::string proxy_id)
    : io_(io), store_(store), metrics_(metrics), proxy_id_(std::move(proxy_id)), acceptor_(io) {}

Status ControlServer::listen(const std::string& path) {
  std::error_code fec;
  auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, fec);
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error{"control socket path " + path + " exists and is not a socket"};
    ::unlink(path.c_str());
  }
  error_code ec;
  acceptor_.open(local(), ec);
  if (!ec) acceptor_.bind(local::endpoint(path), ec);
  if (!ec) acceptor_.listen(16, ec);
  if (ec) return Error{"cannot listen on control socket " + path + ": " + ec.message()};
  ::chmod(path.c_str(), 0660);
  path_ = path;
  return ok_status();
}

void ControlServer::start() { asio::co_spawn(io_, accept_loop(), asio::detached); }

void ControlServer::close() {
  error_code ec;
  acceptor_.close(ec);
  if (!path_.empty()) ::unlink(path_.c_str());
}

aio::awaitable<void> ControlServer::accept_loop() {
  while (acceptor_.is_open()) {
    error_code ec;
    local::socket sock = co_await acceptor_.async_accept(asio::redirect_error(aio::use_awaitable, ec));
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      continue;
    }
    asio::co_spawn(io_, serve(std::move(sock)), asio::detached);
  }
}

aio::awaitable<void> ControlServer::serve(local::socket sock) {
  auto awaitable_ec = [](error_code& ec) { return asio::redirect_error(aio::use_awaitable, ec); };
  error_code ec;
  std::string hello = snapshot::encode_frame(
      snapshot::FrameType::kHello, snapshot::encode(snapshot::Hello{proxy_id_, store_.version()}));
  co_await asio::async_write(sock, asio::buffer(hello), awaitable_ec(ec));
  if (ec) co_return;
  spdlog::info("controller connected on the control socket");
  snapshot::FrameDecoder decoder;
  std::vector<char> buf(64 * 1024);
  while (true) {
    size_t n = co_await sock.async_read_some(asio::buffer(buf), awaitable_ec(ec));
    if (ec) break;
    if (auto st = decoder.feed(std::string_view(buf.data(), n)); !st.ok()) {
      spdlog::warn("control socket: {}; closing the connection", st.error().message);
      break;
    }
    while (auto frame = decoder.next()) {
      std::string reply;
      if (frame->type == snapshot::FrameType::kFull || frame->type == snapshot::FrameType::kEndpoints) {
        auto out = apply_and_record(store_, metrics_, frame->type == snapshot::FrameType::kFull,
                                    frame->payload);
        if (out.errors.empty())
          reply = snapshot::encode_frame(snapshot::FrameType::kAck,
                                         snapshot::encode(snapshot::Ack{out.version}));
        else
          reply = snapshot::encode_frame(snapshot::FrameType::kNack,
                                         snapshot::encode(snapshot::Nack{out.version, out.errors}));
      } else {
        spdlog::warn("control socket: ignoring unexpected frame type {}", static_cast<int>(frame->type));
        continue;
      }
      co_await asio::async_write(sock, asio::buffer(reply), awaitable_ec(ec));
      if (ec) break;
    }
    if (ec) break;
  }
  spdlog::info("controller disconnected; keeping snapshot version {}", store_.version());
}

}  // namespace gantry::control
