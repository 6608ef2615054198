// The proxy end of the snapshot protocol (SNAPSHOT.md): listens on a unix
// socket, greets each controller with HELLO, and answers every FULL or
// ENDPOINTS frame with ACK or NACK after validating and applying it through
// the ConfigStore. A rejected snapshot never replaces the applied one.
#pragma once

#include "proxy/base/aio.h"
#include <utility>  // boost 1.74 awaitable.hpp uses std::exchange without it

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <functional>
#include <string>

#include "proxy/admin/metrics.h"
#include "proxy/base/result.h"
#include "proxy/control/config_store.h"

namespace gantry::control {

class ControlServer {
 public:
  ControlServer(boost::asio::io_context& io, ConfigStore& store, admin::Metrics& metrics,
                std::string proxy_id);
  // Removes a stale socket file, creates the parent directory, binds, listens.
  Status listen(const std::string& path);
  void start();
  void close();

 private:
  ::gantry::aio::awaitable<void> accept_loop();
  ::gantry::aio::awaitable<void> serve(boost::asio::local::stream_protocol::socket sock);

  boost::asio::io_context& io_;
  ConfigStore& store_;
  admin::Metrics& metrics_;
  std::string proxy_id_;
  std::string path_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
};

// Applies one FULL or ENDPOINTS payload with timing and metrics; used by the
// control server and by --snapshot-file at start-up.
ApplyOutcome apply_and_record(ConfigStore& store, admin::Metrics& metrics, bool full,
                              std::string_view payload);

}  // namespace gantry::control
