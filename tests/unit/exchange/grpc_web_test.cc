// gRPC-Web (filters/grpc_web.h, the grpc_web filter): content types, the
// trailer frame, the streaming base64 coders in every split, trailers-only
// local replies, and the filter's edits against a bare Exchange.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "proxy/exchange/chain.h"
#include "proxy/filters/grpc_web.h"
#include "proxy/snapshot/model.h"
#include "tests/unit/exchange/fake_exchange.h"

namespace gantry::filters::grpc_web {
namespace {

TEST(GrpcWeb, ContentTypes) {
  struct Row {
    std::string in;
    bool ok;
    bool text;
    std::string suffix, upstream, client;
  };
  const std::vector<Row> rows = {
      {"application/grpc-web", true, false, "", "application/grpc", "application/grpc-web"},
      {"application/grpc-web+proto", true, false, "+proto", "application/grpc+proto", "application/grpc-web+proto"},
      {"application/grpc-web-text", true, true, "", "application/grpc", "application/grpc-web-text"},
      {"application/grpc-web-text+proto", true, true, "+proto", "application/grpc+proto",
       "application/grpc-web-text+proto"},
      {"Application/GRPC-Web-Text+proto; charset=utf-8", true, true, "+proto", "application/grpc+proto",
       "application/grpc-web-text+proto"},
      {"application/grpc-web+json", true, false, "+json", "application/grpc+json", "application/grpc-web+json"},
      {"  application/grpc-web ; x=y", true, false, "", "application/grpc", "application/grpc-web"},
      {"application/grpc", false, false, "", "", ""},
      {"application/grpc+proto", false, false, "", "", ""},
      {"application/grpc-webx", false, false, "", "", ""},
      {"application/grpc-web+", false, false, "", "", ""},
      {"application/grpc-web+pro to", false, false, "", "", ""},
      {"application/grpc-web-textual", false, false, "", "", ""},
      {"text/plain", false, false, "", "", ""},
      {"", false, false, "", "", ""},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.in);
    auto t = parse_content_type(r.in);
    ASSERT_EQ(t.has_value(), r.ok);
    if (!r.ok) continue;
    EXPECT_EQ(t->text, r.text);
    EXPECT_EQ(t->suffix, r.suffix);
    EXPECT_EQ(grpc_content_type(*t), r.upstream);
    EXPECT_EQ(web_content_type(*t), r.client);
  }
}

TEST(GrpcWeb, TrailerFrame) {
  struct Row {
    std::vector<http::Header> trailers;
    std::string want;
  };
  const std::vector<Row> rows = {
      {{}, std::string("\x80\0\0\0\0", 5)},
      {{{"grpc-status", "0"}}, std::string("\x80\0\0\0\x10grpc-status: 0\r\n", 21)},
      {{{"Grpc-Status", "5"}, {"grpc-message", "not found"}},
       std::string("\x80\0\0\0\x29grpc-status: 5\r\ngrpc-message: not found\r\n", 46)},
  };
  for (const auto& r : rows) {
    std::string out("prefix");
    append_trailer_frame(r.trailers, out);
    EXPECT_EQ(out, "prefix" + r.want);
    auto frames = parse_frames(std::string_view(out).substr(6));
    ASSERT_TRUE(frames);
    ASSERT_EQ(frames->size(), 1u);
    EXPECT_TRUE((*frames)[0].trailer);
    auto fields = parse_trailers((*frames)[0].payload);
    ASSERT_TRUE(fields);
    ASSERT_EQ(fields->size(), r.trailers.size());
    for (size_t i = 0; i < r.trailers.size(); ++i) EXPECT_EQ((*fields)[i].second, r.trailers[i].value);
  }
}

TEST(GrpcWeb, ParseFrames) {
  struct Row {
    std::string body;
    bool ok;
    size_t frames;
  };
  const std::vector<Row> rows = {
      {"", true, 0},
      {std::string("\0\0\0\0\x02hi", 7), true, 1},
      {std::string("\0\0\0\0\x02hi\x80\0\0\0\0", 12), true, 2},
      {std::string("\x01\0\0\0\x01z", 6), true, 1},   // compressed message
      {std::string("\0\0\0\0\x03hi", 7), false, 0},   // runs past the end
      {std::string("\0\0\0", 3), false, 0},           // a cut prefix
      {std::string("\x02\0\0\0\0", 5), false, 0},     // unknown flag bit
      {std::string("\0\xff\xff\xff\xff", 5), false, 0},
  };
  for (const auto& r : rows) {
    auto f = parse_frames(r.body);
    EXPECT_EQ(f.has_value(), r.ok);
    if (f) {
      EXPECT_EQ(f->size(), r.frames);
    }
  }
  EXPECT_FALSE(parse_trailers("no colon here\r\n"));
  EXPECT_FALSE(parse_trailers(": empty name\r\n"));
  auto t = parse_trailers("grpc-status:0\r\nGRPC-Message:  a b \r\nlast: x");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[1].first, "grpc-message");
  EXPECT_EQ((*t)[1].second, "a b");
  EXPECT_EQ((*t)[2].second, "x");
}

std::string encode_all(std::string_view in, size_t piece) {
  Base64Encoder e;
  std::string out;
  for (size_t i = 0; i < in.size(); i += piece) e.feed(in.substr(i, piece), out);
  e.finish(out);
  return out;
}

TEST(GrpcWeb, Base64EncoderInEverySplit) {
  struct Row {
    std::string in, want;
  };
  const std::vector<Row> rows = {
      {"", ""},        {"f", "Zg=="},         {"fo", "Zm8="},     {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
      {std::string("\0\0\0\0\x05hello\x80\0\0\0\x10grpc-status: 0\r\n", 31),
       "AAAAAAVoZWxsb4AAAAAQZ3JwYy1zdGF0dXM6IDANCg=="},
      {"\xff\xfe\xfd", "//79"},
  };
  for (const auto& r : rows)
    for (size_t piece = 1; piece <= r.in.size() + 1; ++piece) {
      SCOPED_TRACE(r.want + " piece " + std::to_string(piece));
      EXPECT_EQ(encode_all(r.in, piece), r.want);
    }
}

TEST(GrpcWeb, Base64DecoderInEverySplit) {
  struct Row {
    std::string in;
    bool ok;
    std::string want;  // when ok
    bool complete;
  };
  const std::vector<Row> rows = {
      {"", true, "", true},
      {"Zm9vYmFy", true, "foobar", true},
      {"Zg==", true, "f", true},
      {"Zm8=", true, "fo", true},
      // segments encoded one by one, each padded (streaming clients)
      {"Zg==Zm8=Zm9v", true, "ffofoo", true},
      {"AAAAAAVoZWxsbw==", true, std::string("\0\0\0\0\x05hello", 10), true},
      {"Zm9", true, "", false},           // a cut group: not complete
      {"Zm9v!A==", false, "", false},     // outside the alphabet
      {"Zm9v\r\nZm9v", false, "", false},  // no whitespace either
      {"Z===", false, "", false},         // three pads
      {"Zg=a", false, "", false},         // data after '='
      {"====", false, "", false},
      {"Zm-_", false, "", false},         // base64url is not base64
  };
  for (const auto& r : rows)
    for (size_t piece = 1; piece <= r.in.size() + 1; ++piece) {
      SCOPED_TRACE(r.in + " piece " + std::to_string(piece));
      Base64Decoder d;
      std::string out;
      bool ok = true;
      for (size_t i = 0; i < r.in.size() && ok; i += piece) ok = d.feed(std::string_view(r.in).substr(i, piece), out);
      EXPECT_EQ(ok, r.ok);
      EXPECT_EQ(d.failed(), !r.ok);
      if (r.ok) {
        EXPECT_EQ(out, r.want);
        EXPECT_EQ(d.complete(), r.complete);
      }
    }
}

TEST(GrpcWeb, LocalRepliesBecomeTrailersOnly) {
  struct Row {
    int status;
    std::string body;
    bool text;
    std::string grpc_status, message, content_type;
  };
  const std::vector<Row> rows = {
      {503, "no healthy endpoint for default/echo:8080", false, "14", "no healthy endpoint for default/echo:8080",
       "application/grpc-web+proto"},
      {429, "", true, "14", "", "application/grpc-web-text+proto"},
      {401, "bad token 100%", false, "16", "bad token 100%25", "application/grpc-web+proto"},
      {504, "deadline exceeded", false, "4", "deadline exceeded", "application/grpc-web+proto"},
      {404, "no route", false, "12", "no route", "application/grpc-web+proto"},
  };
  for (const auto& r : rows) {
    exchange::LocalReply reply;
    reply.status = r.status;
    reply.body = r.body;
    reply.gateway_reason = "circuit-open";
    reply.headers = {{"RateLimit-Limit", "1"}, {"Content-Type", "text/html"}};
    to_trailers_only(reply, WebType{r.text, "+proto"});
    EXPECT_EQ(reply.status, 200);
    EXPECT_TRUE(reply.body.empty());
    EXPECT_TRUE(reply.verbatim);
    EXPECT_EQ(reply.gateway_reason, "circuit-open");
    std::map<std::string, std::string> got(reply.headers.begin(), reply.headers.end());
    EXPECT_EQ(got["content-type"], r.content_type);
    EXPECT_EQ(got["grpc-status"], r.grpc_status);
    EXPECT_EQ(got.count("grpc-message"), r.message.empty() ? 0u : 1u);
    if (!r.message.empty()) {
      EXPECT_EQ(got["grpc-message"], r.message);
    }
    EXPECT_EQ(got["RateLimit-Limit"], "1");
    EXPECT_EQ(got.count("Content-Type"), 0u);
  }
}

// ---- the filter against a bare Exchange

TEST(GrpcWebFilter, MarksAndEditsOnlyGrpcWeb) {
  snapshot::Rule rule;
  rule.filters.grpc_web = snapshot::GrpcWeb{};
  exchange::FilterChain chain = exchange::build_chain(rule, {});
  struct Row {
    std::string content_type;
    std::string response_type;
    bool active, text, translated;
    std::string upstream_type, client_type;
  };
  const std::vector<Row> rows = {
      {"application/grpc-web+proto", "application/grpc+proto", true, false, true, "application/grpc+proto",
       "application/grpc-web+proto"},
      {"application/grpc-web-text", "application/grpc", true, true, true, "application/grpc",
       "application/grpc-web-text"},
      // a backend answering something else than gRPC: its answer passes as it is
      {"application/grpc-web", "text/html", true, false, false, "application/grpc", ""},
      {"application/grpc", "application/grpc", false, false, false, "", ""},
      {"application/json", "application/json", false, false, false, "", ""},
      {"", "text/plain", false, false, false, "", ""},
  };
  for (const auto& r : rows) {
    SCOPED_TRACE(r.content_type);
    exchange::testing::FakeRequest rq;
    rq.method = "POST";
    if (!r.content_type.empty()) rq.headers = {{"Content-Type", r.content_type}, {"X-Grpc-Web", "1"}};
    exchange::testing::FakeExchange fx(rq);
    exchange::Exchange& ex = fx.get();
    ASSERT_EQ(chain.run_request(ex), exchange::Verdict::kContinue);
    EXPECT_EQ(ex.grpc_web.active, r.active);
    EXPECT_EQ(ex.grpc_web.text, r.text);
    exchange::UpstreamRequest up;
    chain.run_upstream_request(ex, up);
    if (r.active) {
      ASSERT_EQ(up.headers.set.size(), 1u);
      EXPECT_EQ(up.headers.set[0].name, "content-type");
      EXPECT_EQ(up.headers.set[0].value, r.upstream_type);
      EXPECT_TRUE(up.headers.drops("x-grpc-web"));
    } else {
      EXPECT_TRUE(up.headers.empty());
    }
    std::vector<http::Header> fields = {{"content-type", r.response_type}, {"content-length", "7"}};
    exchange::HeaderEdits edits;
    chain.run_response(ex, {200, &fields, false}, edits);
    EXPECT_EQ(ex.grpc_web.translate_response, r.translated);
    if (r.translated) {
      ASSERT_EQ(edits.set.size(), 1u);
      EXPECT_EQ(edits.set[0].value, r.client_type);
      EXPECT_TRUE(edits.drops("content-length"));
    } else {
      EXPECT_TRUE(edits.empty());
    }
  }
}

}  // namespace
}  // namespace gantry::filters::grpc_web
