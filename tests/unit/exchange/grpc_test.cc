// exchange/grpc.h: gRPC content types, grpc-timeout both ways, and the
// status the gateway answers a gRPC request with.
#include "proxy/exchange/grpc.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace gantry::exchange {
namespace {

using std::chrono::milliseconds;

TEST(GrpcStatus, MapsTheGatewaysAnswersLikeEnvoy) {
  struct Row {
    int http;
    int grpc;
    const char* what;
  };
  const Row table[] = {
      {400, 13, "bad request: INTERNAL"},
      {401, 16, "auth refusal (JWT, basic auth, API key): UNAUTHENTICATED"},
      {403, 7, "source range, forbidden: PERMISSION_DENIED"},
      {404, 12, "no route: UNIMPLEMENTED"},
      {429, 14, "rate limited: UNAVAILABLE (Envoy's default)"},
      {502, 14, "upstream connect failure, reset: UNAVAILABLE"},
      {503, 14, "no healthy endpoint, breaker open: UNAVAILABLE"},
      {504, 4, "route timeout, grpc-timeout, upstream timeout: DEADLINE_EXCEEDED"},
      {500, 2, "UNKNOWN"},
      {413, 2, "UNKNOWN"},
      {431, 2, "UNKNOWN"},
      {200, 2, "UNKNOWN"},
  };
  for (const Row& r : table) EXPECT_EQ(grpc_status_for(r.http), r.grpc) << r.http << " " << r.what;
}

TEST(GrpcStatus, HttpStatusOfAGrpcStatus) {
  const std::pair<int, int> table[] = {
      {0, 200}, {1, 499}, {2, 500}, {3, 400}, {4, 504},  {5, 404},  {6, 409},  {7, 403},  {8, 429},
      {9, 400}, {10, 409}, {11, 400}, {12, 501}, {13, 500}, {14, 503}, {15, 500}, {16, 401}, {17, 500},
      {-1, 500},
  };
  for (auto [grpc, http] : table) EXPECT_EQ(http_status_for_grpc(grpc), http) << grpc;
  // The gateway's own answers survive the round trip where the mapping is one to one.
  for (int http : {401, 403, 503, 504}) EXPECT_EQ(http_status_for_grpc(grpc_status_for(http)), http) << http;
}

TEST(GrpcContentType, IsGrpcButNotGrpcWeb) {
  const std::pair<const char*, bool> table[] = {
      {"application/grpc", true},         {"application/grpc+proto", true},
      {"application/grpc+json", true},    {"application/grpc;charset=utf-8", true},
      {"Application/GRPC", true},         {"application/grpc-web", false},
      {"application/grpc-web+proto", false}, {"application/grpc-web-text", false},
      {"application/grpcx", false},       {"application/json", false},
      {"application/grp", false},         {"", false},
  };
  for (auto [ct, want] : table) EXPECT_EQ(is_grpc_content_type(ct), want) << ct;
}

TEST(GrpcTimeout, ParsesTheProtocolsGrammar) {
  const std::pair<const char*, std::optional<milliseconds>> table[] = {
      {"1H", milliseconds(3'600'000)},
      {"2M", milliseconds(120'000)},
      {"10S", milliseconds(10'000)},
      {"250m", milliseconds(250)},
      {"0m", milliseconds(0)},
      {"1500u", milliseconds(2)},       // rounded up
      {"1000u", milliseconds(1)},
      {"1n", milliseconds(1)},          // never earlier than sent
      {"999999n", milliseconds(1)},
      {"99999999m", milliseconds(99'999'999)},
      {"99999999H", milliseconds(99'999'999LL * 3'600'000)},  // no overflow
      {"00000001S", milliseconds(1'000)},
      {"123456789m", std::nullopt},  // 9 digits
      {"m", std::nullopt},
      {"10", std::nullopt},
      {"10s", std::nullopt},  // units are case-sensitive
      {"10 m", std::nullopt},
      {"-1m", std::nullopt},
      {"+1m", std::nullopt},
      {"1.5S", std::nullopt},
      {"", std::nullopt},
  };
  for (auto [v, want] : table) EXPECT_EQ(parse_grpc_timeout(v), want) << v;
}

TEST(GrpcTimeout, FormatsTheTimeLeftInTheFinestUnitThatFits) {
  const std::pair<milliseconds, const char*> table[] = {
      {milliseconds(0), "0m"},
      {milliseconds(-5), "0m"},
      {milliseconds(1), "1m"},
      {milliseconds(4'999), "4999m"},
      {milliseconds(99'999'999), "99999999m"},
      {milliseconds(100'000'000), "100000S"},
      {milliseconds(99'999'999LL * 1'000 + 999), "99999999S"},
      {milliseconds(100'000'000LL * 1'000), "1666666M"},
      {milliseconds(99'999'999LL * 3'600'000), "99999999H"},
      {milliseconds::max(), "99999999H"},
  };
  for (auto [d, want] : table) EXPECT_EQ(format_grpc_timeout(d), want) << d.count();
  // What is formatted parses back to at most the time left.
  for (auto [d, want] : table) {
    if (d.count() >= 0) {
      EXPECT_LE(*parse_grpc_timeout(format_grpc_timeout(d)), d) << d.count();
    }
  }
}

std::string frame(std::string_view msg, char flag = 0) {
  std::string out(1, flag);
  const auto n = static_cast<uint32_t>(msg.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  return out.append(msg);
}

TEST(GrpcHealth, RequestIsOneUncompressedHealthCheckRequest) {
  using namespace std::string_literals;
  // protobuf: field 1 (tag 0x0a, length-delimited), varint length, bytes.
  EXPECT_EQ(grpc_health_check_request("gantry.test"), "\0\0\0\0\x0d\x0a\x0b"s + "gantry.test");
  EXPECT_EQ(grpc_health_check_request(""), "\0\0\0\0\0"s) << "the empty service is the default: no field";
  const std::string long_name(200, 's');  // a two-byte varint length: 200 = 0xc8 0x01
  EXPECT_EQ(grpc_health_check_request(long_name), "\0\0\0\0\xcb\x0a\xc8\x01"s + long_name);
}

TEST(GrpcHealth, StatusOfTheResponse) {
  using namespace std::string_literals;
  struct Row {
    std::string body;
    int status;
    const char* what;
  };
  const Row table[] = {
      {frame("\x08\x01"s), 1, "SERVING"},
      {frame("\x08\x02"s), 2, "NOT_SERVING"},
      {frame("\x08\x03"s), 3, "SERVICE_UNKNOWN"},
      {frame(""), 0, "no field: UNKNOWN, protobuf's default"},
      {frame("\x08\x02\x08\x01"s), 1, "a repeated scalar: the last one wins"},
      {frame("\x12\x03" "abc\x08\x01"s), 1, "an unknown length-delimited field skipped"},
      {frame("\x19" "12345678\x08\x01"s), 1, "an unknown 64-bit field skipped"},
      {frame("\x25" "1234\x08\x01"s), 1, "an unknown 32-bit field skipped"},
      {frame("\x10\xff\x01\x08\x01"s), 1, "an unknown varint field skipped"},
      {frame("\x08\x01"s, 1), -1, "compressed: not decoded"},
      {frame("\x08\x01"s).substr(0, 6), -1, "truncated message"},
      {frame("\x08\x01"s) + frame("\x08\x01"s), -1, "two messages"},
      {"\0\0\0"s, -1, "shorter than the prefix"},
      {"", -1, "no message at all"},
      {frame("\x08"s), -1, "a varint cut short"},
      {frame("\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f"s), -1, "a varint of more than 64 bits"},
      {frame("\x08\xff\xff\xff\xff\x0f"s), -1, "a status beyond int"},
      {frame("\x12\x05" "ab"s), -1, "a length beyond the message"},
      {frame("\x1b\x08\x01"s), -1, "wire type 3 (groups) is not valid here"},
      {frame("\x00\x01"s), -1, "field number 0"},
      {frame("\x19" "1234"s), -1, "a 64-bit field cut short"},
  };
  for (const Row& r : table) EXPECT_EQ(grpc_health_status(r.body), r.status) << r.what;
}

}  // namespace
}  // namespace gantry::exchange
