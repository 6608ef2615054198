// Strict, incremental, zero-copy HTTP/1.1 head parsers (RFC 9112 / 9110) and a
// streaming validator for chunked bodies.
//
// Invariants:
// - A parser is fed the whole buffer received so far (the head starts at offset
//   0). It remembers how far it scanned for the end of the head, so re-feeding
//   costs O(new bytes); the head is parsed once, when its final CRLFCRLF arrives.
// - Every string_view in a parsed head points into the buffer given to parse().
// - Limits are enforced on incomplete input too: a head that cannot end within
//   max_head_bytes, or that already has more than max_headers lines, fails as
//   soon as that is known, before the caller's buffer grows past the limit.
// - No allocation beyond the head's headers vector (reused through clear()).
// - Whatever is not known to be safe is rejected: request errors carry the status
//   to answer (400, 431, 501, 505), response errors are always 502.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/base/result.h"
#include "proxy/http/message.h"

namespace gantry::http {

// status to answer: 400, 431, 501, 505 (request) / 502 (response); reason is a static string.
struct ParseError {
  int status;
  std::string_view reason;
};
enum class ParseState : uint8_t { kIncomplete, kComplete, kError };

namespace detail {
// Finds the end of a head (CRLFCRLF) incrementally, rejecting bare LF on the way
// and enforcing the size and line-count limits on incomplete input.
class HeadScanner {
 public:
  enum class Outcome : uint8_t {
    kIncomplete,
    kComplete,
    kBareLf,
    kTooBig,
    kTooManyHeaders,
    kTooManyEmptyLines,
  };
  static constexpr size_t kMaxLeadingEmptyLines = 4;

  Outcome scan(std::string_view buf, const Limits& limits, bool skip_leading_empty_lines);
  size_t head_start() const { return head_start_; }  // after skipped leading CRLFs
  size_t head_end() const { return head_end_; }      // one past the final LF
  void reset() { *this = HeadScanner{}; }

 private:
  size_t pos_ = 0;         // next byte to examine
  size_t line_start_ = 0;  // start of the current (incomplete) line
  size_t head_start_ = 0;
  size_t head_end_ = 0;
  size_t lines_ = 0;    // complete non-empty lines (start line + fields)
  size_t leading_ = 0;  // leading empty lines skipped
};
}  // namespace detail

// Incremental request head parser. Feed it the whole buffer received so far.
class RequestParser {
 public:
  explicit RequestParser(Limits limits = {});
  ParseState parse(std::string_view buf, RequestHead& out);
  // Bytes of the head incl. skipped leading empty lines and the final CRLFCRLF: the
  // body (or the next request) starts at buf[head_size()]. Valid after kComplete.
  size_t head_size() const;
  const ParseError& error() const;  // valid after kError
  void reset();                     // for the next request on the connection

 private:
  ParseState fail(int status, std::string_view reason);
  ParseState parse_head(std::string_view head, RequestHead& out);

  Limits limits_;
  detail::HeadScanner scanner_;
  ParseState state_ = ParseState::kIncomplete;
  ParseError error_{0, {}};
};

// Incremental response head parser; every error answers 502.
class ResponseParser {
 public:
  explicit ResponseParser(Limits limits = {});
  ParseState parse(std::string_view buf, ResponseHead& out, bool request_was_head);
  size_t head_size() const;
  const ParseError& error() const;
  void reset();

 private:
  ParseState fail(std::string_view reason);
  ParseState parse_head(std::string_view head, ResponseHead& out, bool request_was_head);

  Limits limits_;
  detail::HeadScanner scanner_;
  ParseState state_ = ParseState::kIncomplete;
  ParseError error_{0, {}};
};

// Validates and measures a chunked body as it streams, without copying it: the
// proxy forwards the raw bytes verbatim after they pass through here. Works at
// any split point (byte by byte included).
class ChunkedDecoder {
 public:
  // consumed: bytes of `in` that belong to the body (framing included); done:
  // last-chunk + trailers + final CRLF seen (bytes after it are not consumed).
  struct Step {
    size_t consumed;
    bool done;
  };
  static constexpr uint64_t kMaxChunkSize = uint64_t{1} << 60;
  static constexpr size_t kMaxSizeLineBytes = 4096;  // chunk-size + extensions
  static constexpr size_t kMaxTrailerBytes = 8192;   // trailer section incl. final CRLF

  // Error for bad chunk size/extension/CRLF, chunk-size overflow, trailers over the limit.
  // After an error every further feed() fails too, until reset().
  // With `payload`, the chunk data of the consumed bytes is appended to it
  // (de-chunking, for clients that cannot take chunked framing); with
  // `trailers`, the trailer section's lines ("name: value\r\n" each, the
  // final empty line left out), bounded by kMaxTrailerBytes.
  Result<Step> feed(std::string_view in, std::string* payload = nullptr, std::string* trailers = nullptr);
  uint64_t data_bytes() const { return data_bytes_; }  // payload bytes seen so far
  bool done() const { return state_ == State::kDone; }
  void reset() { *this = ChunkedDecoder{}; }

 private:
  enum class State : uint8_t {
    kSizeStart,
    kSize,
    kSizeWs,
    kExt,
    kSizeLf,
    kData,
    kDataCr,
    kDataLf,
    kTrailerStart,
    kTrailerName,
    kTrailerValue,
    kTrailerLf,
    kFinalLf,
    kDone,
    kError,
  };
  Error fail(const char* why);

  State state_ = State::kSizeStart;
  uint64_t chunk_size_ = 0;  // size being read, then bytes left in the current chunk
  size_t line_bytes_ = 0;
  size_t trailer_bytes_ = 0;
  uint64_t data_bytes_ = 0;
  const char* error_ = nullptr;
};

// The fields of a trailer section ChunkedDecoder collected (validated
// there), appended to `out` as views into `block`; values without their
// surrounding whitespace.
void split_trailer_fields(std::string_view block, std::vector<Header>& out);

}  // namespace gantry::http
