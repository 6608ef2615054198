#include "proxy/net/access_log.h"

#include <spdlog/async.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>

namespace gantry::net {

namespace {

// Appends s as a JSON string body (without quotes), escaping what JSON needs.
void append_escaped(fmt::memory_buffer& out, std::string_view s) {
  for (unsigned char c : s) {
    switch (c) {
      case '"': out.append(std::string_view("\\\"")); break;
      case '\\': out.append(std::string_view("\\\\")); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
}

void field(fmt::memory_buffer& out, std::string_view name, std::string_view value) {
  out.push_back(',');
  out.push_back('"');
  out.append(name);
  out.append(std::string_view("\":\""));
  append_escaped(out, value);
  out.push_back('"');
}

// The calling thread's pending lines, for one AccessLog (owner).
struct Batch {
  const AccessLog* owner = nullptr;
  fmt::memory_buffer lines;
};
thread_local Batch batch;

}  // namespace

std::unique_ptr<AccessLog> AccessLog::open(const std::string& target) {
  auto log = std::make_unique<AccessLog>();
  if (target == "off") return log;
  static std::once_flag pool_once;
  std::call_once(pool_once, [] { spdlog::init_thread_pool(64 * 1024, 1); });
  if (target == "stdout") {
    log->logger_ = spdlog::create_async_nb<spdlog::sinks::stdout_sink_mt>("access");
  } else {
    log->logger_ = spdlog::create_async_nb<spdlog::sinks::basic_file_sink_mt>("access", target);
  }
  log->logger_->set_pattern("%v");
  log->logger_->flush_on(spdlog::level::err);
  spdlog::flush_every(std::chrono::seconds(1));
  return log;
}

AccessLog::~AccessLog() {
  flush_thread();
  if (logger_) {
    logger_->flush();
    spdlog::drop("access");
  }
}

void AccessLog::flush() {
  if (logger_) logger_->flush();
}

void AccessLog::flush_thread() {
  if (batch.owner != this || batch.lines.size() == 0) return;
  // The batch is one log entry: its lines are joined by '\n' and the sink
  // adds the last one.
  logger_->info(std::string_view(batch.lines.data(), batch.lines.size() - 1));
  batch.lines.clear();
}

void AccessLog::write(const AccessRecord& r) {
  if (!logger_) return;
  if (batch.owner != this) {
    batch.owner = this;
    batch.lines.clear();
  }
  fmt::memory_buffer& out = batch.lines;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[32];
  std::strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
  fmt::format_to(std::back_inserter(out), "{{\"time\":\"{}.{:03d}Z\"", ts, static_cast<int>(ms % 1000));
  field(out, "client", r.client);
  field(out, "method", r.method);
  field(out, "host", r.host);
  field(out, "path", r.path);
  if (!r.proto.empty()) field(out, "proto", r.proto);
  fmt::format_to(std::back_inserter(out), ",\"status\":{},\"bytesIn\":{},\"bytesOut\":{},\"durationMs\":{:.3f}",
                 r.status, r.bytes_in, r.bytes_out, r.duration_ms);
  field(out, "upstream", r.upstream);
  if (r.upstream_ms >= 0) fmt::format_to(std::back_inserter(out), ",\"upstreamMs\":{:.3f}", r.upstream_ms);
  field(out, "route", r.route);
  field(out, "requestId", r.request_id);
  if (!r.error.empty()) field(out, "error", r.error);
  if (!r.trace_id.empty()) {
    field(out, "traceId", r.trace_id);
    field(out, "spanId", r.span_id);
  }
  out.push_back('}');
  out.push_back('\n');
  if (out.size() >= kBatchBytes) flush_thread();
}

}  // namespace gantry::net
