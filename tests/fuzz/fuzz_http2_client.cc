// Fuzzes the HTTP/2 upstream codec (ClientSession) with arbitrary backend
// bytes, after it opened three streams (one with a body and trailers), fed
// in pieces. The handler consumes everything and cancels some streams.
// Invariants: no crash or sanitizer report, bounded unwritten output, every
// stream the handler hears of was opened by the caller and is closed once.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "proxy/http2/client_session.h"

using namespace gantry::http2;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

struct Sink : ClientHandler {
  ClientSession* c = nullptr;
  std::set<int32_t> open;
  bool cancel = false;
  void on_response(int32_t id, int status, std::vector<Field>&&, bool) override {
    check(open.count(id) == 1 && status >= 200 && status <= 999);
    if (cancel) c->reset(id, ErrorCode::kCancel);
  }
  void on_data(int32_t id, std::string_view d) override {
    check(open.count(id) == 1);
    c->consume(id, d.size());
  }
  void on_response_end(int32_t id, const std::vector<Field>*) override { check(open.count(id) == 1); }
  void on_closed(int32_t id, ErrorCode) override { check(open.erase(id) == 1); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t piece = 1 + data[0] % 64;
  Sink sink;
  sink.cancel = data[1] & 1;
  auto created = ClientSession::create({}, sink);
  check(created.ok());
  ClientSession& c = *created.value();
  sink.c = &c;
  RequestHead h{"POST", "http", "b.example", "/x", {{"content-type", "application/grpc"}}, {}};
  for (int i = 0; i < 3; ++i) {
    auto id = c.request(h, i != 0);
    check(id.ok());
    sink.open.insert(*id);
    if (i == 0) {
      c.send_data(*id, "hello");
      c.end_request(*id, std::vector<Field>{{"x-t", "1"}});
    }
  }
  std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  while (!rest.empty()) {
    const size_t n = std::min(piece, rest.size());
    const bool ok = c.receive(rest.substr(0, n)).ok();
    rest.remove_prefix(n);
    std::string_view out = c.output();
    check(out.size() <= 64 * 1024 + 16384 + 9 + 4096);
    c.written(out.size());
    if (!ok) break;
  }
  return 0;
}
