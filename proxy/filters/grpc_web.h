// gRPC-Web framing (filters.grpcWeb; docs/policies.md, "gRPC-Web"): what the
// gateway changes to turn a gRPC-Web request into a gRPC one and the gRPC
// answer back into gRPC-Web (the protocol: grpc/grpc, doc/PROTOCOL-WEB.md).
//
//   request   content-type application/grpc-web[-text][+proto|+json|...]
//             → application/grpc[+...]; a -text body is base64 (possibly
//             several padded segments one after the other) and is decoded
//   response  content-type back to the request's gRPC-Web type; the body's
//             gRPC messages pass as they are; the trailers become one last
//             frame (flag 0x80, 4-byte big-endian length, "name: value\r\n"
//             lines, names in lower case); a -text answer is base64-encoded
//             as one stream (padding only at its end)
//
// Invariants:
// - Pure: no I/O, no allocation but the output strings given in.
// - The streaming coders keep at most 3 bytes between calls; feeding a body
//   in any split gives the same bytes as feeding it whole (fuzz_grpc_web).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http/message.h"

namespace gantry::exchange {
struct LocalReply;
}

namespace gantry::filters::grpc_web {

// A gRPC-Web content type as the client sent it.
struct WebType {
  bool text = false;        // application/grpc-web-text: base64 bodies both ways
  std::string_view suffix;  // "+proto", "+json", ... (a view into the parsed value); empty: none
};

// application/grpc-web, application/grpc-web+proto, application/grpc-web-text,
// application/grpc-web-text+proto (parameters after ';' ignored, case
// insensitive); nullopt for anything else.
std::optional<WebType> parse_content_type(std::string_view value);

// The content type the gRPC backend gets ("application/grpc" + suffix) and the
// one the client gets back ("application/grpc-web[-text]" + suffix).
std::string grpc_content_type(const WebType& t);
std::string web_content_type(const WebType& t);

// The trailer frame carrying `trailers` (flag 0x80, big-endian length,
// "name: value\r\n" per field, names lower-cased), appended to `out`.
void append_trailer_frame(std::span<const http::Header> trailers, std::string& out);

// A gateway answer (LocalReply) to a gRPC-Web request, rewritten in place as
// gRPC-Web's trailers-only answer: HTTP 200, no body, the reply's gRPC
// status in the head (grpc-status = grpc_status_for(status), grpc-message
// percent-encoded), content-type the client's gRPC-Web type; its other
// fields and x-gateway-reason stay.
void to_trailers_only(exchange::LocalReply& reply, const WebType& t);

// Streaming base64 decoder (RFC 4648 alphabet, '=' padding) for -text
// request bodies. Groups of 4 characters are decoded as they complete, so
// segments encoded one by one (each padded) may follow each other.
class Base64Decoder {
 public:
  // Decodes `in`, appending the bytes to `out`. False: not base64 (a
  // character outside the alphabet, or padding inside a group); the decoder
  // stays failed.
  bool feed(std::string_view in, std::string& out);
  // True when the input so far ended on a group boundary (a complete body).
  bool complete() const { return !failed_ && held_ == 0; }
  bool failed() const { return failed_; }
  void reset() {
    held_ = 0;
    failed_ = false;
  }

 private:
  char group_[4] = {};
  uint8_t held_ = 0;
  bool failed_ = false;
};

// Streaming base64 encoder for -text answers: whole 3-byte groups as they
// complete; finish() writes the rest with padding.
class Base64Encoder {
 public:
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  void reset() { held_ = 0; }

 private:
  unsigned char group_[3] = {};
  uint8_t held_ = 0;
};

// ---- reading gRPC-Web bodies (tests, the fuzz target, clients)

struct Frame {
  bool trailer = false;      // flag 0x80
  bool compressed = false;   // flag 0x01
  std::string_view payload;  // a view into the parsed body
};

// Splits a whole (binary) gRPC-Web body into frames. Nullopt: a frame runs
// past the end, or a flag has bits other than 0x80 and 0x01.
std::optional<std::vector<Frame>> parse_frames(std::string_view body);

// The fields of a trailer frame's payload ("name: value\r\n" lines; a last
// line without CRLF is taken too). Nullopt: a line without ':' or an empty name.
std::optional<std::vector<std::pair<std::string, std::string>>> parse_trailers(std::string_view payload);

}  // namespace gantry::filters::grpc_web
