// Table-driven tests of the trace-context parsers (W3C Trace Context level 1,
// B3 single and multi), formatting, the ratio sampler and OTLP JSON.
#include "proxy/tracing/trace_context.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "proxy/tracing/otlp_json.h"

namespace gantry::tracing {
namespace {

constexpr std::string_view kTrace = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr std::string_view kSpan = "00f067aa0ba902b7";

struct TraceparentCase {
  std::string value;
  bool valid;
  bool sampled;
};

TEST(Traceparent, Table) {
  const std::string t(kTrace), s(kSpan);
  const std::vector<TraceparentCase> cases = {
      {"00-" + t + "-" + s + "-01", true, true},
      {"00-" + t + "-" + s + "-00", true, false},
      {"00-" + t + "-" + s + "-09", true, true},    // other flags: bit 0 decides
      {"00-" + t + "-" + s + "-02", true, false},
      {"01-" + t + "-" + s + "-01", true, true},    // a later version: its 00 prefix
      {"01-" + t + "-" + s + "-01-future", true, true},
      {"01-" + t + "-" + s + "-01x", false, false}, // later version: fields after "-" only
      {"00-" + t + "-" + s + "-01-extra", false, false},  // version 00 is exactly 55 bytes
      {"ff-" + t + "-" + s + "-01", false, false},  // version ff is invalid
      {"0g-" + t + "-" + s + "-01", false, false},
      {"00-" + std::string(32, '0') + "-" + s + "-01", false, false},  // zero trace id
      {"00-" + t + "-" + std::string(16, '0') + "-01", false, false},  // zero span id
      {"00-4BF92F3577B34DA6A3CE929D0E0E4736-" + s + "-01", false, false},  // upper case
      {"00-" + t + "-" + s + "-0", false, false},
      {"00_" + t + "-" + s + "-01", false, false},
      {"00-" + t + "_" + s + "-01", false, false},
      {"00-" + t + "-" + s + "_01", false, false},
      {"00-" + t.substr(1) + "-" + s + "-01", false, false},
      {"", false, false},
      {"00", false, false},
      {" 00-" + t + "-" + s + "-01", false, false},
  };
  for (const auto& c : cases) {
    auto got = parse_traceparent(c.value);
    EXPECT_EQ(got.has_value(), c.valid) << c.value;
    if (!got || !c.valid) continue;
    EXPECT_EQ(hex(got->trace_id), t) << c.value;
    EXPECT_EQ(hex(got->span_id), s) << c.value;
    EXPECT_EQ(got->sampled, std::optional<bool>(c.sampled)) << c.value;
  }
}

struct B3Case {
  std::string value;
  bool valid;
  std::string trace;  // expected, hex
  std::optional<bool> sampled;
};

TEST(B3Single, Table) {
  const std::string t(kTrace), s(kSpan);
  const std::vector<B3Case> cases = {
      {t + "-" + s, true, t, std::nullopt},
      {t + "-" + s + "-1", true, t, true},
      {t + "-" + s + "-0", true, t, false},
      {t + "-" + s + "-d", true, t, true},
      {t + "-" + s + "-1-" + s, true, t, true},
      {"a3ce929d0e0e4736-" + s + "-1", true, "0000000000000000a3ce929d0e0e4736", true},  // 64-bit trace id
      {t + "-" + s + "-2", false, "", std::nullopt},
      {t + "-" + s + "-1-", false, "", std::nullopt},
      {t + "-" + s + "-1-" + std::string(16, '0'), false, "", std::nullopt},
      {t + "-" + s.substr(2), false, "", std::nullopt},
      {t.substr(2) + "-" + s, false, "", std::nullopt},
      {std::string(32, '0') + "-" + s, false, "", std::nullopt},
      {"0", false, "", std::nullopt},  // a sampling state alone: no context
      {"1", false, "", std::nullopt},
      {"d", false, "", std::nullopt},
      {"", false, "", std::nullopt},
      {"-", false, "", std::nullopt},
  };
  for (const auto& c : cases) {
    auto got = parse_b3_single(c.value);
    EXPECT_EQ(got.has_value(), c.valid) << c.value;
    if (!got || !c.valid) continue;
    EXPECT_EQ(hex(got->trace_id), c.trace) << c.value;
    EXPECT_EQ(hex(got->span_id), s) << c.value;
    EXPECT_EQ(got->sampled, c.sampled) << c.value;
  }
}

TEST(B3Multi, Table) {
  const std::string t(kTrace), s(kSpan);
  struct Case {
    std::string trace, span, sampled, flags;
    bool valid;
    std::optional<bool> want;
  };
  const std::vector<Case> cases = {
      {t, s, "", "", true, std::nullopt},
      {t, s, "1", "", true, true},
      {t, s, "true", "", true, true},
      {t, s, "0", "", true, false},
      {t, s, "false", "", true, false},
      {t, s, "0", "1", true, true},  // debug wins
      {t, s, "", "1", true, true},
      {t, s, "yes", "", false, std::nullopt},
      {t, s, "", "2", false, std::nullopt},
      {t, "", "1", "", false, std::nullopt},
      {"", s, "1", "", false, std::nullopt},
      {t, s + "0", "1", "", false, std::nullopt},
  };
  for (const auto& c : cases) {
    auto got = parse_b3_multi(c.trace, c.span, c.sampled, c.flags);
    EXPECT_EQ(got.has_value(), c.valid) << c.trace << "/" << c.span << "/" << c.sampled << "/" << c.flags;
    if (got && c.valid) {
      EXPECT_EQ(got->sampled, c.want) << c.sampled << "/" << c.flags;
    }
  }
}

TEST(Tracestate, Forwardable) {
  EXPECT_TRUE(forwardable_tracestate("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"));
  EXPECT_FALSE(forwardable_tracestate(""));
  EXPECT_FALSE(forwardable_tracestate(std::string(513, 'a')));
  EXPECT_FALSE(forwardable_tracestate("a=1\x01"));
  std::string many;
  for (int i = 0; i < 33; ++i) many.append(i ? ",k" : "k").append(std::to_string(i)).append("=v");
  EXPECT_FALSE(forwardable_tracestate(many));
}

TEST(Format, TraceparentAndB3RoundTrip) {
  TraceId t = make_trace_id(0x0102030405060708ULL, 0x090a0b0c0d0e0f10ULL);
  SpanId s = make_span_id(0x1112131415161718ULL);
  char tp[kTraceparentSize];
  format_traceparent(t, s, true, tp);
  EXPECT_EQ(std::string_view(tp, sizeof tp), "00-0102030405060708090a0b0c0d0e0f10-1112131415161718-01");
  auto back = parse_traceparent(std::string_view(tp, sizeof tp));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->trace_id, t);
  EXPECT_EQ(back->span_id, s);
  char b3[kB3Size];
  format_b3(t, s, false, b3);
  EXPECT_EQ(std::string_view(b3, sizeof b3), "0102030405060708090a0b0c0d0e0f10-1112131415161718-0");
  auto b = parse_b3_single(std::string_view(b3, sizeof b3));
  ASSERT_TRUE(b);
  EXPECT_EQ(b->trace_id, t);
  EXPECT_EQ(b->sampled, std::optional<bool>(false));
  EXPECT_NE(make_trace_id(0, 0), TraceId{});  // never all zero
  EXPECT_NE(make_span_id(0), SpanId{});
}

TEST(Sampler, RatioIsDeterministicAndProportional) {
  EXPECT_FALSE(ratio_sampled(make_trace_id(1, 0), 0.0));
  EXPECT_TRUE(ratio_sampled(make_trace_id(1, ~0ULL), 1.0));
  EXPECT_TRUE(ratio_sampled(make_trace_id(1, 0), 0.01));            // low bits 0: below any ratio
  EXPECT_FALSE(ratio_sampled(make_trace_id(1, ~0ULL), 0.999));
  // Over evenly spread ids, the share sampled is the ratio.
  int hit = 0;
  for (uint64_t i = 0; i < 10000; ++i) hit += ratio_sampled(make_trace_id(7, i * 1844674407370955ULL), 0.1) ? 1 : 0;
  EXPECT_NEAR(hit, 1000, 5);
  // Parent-based: the caller's flag wins over the ratio, either way.
  TraceContext parent;
  parent.sampled = false;
  EXPECT_FALSE(head_sampled(parent, make_trace_id(1, 0), 1.0));
  parent.sampled = true;
  EXPECT_TRUE(head_sampled(parent, make_trace_id(1, ~0ULL), 0.0));
  parent.sampled.reset();  // B3 without a decision: the ratio
  EXPECT_FALSE(head_sampled(parent, make_trace_id(1, ~0ULL), 0.0));
  EXPECT_TRUE(head_sampled(std::nullopt, make_trace_id(1, 5), 1.0));
}

TEST(OtlpJson, DocumentedShape) {
  Span s;
  s.trace_id = make_trace_id(0x0102030405060708ULL, 0x090a0b0c0d0e0f10ULL);
  s.span_id = make_span_id(0x1112131415161718ULL);
  s.parent_span_id = make_span_id(0x2122232425262728ULL);
  s.trace_state = "rojo=1";
  s.name = "GET default/shop#0";
  s.start_unix_ns = 1700000000000000000ULL;
  s.end_unix_ns = 1700000000000001000ULL;
  s.error = true;
  s.status_message = "upstream closed";
  s.attributes = {{"http.request.method", std::string("GET")},
                  {"http.response.status_code", int64_t{502}},
                  {"gantry.cache_hit", false}};
  s.events.push_back(SpanEvent{"retry", 1700000000000000500ULL, {{"gantry.retry.attempt", int64_t{1}}}});
  s.attributes.emplace_back("escaped", std::string("a\"b\\c\n\x01"));
  Span plain;  // a second span: no parent, no events, no status
  plain.trace_id = s.trace_id;
  plain.span_id = make_span_id(7);
  const Span both[] = {s, plain};
  auto doc = nlohmann::json::parse(encode_otlp_json(std::span<const Span>(both, 2), "edge", "1.2"));
  const auto& second = doc.at("resourceSpans").at(0).at("scopeSpans").at(0).at("spans").at(1);
  EXPECT_FALSE(second.contains("parentSpanId"));
  EXPECT_FALSE(second.contains("status"));
  EXPECT_EQ(second.at("spanId"), "0000000000000007");
  const auto& rs = doc.at("resourceSpans").at(0);
  EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("key"), "service.name");
  EXPECT_EQ(rs.at("resource").at("attributes").at(0).at("value").at("stringValue"), "edge");
  const auto& j = rs.at("scopeSpans").at(0).at("spans").at(0);
  EXPECT_EQ(j.at("traceId"), "0102030405060708090a0b0c0d0e0f10");
  EXPECT_EQ(j.at("spanId"), "1112131415161718");
  EXPECT_EQ(j.at("parentSpanId"), "2122232425262728");
  EXPECT_EQ(j.at("traceState"), "rojo=1");
  EXPECT_EQ(j.at("kind"), 2);
  EXPECT_EQ(j.at("startTimeUnixNano"), "1700000000000000000");
  EXPECT_EQ(j.at("status").at("code"), 2);
  EXPECT_EQ(j.at("attributes").at(1).at("value").at("intValue"), "502");
  EXPECT_EQ(j.at("attributes").at(2).at("value").at("boolValue"), false);
  EXPECT_EQ(j.at("events").at(0).at("name"), "retry");
  EXPECT_EQ(j.at("events").at(0).at("timeUnixNano"), "1700000000000000500");
  EXPECT_EQ(j.at("attributes").at(3).at("value").at("stringValue"), "a\"b\\c\n\x01");
}

}  // namespace
}  // namespace gantry::tracing
