// RequestParser tables: valid request shapes with their derived framing, and
// malformed / smuggling shapes with the status the proxy answers. Every row is
// parsed in one shot and fed byte by byte; both must agree.
#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

#include "proxy/http/parser.h"

namespace gantry::http {
namespace {

struct Outcome {
  ParseState state = ParseState::kIncomplete;
  int status = 0;
  size_t head_size = 0;
  RequestHead head;
};

// One shot: the whole input at once.
Outcome parse_once(const std::string& in, Limits limits) {
  Outcome o;
  RequestParser p(limits);
  o.state = p.parse(in, o.head);
  if (o.state == ParseState::kError) o.status = p.error().status;
  if (o.state == ParseState::kComplete) o.head_size = p.head_size();
  return o;
}

// Byte by byte: growing prefixes of the same buffer until the parser decides.
Outcome parse_incremental(const std::string& in, Limits limits) {
  Outcome o;
  RequestParser p(limits);
  const std::string_view all(in);
  for (size_t n = 0; n <= in.size(); ++n) {
    o.state = p.parse(all.substr(0, n), o.head);
    if (o.state != ParseState::kIncomplete) break;
  }
  if (o.state == ParseState::kError) o.status = p.error().status;
  if (o.state == ParseState::kComplete) o.head_size = p.head_size();
  return o;
}

// ------------------------------------------------------------ valid requests

struct ValidRow {
  const char* name;
  std::string input;
  std::string method;
  std::string target;
  Version version;
  BodyKind body;
  uint64_t content_length;
  bool keep_alive;
  bool expect_continue;
  bool upgrade_websocket;
  std::string host;
  size_t header_count;
  Limits limits = {};
};
void PrintTo(const ValidRow& r, std::ostream* os) { *os << r.name; }

const auto V11 = Version::kHttp11;
const auto V10 = Version::kHttp10;
const auto kNone = BodyKind::kNone;
const auto kCL = BodyKind::kContentLength;
const auto kChunked = BodyKind::kChunked;

std::string many_headers(size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += "X-H" + std::to_string(i) + ": v\r\n";
  return s;
}

std::vector<ValidRow> valid_rows() {
  std::vector<ValidRow> rows = {
      {"simple_get", "GET / HTTP/1.1\r\nHost: a.example\r\n\r\n", "GET", "/", V11, kNone, 0, true,
       false, false, "a.example", 1},
      {"get_with_query", "GET /p/q?x=1&y=%20 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", "GET",
       "/p/q?x=1&y=%20", V11, kNone, 0, true, false, false, "a", 2},
      {"post_content_length", "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
       "POST", "/u", V11, kCL, 5, true, false, false, "a", 2},
      {"post_chunked",
       "POST /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "POST", "/u", V11, kChunked, 0, true, false, false, "a", 2},
      {"chunked_case_insensitive",
       "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: ChUnKeD\r\n\r\n", "POST", "/", V11,
       kChunked, 0, true, false, false, "a", 2},
      {"content_length_zero", "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "PUT",
       "/x", V11, kCL, 0, true, false, false, "a", 2},
      {"http10_no_host_closes", "GET /old HTTP/1.0\r\n\r\n", "GET", "/old", V10, kNone, 0, false,
       false, false, "", 0},
      {"http10_keep_alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n", "GET",
       "/", V10, kNone, 0, true, false, false, "a", 2},
      {"http11_connection_close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "GET",
       "/", V11, kNone, 0, false, false, false, "a", 2},
      {"close_beats_keep_alive",
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, CLOSE\r\n\r\n", "GET", "/", V11, kNone,
       0, false, false, false, "a", 2},
      {"http10_keep_alive_and_close",
       "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", "GET", "/", V10,
       kNone, 0, false, false, false, "", 2},
      {"absolute_form", "GET http://Example.com:8080/x?y HTTP/1.1\r\nHost: ignored.example\r\n\r\n",
       "GET", "http://Example.com:8080/x?y", V11, kNone, 0, true, false, false, "ignored.example",
       1},
      {"options_asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "OPTIONS", "*", V11, kNone, 0,
       true, false, false, "a", 1},
      {"expect_100_continue",
       "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\nExpect: 100-Continue\r\n\r\n", "PUT",
       "/f", V11, kCL, 10, true, true, false, "a", 3},
      {"expect_ignored_in_http10",
       "PUT /f HTTP/1.0\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n", "PUT", "/f", V10,
       kCL, 1, false, false, false, "", 2},
      {"websocket_upgrade",
       "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
       "GET", "/ws", V11, kNone, 0, true, false, true, "a", 5},
      {"websocket_upgrade_token_list",
       "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: "
       "WebSocket\r\n\r\n",
       "GET", "/ws", V11, kNone, 0, true, false, true, "a", 3},
      {"upgrade_without_connection_token",
       "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", "GET", "/ws", V11, kNone, 0,
       true, false, false, "a", 2},
      {"upgrade_on_post_is_not_websocket",
       "POST /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n"
       "Content-Length: 0\r\n\r\n",
       "POST", "/ws", V11, kCL, 0, true, false, false, "a", 4},
      {"upgrade_h2c_is_not_websocket",
       "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", "GET", "/", V11,
       kNone, 0, true, false, false, "a", 3},
      {"leading_empty_lines", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/", V11, kNone,
       0, true, false, false, "a", 1},
      {"identical_content_lengths_folded",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", "POST",
       "/", V11, kCL, 3, true, false, false, "a", 3},
      {"content_length_list_identical",
       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3 , 3\r\n\r\n", "POST", "/", V11, kCL, 3,
       true, false, false, "a", 2},
      {"ows_trimmed_and_empty_value",
       "GET / HTTP/1.1\r\nHost:\t a \t\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n", "GET", "/", V11,
       kNone, 0, true, false, false, "a", 3},
      {"pipelined_second_request_not_consumed",
       "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", "GET", "/1", V11,
       kNone, 0, true, false, false, "a", 1},
      {"host_with_port", "GET / HTTP/1.1\r\nHost: Shop.Example.com:8443\r\n\r\n", "GET", "/", V11,
       kNone, 0, true, false, false, "Shop.Example.com:8443", 1},
      {"host_ipv6_literal", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", "GET", "/", V11, kNone, 0,
       true, false, false, "[::1]:8080", 1},
      {"extension_method", "PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n", "PURGE", "/cache", V11,
       kNone, 0, true, false, false, "a", 1},
      {"exactly_max_headers", "GET / HTTP/1.1\r\nHost: a\r\n" + many_headers(4) + "\r\n", "GET",
       "/", V11, kNone, 0, true, false, false, "a", 5, Limits{1024, 5}},
  };
  // A head of exactly max_head_bytes is accepted.
  std::string exact = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  const size_t limit = 200;
  exact += std::string(limit - exact.size() - 4, 'p') + "\r\n\r\n";
  rows.push_back({"exactly_max_head_bytes", exact, "GET", "/", V11, kNone, 0, true, false, false,
                  "a", 2, Limits{limit, 100}});
  return rows;
}

class ValidRequest : public ::testing::TestWithParam<ValidRow> {};

void expect_head(const ValidRow& r, const Outcome& o) {
  ASSERT_EQ(o.state, ParseState::kComplete) << "status " << o.status;
  const size_t end = r.input.find("\r\n\r\n", r.input.find_first_not_of("\r\n")) + 4;
  EXPECT_EQ(o.head_size, end);
  EXPECT_EQ(o.head.method, r.method);
  EXPECT_EQ(o.head.target, r.target);
  EXPECT_EQ(o.head.version, r.version);
  EXPECT_EQ(o.head.body, r.body);
  EXPECT_EQ(o.head.content_length, r.content_length);
  EXPECT_EQ(o.head.keep_alive, r.keep_alive);
  EXPECT_EQ(o.head.expect_continue, r.expect_continue);
  EXPECT_EQ(o.head.upgrade_websocket, r.upgrade_websocket);
  EXPECT_EQ(o.head.host, r.host);
  EXPECT_EQ(o.head.headers.size(), r.header_count);
}

TEST_P(ValidRequest, OneShot) {
  expect_head(GetParam(), parse_once(GetParam().input, GetParam().limits));
}

TEST_P(ValidRequest, ByteByByte) {
  expect_head(GetParam(), parse_incremental(GetParam().input, GetParam().limits));
}

TEST_P(ValidRequest, ViewsPointIntoTheBuffer) {
  const ValidRow& r = GetParam();
  RequestParser p(r.limits);
  RequestHead h;
  ASSERT_EQ(p.parse(r.input, h), ParseState::kComplete);
  const char* lo = r.input.data();
  const char* hi = lo + p.head_size();
  auto inside = [&](std::string_view v) {
    return v.empty() || (v.data() >= lo && v.data() + v.size() <= hi);
  };
  EXPECT_TRUE(inside(h.method));
  EXPECT_TRUE(inside(h.target));
  EXPECT_TRUE(inside(h.host));
  for (const Header& x : h.headers) {
    EXPECT_TRUE(inside(x.name)) << x.name;
    EXPECT_TRUE(inside(x.value)) << x.name;
    EXPECT_FALSE(!x.value.empty() && (x.value.front() == ' ' || x.value.back() == ' '));
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ValidRequest, ::testing::ValuesIn(valid_rows()),
                         [](const auto& info) { return std::string(info.param.name); });

// ------------------------------------------------------------ rejected requests

struct BadRow {
  const char* name;
  std::string input;
  int status;
  Limits limits = {};
};
void PrintTo(const BadRow& r, std::ostream* os) { *os << r.name; }

std::vector<BadRow> bad_rows() {
  const std::string get = "GET / HTTP/1.1\r\nHost: a\r\n";
  const std::string post = "POST / HTTP/1.1\r\nHost: a\r\n";
  std::vector<BadRow> rows = {
      // Framing conflicts (request smuggling).
      {"cl_and_te", post + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"te_and_cl", post + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400},
      {"cl_cl_different", post + "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
      {"cl_list_different", post + "Content-Length: 5, 6\r\n\r\n", 400},
      {"cl_list_empty_element", post + "Content-Length: 5,\r\n\r\n", 400},
      {"cl_plus_sign", post + "Content-Length: +5\r\n\r\n", 400},
      {"cl_minus_sign", post + "Content-Length: -1\r\n\r\n", 400},
      {"cl_inner_space", post + "Content-Length: 1 0\r\n\r\n", 400},
      {"cl_hex", post + "Content-Length: 0x10\r\n\r\n", 400},
      {"cl_empty", post + "Content-Length:\r\n\r\n", 400},
      {"cl_decimal_point", post + "Content-Length: 5.0\r\n\r\n", 400},
      {"cl_overflow", post + "Content-Length: 18446744073709551616\r\n\r\n", 400},
      {"te_chunked_then_gzip", post + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"te_gzip_only", post + "Transfer-Encoding: gzip\r\n\r\n", 400},
      {"te_gzip_then_chunked", post + "Transfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"te_identity_then_chunked", post + "Transfer-Encoding: identity, chunked\r\n\r\n", 501},
      {"te_chunked_twice", post + "Transfer-Encoding: chunked, chunked\r\n\r\n", 400},
      {"te_chunked_two_fields",
       post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"te_gzip_field_then_chunked_field",
       post + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
      {"te_chunked_field_then_gzip_field",
       post + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"te_obs_fold", post + "Transfer-Encoding:\r\n chunked\r\n\r\n", 400},
      {"te_obs_fold_tab", post + "Transfer-Encoding: gzip,\r\n\tchunked\r\n\r\n", 400},
      {"te_space_before_colon", post + "Transfer-Encoding : chunked\r\n\r\n", 400},
      {"te_xchunked", post + "Transfer-Encoding: xchunked\r\n\r\n", 400},
      {"te_chunked_with_parameter", post + "Transfer-Encoding: chunked;q=1\r\n\r\n", 400},
      {"te_quoted", post + "Transfer-Encoding: \"chunked\"\r\n\r\n", 400},
      {"te_empty", post + "Transfer-Encoding:\r\n\r\n", 400},
      {"te_in_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"te_vertical_tab",
       post + "Transfer-Encoding:\x0b"
              "chunked\r\n\r\n",
       400},
      // Line endings and bad characters.
      {"bare_lf_everywhere", "GET / HTTP/1.1\nHost: a\n\n", 400},
      {"bare_lf_after_header", get + "X-A: b\n\r\n", 400},
      {"bare_lf_leading", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"bare_cr_in_value", get + "X-A: b\rc\r\n\r\n", 400},
      {"bare_cr_in_request_line", "GET / HTTP/1.1\r\r\nHost: a\r\n\r\n", 400},
      {"nul_in_value", get + std::string("X-A: b\0c\r\n\r\n", 12), 400},
      {"nul_in_name", get + std::string("X\0A: b\r\n\r\n", 10), 400},
      {"del_in_value", get + "X-A: b\x7f\r\n\r\n", 400},
      {"escape_in_value", get + "X-A: \x1b[0m\r\n\r\n", 400},
      {"header_name_with_space", get + "X A: b\r\n\r\n", 400},
      {"header_name_with_slash", get + "X/A: b\r\n\r\n", 400},
      {"empty_header_name", get + ": b\r\n\r\n", 400},
      {"header_without_colon", get + "X-A b\r\n\r\n", 400},
      {"obs_fold_continuation", get + "X-A: b\r\n c\r\n\r\n", 400},
      {"obs_fold_first_line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400},
      {"too_many_leading_empty_lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
       400},
      // Host.
      {"missing_host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400},
      {"two_hosts", get + "Host: b\r\n\r\n", 400},
      {"two_hosts_same_value", get + "host: a\r\n\r\n", 400},
      {"host_with_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      {"host_with_slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400},
      {"host_with_userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400},
      {"host_empty", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
      {"host_bad_port", "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400},
      {"host_unclosed_ipv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
      {"host_space_before_colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
      // Request line.
      {"tab_in_request_line", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"double_space_request_line", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"double_space_before_version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"trailing_space_after_version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400},
      {"leading_space_request_line", " GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"missing_target", "GET HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"missing_version", "GET /\r\nHost: a\r\n\r\n", 400},
      {"method_with_paren", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"control_char_in_target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"obs_text_in_target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"lowercase_version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
      {"version_three_digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400},
      {"version_garbage", "GET / FTP/1.1\r\nHost: a\r\n\r\n", 400},
      {"http2_version", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
      {"http12_version", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
      {"http09_version", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505},
      // Limits.
      {"too_many_headers", get + many_headers(5) + "\r\n", 431, Limits{4096, 5}},
      {"too_many_headers_incomplete", get + many_headers(10), 431, Limits{4096, 5}},
      {"head_too_big", get + "X-Pad: " + std::string(300, 'p') + "\r\n\r\n", 431, Limits{256, 100}},
      {"head_too_big_incomplete", get + "X-Pad: " + std::string(300, 'p'), 431, Limits{256, 100}},
      {"head_one_byte_too_big", get + "X-Pad: " + std::string(257 - 36, 'p') + "\r\n\r\n", 431,
       Limits{256, 100}},
      {"default_limit_61k_incomplete", get + "Cookie: " + std::string(61 * 1024, 'c'), 431},
      {"default_limit_101_headers", get + many_headers(100) + "\r\n", 431},
  };
  return rows;
}

class BadRequest : public ::testing::TestWithParam<BadRow> {};

TEST_P(BadRequest, OneShot) {
  const Outcome o = parse_once(GetParam().input, GetParam().limits);
  ASSERT_EQ(o.state, ParseState::kError);
  EXPECT_EQ(o.status, GetParam().status);
}

TEST_P(BadRequest, ByteByByte) {
  const Outcome o = parse_incremental(GetParam().input, GetParam().limits);
  ASSERT_EQ(o.state, ParseState::kError);
  EXPECT_EQ(o.status, GetParam().status);
}

INSTANTIATE_TEST_SUITE_P(Table, BadRequest, ::testing::ValuesIn(bad_rows()),
                         [](const auto& info) { return std::string(info.param.name); });

// ------------------------------------------------------------ behaviour

TEST(RequestParser, IncompleteHeadErrorsBeforeBufferPassesLimit) {
  const Limits limits{128, 100};
  RequestParser p(limits);
  RequestHead h;
  std::string buf = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
  ParseState s = ParseState::kIncomplete;
  while (s == ParseState::kIncomplete) {
    buf.push_back('x');
    s = p.parse(buf, h);
    ASSERT_LE(buf.size(), limits.max_head_bytes);
  }
  EXPECT_EQ(s, ParseState::kError);
  EXPECT_EQ(p.error().status, 431);
}

TEST(RequestParser, HeadSizeLeavesBodyAndPipelinedRequest) {
  const std::string in =
      "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: "
      "a\r\n\r\n";
  RequestParser p;
  RequestHead h;
  ASSERT_EQ(p.parse(in, h), ParseState::kComplete);
  EXPECT_EQ(std::string_view(in).substr(p.head_size(), 3), "abc");
  const std::string_view rest = std::string_view(in).substr(p.head_size() + 3);
  const size_t cap = h.headers.capacity();
  const Header* data = h.headers.data();
  p.reset();
  ASSERT_EQ(p.parse(rest, h), ParseState::kComplete);
  EXPECT_EQ(h.target, "/b");
  EXPECT_EQ(h.body, BodyKind::kNone);
  EXPECT_EQ(h.content_length, 0u);
  EXPECT_EQ(p.head_size(), rest.size());
  // clear() kept the vector's storage: no allocation for the second request.
  EXPECT_EQ(h.headers.capacity(), cap);
  EXPECT_EQ(h.headers.data(), data);
}

TEST(RequestParser, DecisionIsStickyUntilReset) {
  RequestParser p;
  RequestHead h;
  const std::string bad = "GET / HTTP/1.1\nHost: a\r\n\r\n";
  ASSERT_EQ(p.parse(bad, h), ParseState::kError);
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", h), ParseState::kError);
  p.reset();
  EXPECT_EQ(p.parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", h), ParseState::kComplete);
}

TEST(RequestParser, HeadersKeepOrderAndCase) {
  const std::string in = "GET / HTTP/1.1\r\nHost: a\r\nX-B: 2\r\nx-a: 1\r\nX-B: 3\r\n\r\n";
  RequestParser p;
  RequestHead h;
  ASSERT_EQ(p.parse(in, h), ParseState::kComplete);
  ASSERT_EQ(h.headers.size(), 4u);
  EXPECT_EQ(h.headers[1].name, "X-B");
  EXPECT_EQ(h.headers[1].value, "2");
  EXPECT_EQ(h.headers[2].name, "x-a");
  EXPECT_EQ(h.headers[3].value, "3");
  EXPECT_EQ(find_header(h.headers, "x-b").value_or(""), "2");
}

}  // namespace
}  // namespace gantry::http
