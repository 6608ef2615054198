// Request and response head parsers. The scanner finds the end of the head
// incrementally; the head is then parsed in one pass over its lines plus one
// pass over the resulting header list to derive framing. See parser.h.
#include "proxy/http/parser.h"

#include <cstring>

#include "proxy/http/chars.h"
#include "proxy/http/path.h"

namespace gantry::http {

namespace detail {

HeadScanner::Outcome HeadScanner::scan(std::string_view buf, const Limits& limits,
                                       bool skip_leading_empty_lines) {
  if (buf.size() < pos_) reset();  // the caller restarted the buffer: rescan from scratch
  const size_t limit = buf.size() < limits.max_head_bytes ? buf.size() : limits.max_head_bytes;
  const char* data = buf.data();
  while (pos_ < limit) {
    const void* hit = std::memchr(data + pos_, '\n', limit - pos_);
    if (hit == nullptr) {
      pos_ = limit;
      break;
    }
    const size_t lf = static_cast<size_t>(static_cast<const char*>(hit) - data);
    pos_ = lf + 1;
    if (lf == line_start_ || data[lf - 1] != '\r') return Outcome::kBareLf;
    const bool empty = lf - 1 == line_start_;
    line_start_ = lf + 1;
    if (!empty) {
      ++lines_;
      if (lines_ > limits.max_headers + 1) return Outcome::kTooManyHeaders;
      continue;
    }
    if (lines_ > 0) {
      head_end_ = lf + 1;
      return Outcome::kComplete;
    }
    // An empty line before the start line.
    if (!skip_leading_empty_lines || ++leading_ > kMaxLeadingEmptyLines) {
      return Outcome::kTooManyEmptyLines;
    }
    head_start_ = lf + 1;
  }
  if (buf.size() >= limits.max_head_bytes) return Outcome::kTooBig;
  return Outcome::kIncomplete;
}

}  // namespace detail

namespace {

using chars::is_field_char;
using chars::is_token;

// Splits off the next line of a complete head (lines end in CRLF: the scanner
// guaranteed every LF has a CR before it). Returns the line without CRLF.
std::string_view next_line(std::string_view head, size_t& pos) {
  const size_t lf = head.find('\n', pos);
  std::string_view line = head.substr(pos, lf - 1 - pos);
  pos = lf + 1;
  return line;
}

// "HTTP/D.D": 11 / 10 for 1.1 / 1.0, 0 for another HTTP-version, -1 for garbage.
int parse_version(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
      v[7] < '0' || v[7] > '9') {
    return -1;
  }
  if (v[5] == '1' && v[7] == '1') return 11;
  if (v[5] == '1' && v[7] == '0') return 10;
  return 0;
}

enum class FieldsResult : uint8_t { kOk, kObsFold, kBadName, kBadValue, kTooMany };

// Parses field lines from `pos` up to the final empty line into `out`.
FieldsResult parse_fields(std::string_view head, size_t pos, size_t max_headers,
                          std::vector<Header>& out) {
  while (true) {
    std::string_view line = next_line(head, pos);
    if (line.empty()) return FieldsResult::kOk;
    if (line[0] == ' ' || line[0] == '\t') return FieldsResult::kObsFold;
    size_t k = 0;
    while (k < line.size() && is_token(line[k])) ++k;
    if (k == 0 || k == line.size() || line[k] != ':') return FieldsResult::kBadName;
    std::string_view value = line.substr(k + 1);
    if (!chars::is_field_value(value)) return FieldsResult::kBadValue;
    if (out.size() >= max_headers) return FieldsResult::kTooMany;
    out.push_back(Header{line.substr(0, k), chars::trim_ows(value)});
  }
}

// Content-Length: 1*DIGIT, or a list of identical such values; folded into
// (seen, value) across repeated fields. False when invalid or conflicting.
bool merge_content_length(std::string_view value, bool& seen, uint64_t& cl) {
  size_t i = 0;
  while (i <= value.size()) {
    size_t comma = value.find(',', i);
    if (comma == std::string_view::npos) comma = value.size();
    const std::string_view e = chars::trim_ows(value.substr(i, comma - i));
    i = comma + 1;
    if (e.empty()) return false;
    uint64_t n = 0;
    for (char c : e) {
      if (c < '0' || c > '9') return false;
      const auto d = static_cast<uint64_t>(c - '0');
      if (n > (UINT64_MAX - d) / 10) return false;
      n = n * 10 + d;
    }
    if (seen && n != cl) return false;
    seen = true;
    cl = n;
  }
  return true;
}

// Transfer-Encoding codings accumulated over every TE field line, in order.
struct TransferCodings {
  bool seen = false;
  bool bad = false;  // syntax error or parameters on chunked
  int chunked = 0;
  bool last_chunked = false;
  bool other = false;

  void add(std::string_view value) {
    seen = true;
    for_each_list_element(value, [this](std::string_view e) {
      size_t k = 0;
      while (k < e.size() && is_token(e[k])) ++k;
      std::string_view name = e.substr(0, k);
      std::string_view rest = chars::trim_ows(e.substr(k));
      if (name.empty() || (!rest.empty() && rest[0] != ';')) {
        bad = true;
        return;
      }
      if (iequals(name, "chunked")) {
        if (!rest.empty()) bad = true;
        ++chunked;
        last_chunked = true;
      } else {
        other = true;
        last_chunked = false;
      }
    });
  }
  bool chunked_last_once() const { return !bad && chunked == 1 && last_chunked; }
};

struct ConnectionTokens {
  bool close = false;
  bool keep_alive = false;
  bool upgrade = false;

  void add(std::string_view value) {
    for_each_list_element(value, [this](std::string_view e) {
      if (iequals(e, "close"))
        close = true;
      else if (iequals(e, "keep-alive"))
        keep_alive = true;
      else if (iequals(e, "upgrade"))
        upgrade = true;
    });
  }
  // RFC 9112 9.3.
  bool persistent(Version v) const {
    if (close) return false;
    return v == Version::kHttp11 || keep_alive;
  }
};

bool has_websocket(std::string_view upgrade_value) {
  bool found = false;
  for_each_list_element(upgrade_value, [&found](std::string_view e) {
    const size_t slash = e.find('/');
    if (iequals(chars::trim_ows(e.substr(0, slash)), "websocket")) found = true;
  });
  return found;
}

}  // namespace

// ---------------------------------------------------------------- requests

RequestParser::RequestParser(Limits limits) : limits_(limits) {}

size_t RequestParser::head_size() const { return scanner_.head_end(); }
const ParseError& RequestParser::error() const { return error_; }

void RequestParser::reset() {
  scanner_.reset();
  state_ = ParseState::kIncomplete;
  error_ = ParseError{0, {}};
}

ParseState RequestParser::fail(int status, std::string_view reason) {
  error_ = ParseError{status, reason};
  state_ = ParseState::kError;
  return state_;
}

ParseState RequestParser::parse(std::string_view buf, RequestHead& out) {
  if (state_ != ParseState::kIncomplete) return state_;
  using O = detail::HeadScanner::Outcome;
  switch (scanner_.scan(buf, limits_, /*skip_leading_empty_lines=*/true)) {
    case O::kIncomplete:
      return ParseState::kIncomplete;
    case O::kBareLf:
      return fail(400, "bare LF in request head");
    case O::kTooBig:
      return fail(431, "request head too large");
    case O::kTooManyHeaders:
      return fail(431, "too many request header fields");
    case O::kTooManyEmptyLines:
      return fail(400, "too many empty lines before the request line");
    case O::kComplete:
      break;
  }
  out.clear();
  state_ = parse_head(
      buf.substr(scanner_.head_start(), scanner_.head_end() - scanner_.head_start()), out);
  return state_;
}

ParseState RequestParser::parse_head(std::string_view head, RequestHead& out) {
  size_t pos = 0;
  const std::string_view line = next_line(head, pos);

  // request-line = method SP request-target SP HTTP-version
  size_t sp1 = 0;
  while (sp1 < line.size() && is_token(line[sp1])) ++sp1;
  if (sp1 == 0 || sp1 == line.size() || line[sp1] != ' ') return fail(400, "bad request method");
  const size_t t0 = sp1 + 1;
  size_t t1 = t0;
  while (t1 < line.size() && line[t1] > 0x20 && line[t1] < 0x7f) ++t1;
  if (t1 == t0) return fail(400, "bad request target");
  if (t1 == line.size() || line[t1] != ' ') return fail(400, "bad request line");
  const int version = parse_version(line.substr(t1 + 1));
  if (version < 0) return fail(400, "bad HTTP version");
  if (version == 0) return fail(505, "HTTP version not supported");
  out.method = line.substr(0, sp1);
  out.target = line.substr(t0, t1 - t0);
  out.version = version == 11 ? Version::kHttp11 : Version::kHttp10;

  switch (parse_fields(head, pos, limits_.max_headers, out.headers)) {
    case FieldsResult::kOk:
      break;
    case FieldsResult::kObsFold:
      return fail(400, "obsolete line folding in request header");
    case FieldsResult::kBadName:
      return fail(400, "bad request header name");
    case FieldsResult::kBadValue:
      return fail(400, "bad character in request header value");
    case FieldsResult::kTooMany:
      return fail(431, "too many request header fields");
  }

  int hosts = 0;
  bool cl_seen = false;
  TransferCodings te;
  ConnectionTokens conn;
  bool expect_continue = false;
  bool upgrade_ws = false;
  for (const Header& h : out.headers) {
    switch (h.name.size()) {
      case 4:
        if (iequals(h.name, "host")) {
          ++hosts;
          out.host = h.value;
        }
        break;
      case 6:
        if (iequals(h.name, "expect") && iequals(h.value, "100-continue")) expect_continue = true;
        break;
      case 7:
        if (iequals(h.name, "upgrade") && has_websocket(h.value)) upgrade_ws = true;
        break;
      case 10:
        if (iequals(h.name, "connection")) conn.add(h.value);
        break;
      case 14:
        if (iequals(h.name, "content-length") &&
            !merge_content_length(h.value, cl_seen, out.content_length)) {
          return fail(400, "invalid or conflicting Content-Length");
        }
        break;
      case 17:
        if (iequals(h.name, "transfer-encoding")) te.add(h.value);
        break;
      default:
        break;
    }
  }

  const bool http11 = out.version == Version::kHttp11;
  if (hosts > 1) return fail(400, "more than one Host header");
  if (hosts == 0 && http11) return fail(400, "missing Host header");
  if (hosts == 1 && !is_valid_host(out.host)) return fail(400, "invalid Host header");

  if (te.seen) {
    if (!http11) return fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (cl_seen) return fail(400, "Content-Length with Transfer-Encoding");
    if (!te.chunked_last_once()) return fail(400, "Transfer-Encoding must end in chunked, once");
    if (te.other) return fail(501, "unsupported transfer coding");
    out.body = BodyKind::kChunked;
    out.content_length = 0;
  } else if (cl_seen) {
    out.body = BodyKind::kContentLength;
  }

  out.keep_alive = conn.persistent(out.version);
  out.expect_continue = http11 && expect_continue;
  out.upgrade_websocket = http11 && conn.upgrade && upgrade_ws && out.method == "GET";
  return ParseState::kComplete;
}

// ---------------------------------------------------------------- responses

ResponseParser::ResponseParser(Limits limits) : limits_(limits) {}

size_t ResponseParser::head_size() const { return scanner_.head_end(); }
const ParseError& ResponseParser::error() const { return error_; }

void ResponseParser::reset() {
  scanner_.reset();
  state_ = ParseState::kIncomplete;
  error_ = ParseError{0, {}};
}

ParseState ResponseParser::fail(std::string_view reason) {
  error_ = ParseError{502, reason};
  state_ = ParseState::kError;
  return state_;
}

ParseState ResponseParser::parse(std::string_view buf, ResponseHead& out, bool request_was_head) {
  if (state_ != ParseState::kIncomplete) return state_;
  using O = detail::HeadScanner::Outcome;
  switch (scanner_.scan(buf, limits_, /*skip_leading_empty_lines=*/false)) {
    case O::kIncomplete:
      return ParseState::kIncomplete;
    case O::kBareLf:
      return fail("bare LF in response head");
    case O::kTooBig:
      return fail("response head too large");
    case O::kTooManyHeaders:
      return fail("too many response header fields");
    case O::kTooManyEmptyLines:
      return fail("empty line before the status line");
    case O::kComplete:
      break;
  }
  out.clear();
  state_ = parse_head(buf.substr(0, scanner_.head_end()), out, request_was_head);
  return state_;
}

ParseState ResponseParser::parse_head(std::string_view head, ResponseHead& out,
                                      bool request_was_head) {
  size_t pos = 0;
  const std::string_view line = next_line(head, pos);

  // status-line = HTTP-version SP status-code SP [ reason-phrase ]; the SP before an
  // empty reason is tolerated when missing.
  if (line.size() < 12 || line[8] != ' ') return fail("bad status line");
  const int version = parse_version(line.substr(0, 8));
  if (version <= 0) return fail("unsupported HTTP version in response");
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return fail("bad status code");
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) return fail("bad status code");
  std::string_view reason;
  if (line.size() > 12) {
    if (line[12] != ' ') return fail("bad status line");
    reason = line.substr(13);
    for (char c : reason) {
      if (!is_field_char(c)) return fail("bad character in reason phrase");
    }
  }
  out.status = status;
  out.reason = reason;
  out.version = version == 11 ? Version::kHttp11 : Version::kHttp10;

  switch (parse_fields(head, pos, limits_.max_headers, out.headers)) {
    case FieldsResult::kOk:
      break;
    case FieldsResult::kObsFold:
      return fail("obsolete line folding in response header");
    case FieldsResult::kBadName:
      return fail("bad response header name");
    case FieldsResult::kBadValue:
      return fail("bad character in response header value");
    case FieldsResult::kTooMany:
      return fail("too many response header fields");
  }

  bool cl_seen = false;
  TransferCodings te;
  ConnectionTokens conn;
  for (const Header& h : out.headers) {
    if (h.name.size() == 14 && iequals(h.name, "content-length")) {
      if (!merge_content_length(h.value, cl_seen, out.content_length)) {
        return fail("invalid or conflicting Content-Length in response");
      }
    } else if (h.name.size() == 17 && iequals(h.name, "transfer-encoding")) {
      te.add(h.value);
    } else if (h.name.size() == 10 && iequals(h.name, "connection")) {
      conn.add(h.value);
    }
  }
  const bool http11 = out.version == Version::kHttp11;
  if (te.seen) {
    if (!http11) return fail("Transfer-Encoding in an HTTP/1.0 response");
    if (cl_seen) return fail("Content-Length with Transfer-Encoding in response");
    if (te.bad || te.chunked > 1) return fail("invalid Transfer-Encoding in response");
  }
  out.keep_alive = conn.persistent(out.version);

  // RFC 9112 6.3.
  if (request_was_head || status < 200 || status == 204 || status == 304) {
    out.body = BodyKind::kNone;
  } else if (te.seen) {
    if (te.chunked_last_once()) {
      out.body = BodyKind::kChunked;
    } else {
      out.body = BodyKind::kUntilClose;
      out.keep_alive = false;
    }
  } else if (cl_seen) {
    out.body = BodyKind::kContentLength;
  } else {
    out.body = BodyKind::kUntilClose;
    out.keep_alive = false;
  }
  if (out.body != BodyKind::kContentLength) out.content_length = 0;
  return ParseState::kComplete;
}

}  // namespace gantry::http
