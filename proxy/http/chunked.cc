// ChunkedDecoder: a byte-level state machine over the chunked coding (RFC 9112
// 7.1) that validates framing without copying; chunk data is skipped in bulk.
// Strict: CRLF everywhere (bare LF or CR is an error), whitespace only before a
// chunk extension, chunk sizes capped at 2^60, bounded size lines and trailers.
#include <algorithm>

#include "proxy/http/chars.h"
#include "proxy/http/parser.h"

namespace gantry::http {

Error ChunkedDecoder::fail(const char* why) {
  state_ = State::kError;
  error_ = why;
  return Error{why};
}

Result<ChunkedDecoder::Step> ChunkedDecoder::feed(std::string_view in, std::string* payload, std::string* trailers) {
  if (state_ == State::kError) return Error{error_};
  if (state_ == State::kDone) return Step{0, true};
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    if (state_ == State::kData) {
      const uint64_t take = std::min<uint64_t>(chunk_size_, n - i);
      if (payload) payload->append(in.data() + i, static_cast<size_t>(take));
      i += static_cast<size_t>(take);
      chunk_size_ -= take;
      data_bytes_ += take;
      if (chunk_size_ == 0) state_ = State::kDataCr;
      continue;
    }
    const char c = in[i++];
    switch (state_) {
      case State::kSizeStart:
      case State::kSize: {
        if (++line_bytes_ > kMaxSizeLineBytes) return fail("chunk size line too long");
        const int d = chars::hex_value(c);
        if (d >= 0) {
          if (chunk_size_ > (kMaxChunkSize >> 4)) return fail("chunk size too large");
          chunk_size_ = chunk_size_ * 16 + static_cast<uint64_t>(d);
          if (chunk_size_ > kMaxChunkSize) return fail("chunk size too large");
          state_ = State::kSize;
        } else if (state_ == State::kSizeStart) {
          return fail("bad chunk size");
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == ';') {
          state_ = State::kExt;
        } else if (c == ' ' || c == '\t') {
          state_ = State::kSizeWs;
        } else {
          return fail("bad chunk size");
        }
        break;
      }
      case State::kSizeWs:
        if (++line_bytes_ > kMaxSizeLineBytes) return fail("chunk size line too long");
        if (c == ';') {
          state_ = State::kExt;
        } else if (c != ' ' && c != '\t') {
          return fail("bad chunk size");
        }
        break;
      case State::kExt:
        if (++line_bytes_ > kMaxSizeLineBytes) return fail("chunk extension too long");
        if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (!chars::is_field_char(c)) {
          return fail("bad chunk extension");
        }
        break;
      case State::kSizeLf:
        if (c != '\n') return fail("chunk size line not ended by CRLF");
        line_bytes_ = 0;
        state_ = chunk_size_ == 0 ? State::kTrailerStart : State::kData;
        break;
      case State::kDataCr:
        if (c != '\r') return fail("chunk data not followed by CRLF");
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return fail("chunk data not followed by CRLF");
        state_ = State::kSizeStart;
        break;
      case State::kTrailerStart:
      case State::kTrailerName:
      case State::kTrailerValue:
      case State::kTrailerLf:
      case State::kFinalLf:
        if (++trailer_bytes_ > kMaxTrailerBytes) return fail("trailer section too large");
        // The trailer lines as sent (the final empty line left out), for a
        // client that takes them as fields (HTTP/2).
        if (trailers != nullptr && state_ != State::kFinalLf && !(state_ == State::kTrailerStart && c == '\r'))
          trailers->push_back(c);
        if (state_ == State::kTrailerStart) {
          if (c == '\r') {
            state_ = State::kFinalLf;
          } else if (chars::is_token(c)) {
            state_ = State::kTrailerName;
          } else {
            return fail("bad trailer field");
          }
        } else if (state_ == State::kTrailerName) {
          if (c == ':') {
            state_ = State::kTrailerValue;
          } else if (!chars::is_token(c)) {
            return fail("bad trailer field name");
          }
        } else if (state_ == State::kTrailerValue) {
          if (c == '\r') {
            state_ = State::kTrailerLf;
          } else if (!chars::is_field_char(c)) {
            return fail("bad trailer field value");
          }
        } else if (state_ == State::kTrailerLf) {
          if (c != '\n') return fail("trailer field not ended by CRLF");
          state_ = State::kTrailerStart;
        } else {  // kFinalLf
          if (c != '\n') return fail("chunked body not ended by CRLF");
          state_ = State::kDone;
          return Step{i, true};
        }
        break;
      case State::kData:
      case State::kDone:
      case State::kError:
        break;  // handled above
    }
  }
  return Step{n, false};
}

void parse_trailer_fields(std::string_view section, std::vector<Header>& out) {
  while (!section.empty()) {
    const size_t eol = section.find("\r\n");
    std::string_view line = section.substr(0, eol);
    section.remove_prefix(eol == std::string_view::npos ? section.size() : eol + 2);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;  // the decoder let none through
    out.push_back(Header{line.substr(0, colon), chars::trim_ows(line.substr(colon + 1))});
  }
}

}  // namespace gantry::http
