// The span exporter: a bounded queue that workers push finished spans into,
// and one background thread that sends them in batches to an OTLP/HTTP
// endpoint (POST <endpoint>, JSON; docs/tracing.md).
//
// Invariants:
// - submit() never waits for I/O: it takes a mutex held only for a push or a
//   swap of the queue, and drops the span (counted) when the queue is full.
//   It wakes the thread only when a batch is full.
// - The thread sends a batch when it has kBatchSpans spans or every
//   `interval`; a failed export (connect, write, read, non-2xx) counts an
//   export error, drops that batch (counted) and backs off (100 ms doubling
//   to 5 s) before it connects again; spans that arrive meanwhile wait in the
//   queue until it is full.
// - Only plain http:// endpoints (a collector agent beside the proxy).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/tracing/span.h"

namespace gantry::tracing {

struct Endpoint {
  std::string host;
  uint16_t port = 4318;
  std::string path = "/v1/traces";
};
// "http://host[:port][/path]"; the path defaults to /v1/traces (OTLP/HTTP).
Result<Endpoint> parse_endpoint(std::string_view url);

struct ExporterOptions {
  Endpoint endpoint;
  std::string service_name = "gantry-proxy";
  std::string service_version;
  size_t queue_spans = 8192;                     // bounded: spans beyond are dropped
  std::chrono::milliseconds interval{500};       // a partial batch waits at most this
  std::chrono::milliseconds io_timeout{5000};    // connect / send / receive
};

class Exporter {
 public:
  static constexpr size_t kBatchSpans = 512;

  explicit Exporter(ExporterOptions opts);
  ~Exporter();  // sends what is queued (one try), then joins the thread
  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  void start();
  // From any thread; never blocks on I/O. False: dropped (queue full).
  bool submit(Span&& s);

  uint64_t exported() const { return exported_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t export_errors() const { return errors_.load(std::memory_order_relaxed); }
  const ExporterOptions& options() const { return opts_; }

 private:
  void run();
  bool send(const std::string& body);  // one POST on the kept connection (reconnects once)
  bool connect_socket();
  void close_socket();

  ExporterOptions opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Span> queue_;
  bool stop_ = false;
  std::thread thread_;
  int fd_ = -1;
  std::atomic<uint64_t> exported_{0}, dropped_{0}, errors_{0};
};

}  // namespace gantry::tracing
