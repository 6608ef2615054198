// filters.transform's selection rules (docs/policies.md, "transform") against
// a bare Exchange: which bodies are converted, and the Content-Type / Accept
// the upstream request gets.
#include <gtest/gtest.h>

#include <string>

#include "proxy/exchange/chain.h"
#include "proxy/snapshot/model.h"
#include "tests/unit/exchange/fake_exchange.h"

namespace gantry::exchange {
namespace {

using testing::FakeExchange;
using testing::FakeRequest;
using C = Exchange::Conversion;

struct Row {
  std::string name;
  snapshot::TransformFormat backend;
  bool request_on, response_on;
  std::string content_type, accept;
  bool has_body;
  C want_request, want_response;
  std::string want_upstream_ct, want_upstream_accept;  // empty: not set
};

class TransformSelection : public ::testing::TestWithParam<Row> {};

TEST_P(TransformSelection, Decides) {
  const Row& r = GetParam();
  snapshot::Rule rule;
  rule.filters.transform = snapshot::Transform{r.backend, r.request_on, r.response_on, 1024, "root", "item"};
  FilterChain chain = build_chain(rule, ChainParts{});
  FakeRequest req;
  req.method = r.has_body ? "POST" : "GET";
  if (!r.content_type.empty()) req.headers.emplace_back("Content-Type", r.content_type);
  if (!r.accept.empty()) req.headers.emplace_back("Accept", r.accept);
  if (r.has_body) {
    req.body = http::BodyKind::kContentLength;
    req.content_length = 10;
  }
  FakeExchange fx(req);
  auto o = fx.run(chain);
  ASSERT_EQ(o.verdict, Verdict::kContinue);
  // The plan is left in the exchange the fake ran.
  Exchange& ex = fx.get();
  chain.run_request(ex);
  EXPECT_EQ(ex.transform.request, r.want_request);
  EXPECT_EQ(ex.transform.response, r.want_response);
  std::string ct, accept;
  for (const auto& [n, v] : o.upstream_set) {
    if (n == "content-type") ct = v;
    if (n == "accept") accept = v;
  }
  EXPECT_EQ(ct, r.want_upstream_ct);
  EXPECT_EQ(accept, r.want_upstream_accept);
}

constexpr auto kXml = snapshot::TransformFormat::kXml;
constexpr auto kJson = snapshot::TransformFormat::kJson;
const std::string kXmlT = "application/xml; charset=utf-8";
const std::string kJsonT = "application/json";

INSTANTIATE_TEST_SUITE_P(
    Rules, TransformSelection,
    ::testing::Values(
        // A JSON client in front of an XML backend.
        Row{"json_client_xml_backend", kXml, true, true, "application/json", "", true, C::kJsonToXml, C::kXmlToJson,
            kXmlT, kXmlT},
        Row{"json_accept_only_get", kXml, true, true, "", "application/json", false, C::kNone, C::kXmlToJson, "",
            kXmlT},
        Row{"accept_overrides_sent_format", kXml, true, true, "application/json", "application/xml", true,
            C::kJsonToXml, C::kNone, kXmlT, ""},
        Row{"backend_format_passes", kXml, true, true, "application/xml", "", true, C::kNone, C::kNone, "", ""},
        Row{"other_types_pass", kXml, true, true, "text/plain", "*/*", true, C::kNone, C::kNone, "", ""},
        Row{"no_body_no_request_conversion", kXml, true, true, "application/json", "", false, C::kNone,
            C::kXmlToJson, "", kXmlT},
        Row{"request_only", kXml, true, false, "application/json", "application/json", true, C::kJsonToXml,
            C::kNone, kXmlT, ""},
        Row{"response_only", kXml, false, true, "application/json", "", true, C::kNone, C::kXmlToJson, "", kXmlT},
        Row{"accept_tie_uses_sent_format", kXml, true, true, "application/json", "application/json, text/xml", true,
            C::kJsonToXml, C::kXmlToJson, kXmlT, kXmlT},
        // An XML client in front of a JSON backend.
        Row{"xml_client_json_backend", kJson, true, true, "text/xml", "", true, C::kXmlToJson, C::kJsonToXml,
            kJsonT, kJsonT},
        Row{"soap_suffix", kJson, true, true, "application/soap+xml", "", true, C::kXmlToJson, C::kJsonToXml,
            kJsonT, kJsonT},
        Row{"xml_accept_with_q", kJson, true, true, "", "application/json;q=0.5, application/xml", false, C::kNone,
            C::kJsonToXml, "", kJsonT},
        Row{"json_backend_json_client", kJson, true, true, "application/json", "application/json", true, C::kNone,
            C::kNone, "", ""}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace gantry::exchange
