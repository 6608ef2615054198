// extAuth's hand-written Envoy ext_authz messages (filters/ext_authz_proto.h):
// the protobuf writer's bytes, a CheckRequest's fields at their numbers, the
// CheckResponse decoder on answers of each kind, malformed wire data refused,
// and the gRPC framing. The bytes of the expected messages are written out
// by hand from the .proto field numbers, so a wrong number fails here (the
// integration test checks the same against go-control-plane's types).
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "proxy/filters/ext_authz_proto.h"

namespace gantry::filters::ext_authz {
namespace {

using namespace std::string_literals;

std::string tag(uint32_t field, uint32_t wire) { return std::string(1, static_cast<char>(field << 3 | wire)); }
std::string len_field(uint32_t field, const std::string& v) {
  return tag(field, 2) + static_cast<char>(v.size()) + v;  // lengths below 128 in these tables
}
std::string int_field(uint32_t field, uint8_t v) { return tag(field, 0) + static_cast<char>(v); }

TEST(ProtoWriter, Table) {
  struct Case {
    const char* name;
    std::string (*write)();
    std::string want;
  } cases[] = {
      {"varint 1", [] { ProtoWriter w; w.varint(1, 1); return w.take(); }, "\x08\x01"s},
      {"varint 300", [] { ProtoWriter w; w.varint(2, 300); return w.take(); }, "\x10\xac\x02"s},
      {"varint 0 written", [] { ProtoWriter w; w.varint(3, 0); return w.take(); }, "\x18\x00"s},
      {"bytes", [] { ProtoWriter w; w.bytes(1, "hi"); return w.take(); }, "\x0a\x02hi"s},
      {"high field number", [] { ProtoWriter w; w.varint(16, 1); return w.take(); }, "\x80\x01\x01"s},
      {"int64 -1 is ten bytes",
       [] { ProtoWriter w; w.varint(9, static_cast<uint64_t>(int64_t{-1})); return w.take(); },
       "\x48\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"s},
      {"nested", [] {
         ProtoWriter w;
         size_t m = w.begin(4);
         w.bytes(1, "a");
         w.end(m);
         return w.take();
       }, "\x22\x03\x0a\x01" "a"s},
      {"nested empty", [] { ProtoWriter w; w.end(w.begin(1)); return w.take(); }, "\x0a\x00"s},
      {"nested over 127 bytes", [] {
         ProtoWriter w;
         size_t m = w.begin(1);
         w.bytes(2, std::string(200, 'x'));
         w.end(m);
         return w.take();
       }, "\x0a\xcb\x01\x12\xc8\x01"s + std::string(200, 'x')},
  };
  for (const auto& c : cases) EXPECT_EQ(c.write(), c.want) << c.name;
}

TEST(CheckRequest, FieldsAtTheirNumbers) {
  CheckInput in;
  in.source_ip = "192.0.2.5";
  in.destination_port = 8080;
  in.id = "r1";
  in.method = "POST";
  in.headers = {{":path", "/a?b=1"}, {"x-k", "v1,v2"}};
  in.path = "/a?b=1";
  in.host = "shop";
  in.scheme = "http";
  in.query = "b=1";
  in.protocol = "HTTP/1.1";
  in.size = 4;
  in.with_body = true;
  in.body = "body";
  const std::string source = len_field(1, len_field(1, len_field(1, len_field(2, "192.0.2.5"))));
  const std::string destination = len_field(2, len_field(1, len_field(1, tag(3, 0) + "\x90\x3f"s)));
  const std::string http = len_field(1, "r1") + len_field(2, "POST") +
                           len_field(3, len_field(1, ":path") + len_field(2, "/a?b=1")) +
                           len_field(3, len_field(1, "x-k") + len_field(2, "v1,v2")) + len_field(4, "/a?b=1") +
                           len_field(5, "shop") + len_field(6, "http") + len_field(7, "b=1") + int_field(9, 4) +
                           len_field(10, "HTTP/1.1") + len_field(11, "body");
  const std::string want = len_field(1, source + destination + len_field(4, len_field(2, http)));
  EXPECT_EQ(encode_check_request(in), want);
}

TEST(CheckRequest, ABodyThatIsNotUtf8GoesAsRawBody) {
  CheckInput in;
  in.with_body = true;
  in.body = "\xff\xfe";
  std::string got = encode_check_request(in);
  EXPECT_NE(got.find("\x62\x02\xff\xfe"s), std::string::npos);  // field 12, wire type 2
  EXPECT_EQ(got.find("\x5a"s), std::string::npos);               // no field 11
}

TEST(CheckRequest, Utf8Table) {
  struct Case {
    std::string s;
    bool ok;
  } cases[] = {{"", true},           {"plain", true},         {"\xc3\xa9", true},      {"\xe2\x82\xac", true},
               {"\xf0\x9f\x98\x80", true}, {"\xc3", false},    {"\xc0\xaf", false},     {"\xed\xa0\x80", false},
               {"\xf4\x90\x80\x80", false}, {"\x80", false},   {"a\xe2\x82", false}};
  for (const auto& c : cases) EXPECT_EQ(valid_utf8(c.s), c.ok) << testing::PrintToString(c.s);
}

std::string header_option(const std::string& k, const std::string& v, int action = -1, int append = -1) {
  std::string o = len_field(1, len_field(1, k) + len_field(2, v));
  if (append >= 0) o += len_field(2, int_field(1, static_cast<uint8_t>(append)));
  if (action >= 0) o += int_field(3, static_cast<uint8_t>(action));
  return o;
}

TEST(CheckResponse, DecodeTable) {
  struct Case {
    const char* name;
    std::string wire;
    bool ok;
    int32_t code;
    int http_status;
    size_t headers;
    size_t removes;
    std::string body;
  } cases[] = {
      {"empty is OK", "", true, 0, 0, 0, 0, ""},
      {"ok with headers and removes",
       len_field(1, int_field(1, 0)) +
           len_field(3, len_field(2, header_option("x-user", "alice", 2)) + len_field(5, "x-drop")),
       true, 0, 0, 1, 1, ""},
      {"denied", len_field(1, int_field(1, 7) + len_field(2, "no")) +
                     len_field(2, len_field(1, int_field(1, 0x7f)) + len_field(2, header_option("x-why", "p")) +
                                      len_field(3, "go away")),
       true, 7, 127, 1, 0, "go away"},
      {"unknown fields skipped (varint, 64-bit, 32-bit, bytes)",
       int_field(9, 1) + tag(10, 1) + "12345678" + tag(11, 5) + "1234" + len_field(12, "zz"), true, 0, 0, 0, 0,
       ""},
      {"truncated length", "\x0a\x05\x08"s, false, 0, 0, 0, 0, ""},
      {"field number 0", "\x00\x01"s, false, 0, 0, 0, 0, ""},
      {"group wire type", "\x0b"s, false, 0, 0, 0, 0, ""},
      {"varint too long", "\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"s, false, 0, 0, 0, 0, ""},
      {"status as a varint (wrong wire type)", int_field(1, 3), false, 0, 0, 0, 0, ""},
      {"unknown append action", len_field(3, len_field(2, header_option("x", "y", 9))), false, 0, 0, 0, 0, ""},
  };
  for (const auto& c : cases) {
    CheckResult r;
    std::string why;
    ASSERT_EQ(decode_check_response(c.wire, r, why), c.ok) << c.name << ": " << why;
    if (!c.ok) {
      EXPECT_FALSE(why.empty()) << c.name;
      continue;
    }
    EXPECT_EQ(r.code, c.code) << c.name;
    EXPECT_EQ(r.http_status, c.http_status) << c.name;
    EXPECT_EQ(r.headers.size(), c.headers) << c.name;
    EXPECT_EQ(r.headers_to_remove.size(), c.removes) << c.name;
    EXPECT_EQ(r.body, c.body) << c.name;
  }
}

TEST(CheckResponse, HeaderActions) {
  using A = HeaderOp::Action;
  struct Case {
    int action, append;
    A want;
  } cases[] = {{-1, -1, A::kAppend},  // proto3 default: APPEND_IF_EXISTS_OR_ADD
               {0, -1, A::kAppend},         {1, -1, A::kAddIfAbsent},      {2, -1, A::kOverwrite},
               {3, -1, A::kOverwriteIfExists}, {-1, 1, A::kAppend},        {-1, 0, A::kOverwrite},
               {2, 1, A::kAppend}};  // the deprecated append wins when present, as in Envoy
  for (const auto& c : cases) {
    CheckResult r;
    std::string why;
    ASSERT_TRUE(decode_check_response(len_field(3, len_field(2, header_option("k", "v", c.action, c.append))), r, why));
    ASSERT_EQ(r.headers.size(), 1u);
    EXPECT_EQ(r.headers[0].key, "k");
    EXPECT_EQ(r.headers[0].value, "v");
    EXPECT_EQ(r.headers[0].action, c.want) << c.action << " " << c.append;
  }
}

TEST(GrpcFrame, RoundTripAndRefusals) {
  std::string framed = grpc_frame("abc");
  EXPECT_EQ(framed, "\x00\x00\x00\x00\x03" "abc"s);
  std::string_view m;
  std::string why;
  ASSERT_TRUE(grpc_unframe(framed, m, why));
  EXPECT_EQ(m, "abc");
  EXPECT_FALSE(grpc_unframe("\x00\x00\x00"s, m, why));
  EXPECT_FALSE(grpc_unframe("\x01\x00\x00\x00\x01x"s, m, why));  // compressed
  EXPECT_FALSE(grpc_unframe("\x00\x00\x00\x00\x02x"s, m, why));  // short
  EXPECT_FALSE(grpc_unframe(framed + "\x00"s, m, why));           // two messages' worth
  EXPECT_TRUE(grpc_unframe(grpc_frame(""), m, why));
  EXPECT_TRUE(m.empty());
}

}  // namespace
}  // namespace gantry::filters::ext_authz
