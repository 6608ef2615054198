// Fuzzes the HTTP/2 server codec with arbitrary client bytes (after a valid
// preface + SETTINGS half of the time, so the fuzzer reaches frames quickly),
// fed in pieces of varying size. The handler behaves like the proxy: it answers
// every request (with a body and sometimes trailers; a CONNECT at once, as the
// proxy opens an RFC 8441 tunnel), passes body bytes on at once, and resets
// some streams. Invariants: no crash or sanitizer report, the
// codec never holds more unwritten output than its high-water mark plus one
// frame, a stream's response buffer never exceeds its bound, and after an
// error the connection is done once its output is flushed. With bit 0x10 of
// the first byte, the session is asked to give its idle memory back after
// every piece (session_memory.h): whatever the state, it releases only while
// idle, and nothing goes wrong after. With bit 0x08, the session is asked to
// hibernate after every piece (ServerSession::hibernate()): only while idle,
// and the bytes that follow (its SETTINGS acknowledged or not) wake it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http2/server_session.h"

using namespace gantry::http2;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

uint64_t fixed_clock() { return 0; }

struct Answering : Handler {
  ServerSession* s = nullptr;
  uint8_t mode = 0;
  std::set<int32_t> open;
  void on_request(int32_t id, RequestHead&& head, bool end_stream) override {
    check(!head.method.empty());
    open.insert(id);
    if (mode & 1) s->reset(id, ErrorCode::kCancel);
    // A CONNECT is answered at once, as the proxy opens a tunnel (RFC 8441):
    // its END_STREAM then half-closes while the client goes on sending.
    if (end_stream || head.method == "CONNECT") answer(id);
  }
  void on_data(int32_t id, std::string_view d) override {
    check(open.count(id) == 1);
    s->consume(id, d.size());
  }
  void on_request_end(int32_t id, const std::vector<Field>*) override {
    check(open.count(id) == 1);
    answer(id);
  }
  void on_closed(int32_t id, ErrorCode) override { check(open.erase(id) == 1); }
  void on_writable(int32_t id) override { s->send_data(id, std::string(1000, 'w')); }
  void answer(int32_t id) {
    std::vector<Field> h = {{"content-type", "text/plain"}, {"Connection", "close"}};
    s->respond(id, 200, h, false);
    s->send_data(id, std::string(mode & 2 ? 100000 : 10, 'x'));
    check(s->room(id) <= 64 * 1024);
    if (mode & 4) {
      s->end_response(id, std::vector<Field>{{"grpc-status", "0"}});
    } else {
      s->end_response(id);
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const uint8_t opts = data[0];
  const size_t piece = 1 + data[1] % 64;
  std::string in;
  if (opts & 0x80) {
    in.assign(kClientPreface);
    in.append("\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);  // empty SETTINGS
  }
  in.append(reinterpret_cast<const char*>(data) + 2, size - 2);

  Limits limits;
  limits.max_concurrent_streams = 8;
  limits.max_header_list_bytes = 4096;
  Answering h;
  h.mode = opts;
  auto created = ServerSession::create(limits, h, fixed_clock);
  check(created.ok());
  ServerSession& s = *created.value();
  h.s = &s;
  std::string_view rest = in;
  bool failed = false;
  while (!rest.empty() && !failed) {
    const size_t n = std::min(piece, rest.size());
    failed = !s.receive(rest.substr(0, n)).ok();
    rest.remove_prefix(n);
    if (opts & 0x40) s.drain();
    std::string_view out = s.output();
    check(out.size() <= limits.output_high_water + 16384 + 9 + 4096);
    // Half the time the socket takes everything, else only part of it.
    s.written((opts & 0x20) ? out.size() / 2 : out.size());
    if (opts & 0x10) {
      const size_t open = s.open_streams();
      const size_t released = s.release_idle_memory();
      check(released == 0 || open == 0);
    }
    if (opts & 0x08) {
      const size_t open = s.open_streams();
      const bool slept = s.hibernate();
      check(!slept || (open == 0 && s.hibernated() && s.output().empty() && !s.done()));
    }
  }
  for (int i = 0; i < 100; ++i) {
    std::string_view out = s.output();
    if (out.empty()) break;
    s.written(out.size());
  }
  if (failed) check(s.done());
  return 0;
}
