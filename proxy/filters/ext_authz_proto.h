// Envoy's ext_authz gRPC messages (envoy.service.auth.v3), by hand: the
// CheckRequest extAuth sends and the CheckResponse it decides on, without a
// protobuf runtime. Only the fields Gantry uses are written or read; unknown
// fields of a CheckResponse are skipped, as protobuf requires.
//
//   CheckRequest { AttributeContext attributes = 1; }
//   AttributeContext { Peer source = 1; Peer destination = 2; Request request = 4; }
//   Peer { config.core.v3.Address address = 1; }  Address { SocketAddress socket_address = 1; }
//   SocketAddress { string address = 2; uint32 port_value = 3; }
//   Request { google.protobuf.Timestamp time = 1; HttpRequest http = 2; }
//   HttpRequest { string id = 1; string method = 2; map<string,string> headers = 3;
//                 string path = 4; string host = 5; string scheme = 6; string query = 7;
//                 int64 size = 9; string protocol = 10; string body = 11; bytes raw_body = 12; }
//   CheckResponse { google.rpc.Status status = 1; DeniedHttpResponse denied_response = 2;
//                   OkHttpResponse ok_response = 3; }
//   Status { int32 code = 1; string message = 2; }
//   DeniedHttpResponse { HttpStatus status = 1; repeated HeaderValueOption headers = 2; string body = 3; }
//   HttpStatus { StatusCode code = 1; }
//   OkHttpResponse { repeated HeaderValueOption headers = 2; repeated string headers_to_remove = 5; }
//   HeaderValueOption { HeaderValue header = 1; BoolValue append = 2; HeaderAppendAction append_action = 3; }
//   HeaderValue { string key = 1; string value = 2; bytes raw_value = 3; }
//
// Invariants: the decoder never reads past its input, bounds every length
// by what is left, and fails (false + why) on malformed wire data; it is a
// libFuzzer target (tests/fuzz/fuzz_ext_authz_response.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gantry::filters::ext_authz {

// A minimal protobuf writer (proto3 wire format).
class ProtoWriter {
 public:
  void varint(uint32_t field, uint64_t v);           // wire type 0 (0 still written)
  void bytes(uint32_t field, std::string_view v);    // wire type 2 (empty still written)
  // A nested message: begin() returns a mark, end(mark) writes its length.
  size_t begin(uint32_t field);
  void end(size_t mark);
  const std::string& data() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void raw_varint(uint64_t v);
  std::string out_;
  std::vector<size_t> open_;
};

// What the CheckRequest says of the request (proto3 defaults omitted).
struct CheckInput {
  std::string_view source_ip;
  uint32_t source_port = 0;
  std::string_view destination_ip;
  uint32_t destination_port = 0;
  int64_t time_seconds = 0;
  int32_t time_nanos = 0;
  std::string_view id, method, path, host, scheme, query, protocol;
  // Lower-case names; a repeated field's values joined with ',' (Envoy's map).
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t size = -1;          // the body's length when known, else -1
  bool with_body = false;     // the body (possibly empty) is sent
  std::string_view body;      // as `body` when valid UTF-8, else as `raw_body`
};

std::string encode_check_request(const CheckInput& in);

// True when `s` is valid UTF-8 (a proto3 string must be).
bool valid_utf8(std::string_view s);

struct HeaderOp {
  enum class Action : uint8_t { kAppend, kAddIfAbsent, kOverwrite, kOverwriteIfExists };
  std::string key, value;
  Action action = Action::kOverwrite;
};

struct CheckResult {
  int32_t code = 0;  // google.rpc.Code: 0 (OK) allows
  std::string message;
  int http_status = 0;  // denied_response.status.code (0: unset)
  std::vector<HeaderOp> headers;  // ok_response.headers or denied_response.headers
  std::vector<std::string> headers_to_remove;
  std::string body;  // denied_response.body
};

// Decodes a serialized CheckResponse into `out`. False, with `why`, when the
// wire data is malformed.
bool decode_check_response(std::string_view in, CheckResult& out, std::string& why);

// The gRPC length-prefixed message framing (one uncompressed message).
std::string grpc_frame(std::string_view message);
// The one message of a unary answer's DATA. False, with `why`, when it is not
// exactly one uncompressed message.
bool grpc_unframe(std::string_view data, std::string_view& message, std::string& why);

}  // namespace gantry::filters::ext_authz
