// JSON-lines access log through spdlog's async logger, so a slow sink never
// blocks a worker (the queue drops the oldest line when it is full).
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace spdlog {
class logger;
}

namespace gantry::net {

struct AccessRecord {
  std::string_view client;
  std::string_view method;
  std::string_view host;
  std::string_view path;
  int status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  double duration_ms = 0;
  std::string_view upstream;
  double upstream_ms = -1;
  std::string_view route;
  std::string_view request_id;
};

class AccessLog {
 public:
  // target: "stdout", "off", or a file path.
  static std::unique_ptr<AccessLog> open(const std::string& target);
  ~AccessLog();
  bool enabled() const { return logger_ != nullptr; }
  void write(const AccessRecord& r);
  void flush();

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace gantry::net
