// Codec tests: round trips of a snapshot that sets every field, golden files
// (encoder output and a hand-written document), and a table of bad documents
// with the path each error must name.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <ostream>
#include <sstream>
#include <string>

#include "proxy/snapshot/codec.h"
#include "tests/unit/snapshot/snapshot_fixtures.h"

namespace gantry::snapshot {
namespace {

std::string testdata(const std::string& name) {
  return std::string(GANTRY_SNAPSHOT_TESTDATA) + "/" + name;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(CodecTest, RichSnapshotRoundTripsCompact) {
  Snapshot s = testing::rich_snapshot();
  auto back = decode_snapshot(encode(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(CodecTest, RichSnapshotRoundTripsPretty) {
  Snapshot s = testing::rich_snapshot();
  std::string pretty = to_pretty_json(s);
  EXPECT_NE(pretty.find("\n  \"routes\": ["), std::string::npos);
  auto back = decode_snapshot(pretty);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(CodecTest, GrpcHealthCheckRoundTrips) {
  Snapshot s = testing::rich_snapshot();
  HealthCheck& h = *s.routes[0].rules[0].policy.health_check;
  h.expected_statuses.clear();
  h.grpc = GrpcHealthCheck{"shop.v1.Cart"};
  const std::string text = encode(s);
  EXPECT_NE(text.find(R"("grpc":{"service":"shop.v1.Cart"})"), std::string::npos) << text;
  auto back = decode_snapshot(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
  h.grpc = GrpcHealthCheck{""};  // the server as a whole: still a gRPC check
  back = decode_snapshot(encode(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(CodecTest, DefaultSnapshotRoundTrips) {
  Snapshot s;
  s.routes.push_back(Route{});
  s.routes[0].rules.push_back(Rule{});
  s.routes[0].rules[0].matches.push_back(RouteMatch{});
  s.clusters.push_back(Cluster{});
  s.clusters[0].endpoints.push_back(Endpoint{});
  s.certificates.push_back(TlsCertificate{});
  auto back = decode_snapshot(encode(s));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
}

TEST(CodecTest, EncodingOmitsUnsetAndDefaultParts) {
  Snapshot s;
  s.version = 1;
  Route r;
  r.namespace_ = "ns";
  r.name = "r";
  r.rules.push_back(Rule{{}, {}, {{"ns/svc:80", 1, ""}}, {}});
  s.routes.push_back(r);
  s.clusters.push_back(Cluster{"ns/svc:80", {{"10.0.0.1", 80, true}}});
  std::string out = encode(s);
  for (const char* absent : {"\"policy\"", "\"filters\"", "\"matches\"", "\"hostnames\"",
                             "\"ready\"", "\"unresolved\"", "\"certificates\""}) {
    EXPECT_EQ(out.find(absent), std::string::npos) << absent << " in " << out;
  }
}

TEST(CodecTest, ClusterProtocolTravelsOnlyWhenNotHttp1) {
  Snapshot s;
  s.clusters.push_back(Cluster{"ns/grpc:50051", {{"10.0.0.1", 50051, true}}, ClusterProtocol::kH2c});
  s.clusters.push_back(Cluster{"ns/web:80", {{"10.0.0.2", 80, true}}, ClusterProtocol::kHttp1});
  std::string out = encode(s);
  EXPECT_NE(out.find("\"protocol\":\"H2C\""), std::string::npos) << out;
  EXPECT_EQ(out.find("HTTP1"), std::string::npos) << out;
  auto back = decode_snapshot(out);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
  auto explicit_http1 = decode_snapshot(R"({"clusters": [{"name": "c", "protocol": "HTTP1"}]})");
  ASSERT_TRUE(explicit_http1.ok()) << explicit_http1.error().message;
  EXPECT_EQ(explicit_http1->clusters[0].protocol, ClusterProtocol::kHttp1);
}

TEST(CodecTest, UpstreamTlsTravelsOnlyWhenSet) {
  Snapshot s;
  s.clusters.push_back(Cluster{"ns/web:80", {{"10.0.0.2", 80, true}}});
  EXPECT_EQ(encode(s).find("\"tls\""), std::string::npos);
  UpstreamTls t;
  t.server_name = "web.internal";
  t.system_ca = true;
  s.clusters[0].tls = t;
  std::string out = encode(s);
  EXPECT_NE(out.find(R"("tls":{"serverName":"web.internal","systemCa":true})"), std::string::npos) << out;
  auto back = decode_snapshot(out);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
  auto bad = decode_snapshot(R"({"clusters": [{"name": "c", "tls": {"verify": "no"}}]})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("clusters[0].tls.verify"), std::string::npos) << bad.error().message;
}

TEST(CodecTest, BinaryHmacSecretTravelsAsBase64) {
  Snapshot s = testing::rich_snapshot();
  std::string out = encode(s);
  // "s\0e\xffkret" in base64.
  EXPECT_NE(out.find("\"hmacSecretBase64\":\"cwBl/2tyZXQ=\""), std::string::npos) << out;
}

TEST(CodecTest, InvalidUtf8IsReplacedNotThrown) {
  Snapshot s;
  s.version = 1;
  s.clusters.push_back(Cluster{"bad\xff", {}});
  std::string out = encode(s);
  auto back = decode_snapshot(out);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->clusters[0].name, "bad\xEF\xBF\xBD");  // U+FFFD
}

TEST(CodecTest, DeltaRoundTrips) {
  EndpointDelta d{
      7,
      8,
      {Cluster{"default/web:80", {{"10.0.0.9", 8080, false}}}, Cluster{"default/empty:80", {}}}};
  std::string out = encode(d);
  EXPECT_NE(out.find("\"baseVersion\":7"), std::string::npos) << out;
  auto back = decode_delta(out);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, d);
}

// The small snapshot of the golden file. To regenerate after an intended
// schema change:
//   GANTRY_UPDATE_GOLDEN=1 ./snapshot_test --gtest_filter=CodecTest.GoldenSmall
// then review the diff of tests/unit/snapshot/testdata/golden_small.json.
Snapshot golden_small() {
  Snapshot s;
  s.version = 3;
  Route r;
  r.namespace_ = "default";
  r.name = "echo";
  r.creation_timestamp = 1700000000;
  r.hostnames = {"echo.example.com"};
  Rule rule;
  rule.matches = {RouteMatch{{PathMatchType::kPathPrefix, "/api"}, "GET", {}, {}}};
  rule.filters.request_headers = HeaderModifier{{{"x-env", "prod"}}, {}, {}};
  rule.backends = {{"default/echo:80", 1, ""}};
  rule.policy.timeouts.request = Millis(15000);
  r.rules = {rule};
  s.routes = {r};
  s.clusters = {Cluster{"default/echo:80", {{"10.1.0.4", 8080, true}, {"10.1.0.5", 8080, false}}}};
  return s;
}

TEST(CodecTest, GoldenSmall) {
  std::string path = testdata("golden_small.json");
  std::string got = to_pretty_json(golden_small()) + "\n";
  if (std::getenv("GANTRY_UPDATE_GOLDEN") != nullptr) {
    std::ofstream(path, std::ios::binary) << got;
  }
  std::string want = read_file(path);
  ASSERT_FALSE(want.empty()) << "missing " << path;
  EXPECT_EQ(got, want);
  auto back = decode_snapshot(want);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, golden_small());
}

// A document written by hand the way a user or an older controller might:
// fields left out (defaults apply), nulls, and fields this version ignores.
TEST(CodecTest, HandWrittenDocumentDecodes) {
  auto got = decode_snapshot(read_file(testdata("handwritten.json")));
  ASSERT_TRUE(got.ok()) << got.error().message;

  Snapshot want;
  want.version = 9;
  Route r;
  r.namespace_ = "shop";
  r.name = "web";
  r.hostnames = {"*.shop.example.com"};
  Rule a;
  a.matches = {RouteMatch{{PathMatchType::kExact, "/login"},
                          std::nullopt,
                          {{ValueMatchType::kRegularExpression, "x-user", "[a-z]+"}},
                          {{ValueMatchType::kExact, "v", "2"}}}};
  a.filters.request_redirect = RequestRedirect{"https", std::nullopt, 443, {}, 302};
  Rule b;  // no matches: every request
  b.backends = {{"shop/web:8080", 3, ""}, {"", 1, "service shop/old not found"}};
  b.filters.url_rewrite = UrlRewrite{std::nullopt, {PathRewriteType::kReplaceFullPath, "/index"}};
  b.policy.load_balancer.type = LoadBalancerType::kLeastRequest;
  b.policy.timeouts.backend_request = Millis(2500);
  b.policy.retry = Retry{};
  b.policy.retry->attempts = 3;
  b.policy.retry->on_statuses = {503};
  r.rules = {a, b};
  want.routes = {r};
  want.clusters = {Cluster{"shop/web:8080", {{"10.2.0.1", 8080, true}, {"fd00::2", 8080, false}}}};
  EXPECT_EQ(*got, want);
}

struct BadInput {
  const char* name;
  const char* json;
  const char* want;  // substring of the error message
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

class DecodeErrorTest : public ::testing::TestWithParam<BadInput> {};

TEST_P(DecodeErrorTest, NamesThePath) {
  auto got = decode_snapshot(GetParam().json);
  ASSERT_FALSE(got.ok()) << "decoded: " << GetParam().json;
  EXPECT_NE(got.error().message.find(GetParam().want), std::string::npos)
      << "message: " << got.error().message << "\nwant substring: " << GetParam().want;
}

const BadInput kBadInputs[] = {
    {"NotJson", "routes: []", "invalid JSON: parse error at line 1, column 1"},
    {"Truncated", R"({"version": 1, "routes": [)", "invalid JSON"},
    {"TopLevelArray", "[]", "snapshot: expected object, got array"},
    {"VersionString", R"({"version": "1"})", "version: expected integer, got string"},
    {"VersionNegative", R"({"version": -1})", "version: -1 out of range"},
    {"VersionFraction", R"({"version": 1.5})", "version: expected integer"},
    {"RoutesNotArray", R"({"routes": {}})", "routes: expected array, got object"},
    {"UnknownPathType",
     R"({"routes": [{}, {}, {"rules": [{"matches": [{}, {"path": {"type": "Prefix"}}]}]}]})",
     R"(routes[2].rules[0].matches[1].path.type: unknown value "Prefix")"},
    {"PortTooLarge",
     R"({"clusters": [{"name": "c", "endpoints": [{"address": "10.0.0.1", "port": 80},
        {"address": "10.0.0.2", "port": 70000}]}]})",
     "clusters[0].endpoints[1].port: 70000 out of range [0, 65535]"},
    {"NegativeWeight",
     R"({"routes": [{"rules": [{"backends": [{"cluster": "c", "weight": -5}]}]}]})",
     "routes[0].rules[0].backends[0].weight: -5 out of range"},
    {"UnknownClientVerify", R"({"hostClientValidation": [{"hostname": "a.example.com", "verify": "on"}]})",
     R"(hostClientValidation[0].verify: unknown value "on")"},
    {"ReadyNotBool", R"({"clusters": [{"endpoints": [{"address": "10.0.0.1", "ready": "yes"}]}]})",
     "clusters[0].endpoints[0].ready: expected boolean, got string"},
    {"UnknownLoadBalancer",
     R"({"routes": [{"rules": [{"policy": {"loadBalancer": {"type": "Fastest"}}}]}]})",
     R"(routes[0].rules[0].policy.loadBalancer.type: unknown value "Fastest")"},
    {"UnknownClusterProtocol", R"({"clusters": [{"name": "c", "protocol": "h2"}]})",
     R"(clusters[0].protocol: unknown value "h2")"},
    {"UnknownHashOn",
     R"({"routes": [{"rules": [{"policy": {"loadBalancer": {"hashOn": "ip"}}}]}]})",
     R"(loadBalancer.hashOn: unknown value "ip")"},
    {"RewriteWithoutType",
     R"({"routes": [{"rules": [{"filters": {"urlRewrite": {"path": {"replaceFullPath": "/"}}}}]}]})",
     R"(routes[0].rules[0].filters.urlRewrite.path: missing "type")"},
    {"BadBase64Secret",
     R"({"routes": [{"rules": [{"filters": {"jwt": {"hmacSecretBase64": "abc"}}}]}]})",
     "filters.jwt.hmacSecretBase64: invalid base64"},
    {"NegativeDuration",
     R"({"routes": [{"rules": [{"filters": {"rateLimit": {"intervalMs": -1}}}]}]})",
     "filters.rateLimit.intervalMs: -1 out of range"},
    {"HostnameNotString", R"({"routes": [{"hostnames": ["a.com", 7]}]})",
     "routes[0].hostnames[1]: expected string, got number"},
    {"RatioNotNumber",
     R"({"routes": [{"rules": [{"policy": {"circuitBreaker": {"failureRatio": "half"}}}]}]})",
     "policy.circuitBreaker.failureRatio: expected number, got string"},
    {"StatusCodeHuge",
     R"({"routes": [{"rules": [{"filters": {"requestRedirect": {"statusCode": 1e10}}}]}]})",
     "filters.requestRedirect.statusCode: expected integer"},
    {"RuleNotObject", R"({"routes": [{"rules": ["x"]}]})",
     "routes[0].rules[0]: expected object, got string"},
    {"CertificatePemNotString", R"({"certificates": [{"name": "c", "certPem": {}}]})",
     "certificates[0].certPem: expected string, got object"},
    {"HealthThresholdTooLarge",
     R"({"routes": [{"rules": [{"policy": {"healthCheck": {"healthyThreshold": 4294967296}}}]}]})",
     "healthCheck.healthyThreshold: 4294967296 out of range [0, 4294967295]"},
};

INSTANTIATE_TEST_SUITE_P(Table, DecodeErrorTest, ::testing::ValuesIn(kBadInputs),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(CodecTest, DeltaDecodeErrorsNameThePath) {
  auto top = decode_delta("7");
  ASSERT_FALSE(top.ok());
  EXPECT_EQ(top.error().message, "delta: expected object, got number");
  auto base = decode_delta(R"({"baseVersion": "7", "version": 8})");
  ASSERT_FALSE(base.ok());
  EXPECT_EQ(base.error().message, "baseVersion: expected integer, got string");
  auto port = decode_delta(R"({"clusters": [{"endpoints": [{"port": -1}]}]})");
  ASSERT_FALSE(port.ok());
  EXPECT_NE(port.error().message.find("clusters[0].endpoints[0].port: -1 out of range"),
            std::string::npos)
      << port.error().message;
}

TEST(CodecTest, NullAndUnknownFieldsAreIgnored) {
  auto got = decode_snapshot(
      R"({"version": 2, "routes": null, "futureField": {"x": [1, 2]},
          "clusters": [{"name": "c", "endpoints": null, "zone": "a"}]})");
  ASSERT_TRUE(got.ok()) << got.error().message;
  Snapshot want;
  want.version = 2;
  want.clusters = {Cluster{"c", {}}};
  EXPECT_EQ(*got, want);
}

}  // namespace
}  // namespace gantry::snapshot
