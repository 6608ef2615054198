// ResponseParser table: body framing per RFC 9112 6.3 and the malformed shapes
// that make the proxy answer 502. Every row is parsed in one shot and fed byte
// by byte; both must agree.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "proxy/http/parser.h"

namespace gantry::http {
namespace {

struct Row {
  const char* name;
  std::string input;
  bool request_was_head;
  bool ok;
  // When ok:
  int status = 0;
  std::string reason;
  BodyKind body = BodyKind::kNone;
  uint64_t content_length = 0;
  bool keep_alive = false;
  Limits limits = {};
};
void PrintTo(const Row& r, std::ostream* os) { *os << r.name; }

struct Outcome {
  ParseState state = ParseState::kIncomplete;
  int error_status = 0;
  size_t head_size = 0;
  ResponseHead head;
};

Outcome parse(const Row& r, bool incremental) {
  Outcome o;
  ResponseParser p(r.limits);
  const std::string_view all(r.input);
  for (size_t n = incremental ? 0 : all.size(); n <= all.size(); ++n) {
    o.state = p.parse(all.substr(0, n), o.head, r.request_was_head);
    if (o.state != ParseState::kIncomplete) break;
  }
  if (o.state == ParseState::kError) o.error_status = p.error().status;
  if (o.state == ParseState::kComplete) o.head_size = p.head_size();
  return o;
}

const auto kNone = BodyKind::kNone;
const auto kCL = BodyKind::kContentLength;
const auto kChunked = BodyKind::kChunked;
const auto kClose = BodyKind::kUntilClose;

std::vector<Row> rows() {
  return {
      {"ok_content_length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, true, 200,
       "OK", kCL, 5, true},
      {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false, true,
       200, "OK", kChunked, 0, true},
      {"gzip_then_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false,
       true, 200, "OK", kChunked, 0, true},
      {"no_framing_reads_until_close", "HTTP/1.1 200 OK\r\nServer: x\r\n\r\nbody...", false, true,
       200, "OK", kClose, 0, false},
      {"te_not_chunked_reads_until_close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
       false, true, 200, "OK", kClose, 0, false},
      {"no_content_204", "HTTP/1.1 204 No Content\r\n\r\n", false, true, 204, "No Content", kNone,
       0, true},
      {"not_modified_304_with_cl", "HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\n\r\n",
       false, true, 304, "Not Modified", kNone, 0, true},
      {"continue_100", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", false, true, 100,
       "Continue", kNone, 0, true},
      {"switching_protocols_101",
       "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
       false, true, 101, "Switching Protocols", kNone, 0, true},
      {"head_request_with_cl", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, true, 200,
       "OK", kNone, 0, true},
      {"head_request_with_chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true,
       true, 200, "OK", kNone, 0, true},
      {"http10_closes", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", false, true, 200, "OK",
       kCL, 2, false},
      {"http10_keep_alive",
       "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n", false, true, 200,
       "OK", kCL, 2, true},
      {"connection_close",
       "HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false, true, 404,
       "Not Found", kCL, 0, false},
      {"no_reason_no_space", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, true, 200, "", kCL,
       0, true},
      {"empty_reason", "HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n", false, true, 503, "", kCL, 0,
       true},
      {"identical_cl_folded", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n",
       false, true, 200, "OK", kCL, 4, true},
      {"obs_text_reason", "HTTP/1.1 200 D\xc3\xa9j\xc3\xa0 vu\r\nContent-Length: 0\r\n\r\n", false,
       true, 200, "D\xc3\xa9j\xc3\xa0 vu", kCL, 0, true},
      // Errors: the proxy answers 502.
      {"cl_conflict", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", false,
       false},
      {"cl_list_conflict", "HTTP/1.1 200 OK\r\nContent-Length: 4, 5\r\n\r\n", false, false},
      {"cl_not_digits", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", false, false},
      {"cl_negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false, false},
      {"cl_and_te", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
       false, false},
      {"te_in_http10", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, false},
      {"te_chunked_twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", false,
       false},
      {"http2_version", "HTTP/2.0 200 OK\r\n\r\n", false, false},
      {"lowercase_version", "http/1.1 200 OK\r\n\r\n", false, false},
      {"two_digit_status", "HTTP/1.1 20 OK\r\n\r\n", false, false},
      {"four_digit_status", "HTTP/1.1 2000 OK\r\n\r\n", false, false},
      {"status_below_100", "HTTP/1.1 099 Odd\r\n\r\n", false, false},
      {"status_above_599", "HTTP/1.1 600 Odd\r\n\r\n", false, false},
      {"bare_lf", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", false, false},
      {"obs_fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n", false, false},
      {"header_name_with_space", "HTTP/1.1 200 OK\r\nContent Length: 0\r\n\r\n", false, false},
      {"nul_in_value", std::string("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 27), false, false},
      {"leading_empty_line", "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false, false},
      {"too_many_headers", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", false, false, 0, "",
       kNone, 0, false, Limits{1024, 2}},
      {"head_too_big_incomplete", "HTTP/1.1 200 OK\r\nX-Pad: " + std::string(200, 'p'), false,
       false, 0, "", kNone, 0, false, Limits{128, 100}},
  };
}

class Response : public ::testing::TestWithParam<Row> {};

void check(const Row& r, const Outcome& o) {
  if (!r.ok) {
    ASSERT_EQ(o.state, ParseState::kError);
    EXPECT_EQ(o.error_status, 502);
    return;
  }
  ASSERT_EQ(o.state, ParseState::kComplete);
  EXPECT_EQ(o.head_size, r.input.find("\r\n\r\n") + 4);
  EXPECT_EQ(o.head.status, r.status);
  EXPECT_EQ(o.head.reason, r.reason);
  EXPECT_EQ(o.head.body, r.body);
  EXPECT_EQ(o.head.content_length, r.content_length);
  EXPECT_EQ(o.head.keep_alive, r.keep_alive);
}

TEST_P(Response, OneShot) { check(GetParam(), parse(GetParam(), false)); }
TEST_P(Response, ByteByByte) { check(GetParam(), parse(GetParam(), true)); }

INSTANTIATE_TEST_SUITE_P(Table, Response, ::testing::ValuesIn(rows()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ResponseParser, ResetParsesTheFinalResponseAfter100Continue) {
  const std::string in =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
  ResponseParser p;
  ResponseHead h;
  ASSERT_EQ(p.parse(in, h, false), ParseState::kComplete);
  EXPECT_EQ(h.status, 100);
  const std::string_view rest = std::string_view(in).substr(p.head_size());
  p.reset();
  ASSERT_EQ(p.parse(rest, h, false), ParseState::kComplete);
  EXPECT_EQ(h.status, 201);
  EXPECT_EQ(h.body, BodyKind::kContentLength);
  ASSERT_EQ(h.headers.size(), 1u);
  EXPECT_EQ(h.headers[0].value, "0");
}

}  // namespace
}  // namespace gantry::http
