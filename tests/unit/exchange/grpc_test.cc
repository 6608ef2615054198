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

}  // namespace
}  // namespace gantry::exchange
