// JSON-lines access log through spdlog's async logger, so a slow sink never
// blocks a worker (the queue drops the oldest entry when it is full).
//
// Lines are batched per thread: write() formats into the calling thread's
// buffer and hands the buffer to the logger as one entry when it passes
// kBatchBytes; flush_thread() hands over what is pending (workers call it on
// every 100 ms sweep and when they stop). One queue operation and one wake-up
// of the logger thread per batch instead of per request: measured, a queue
// push per request cost more than the rest of the request's user time.
// A line therefore reaches the sink at most ~100 ms (plus the 1 s flush) after
// its request.
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
  std::string_view proto;  // "HTTP/1.1", "HTTP/2" (omitted from the line when empty)
  int status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  double duration_ms = 0;
  std::string_view upstream;
  double upstream_ms = -1;
  std::string_view route;
  std::string_view request_id;
  // Why the exchange ended abnormally after its answer began, e.g.
  // "upstream_truncated" (the upstream ended the body early); empty otherwise.
  std::string_view error;
  // The exchange's trace and the gateway's span (hex), when tracing is on.
  std::string_view trace_id;
  std::string_view span_id;
};

class AccessLog {
 public:
  // target: "stdout", "off", or a file path.
  static std::unique_ptr<AccessLog> open(const std::string& target);
  ~AccessLog();
  bool enabled() const { return logger_ != nullptr; }
  void write(const AccessRecord& r);
  void flush_thread();  // the calling thread's pending lines go to the logger now
  void flush();         // the logger's sink is flushed (lines already handed over)

  static constexpr size_t kBatchBytes = 16 * 1024;

 private:
  std::shared_ptr<spdlog::logger> logger_;
};

}  // namespace gantry::net
