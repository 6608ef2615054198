// Tests of the list/watch wire format, the line splitter, resource paths,
// backoff and the write rate limiter.
#include <gtest/gtest.h>

#include <set>

#include "controller/kube/backoff.h"
#include "controller/kube/watch_protocol.h"

namespace gantry::controller::kube {
namespace {

using Type = WatchEvent::Type;

TEST(WatchEvent, ParsesEachType) {
  struct Case {
    const char* line;
    Type type;
    const char* rv;
    int code;
  } cases[] = {
      {R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})",
       Type::kAdded, "5", 0},
      {R"({"type":"MODIFIED","object":{"metadata":{"resourceVersion":"6"}}})", Type::kModified,
       "6", 0},
      {R"({"type":"DELETED","object":{"metadata":{"resourceVersion":"7"}}})", Type::kDeleted, "7",
       0},
      {R"({"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"9"}}})",
       Type::kBookmark, "9", 0},
      {R"j({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired",)j"
       R"j("message":"too old resource version: 1 (5)"}})j",
       Type::kError, "", 410},
      {R"({"type":"ERROR","object":{"kind":"Status","code":500,"message":"boom"}})", Type::kError,
       "", 500},
  };
  for (const auto& c : cases) {
    auto e = parse_watch_event(c.line);
    ASSERT_TRUE(e.ok()) << c.line << ": " << e.error().message;
    EXPECT_EQ(e->type, c.type) << c.line;
    EXPECT_EQ(e->resource_version, c.rv) << c.line;
    EXPECT_EQ(e->error_code, c.code) << c.line;
  }
  auto gone = parse_watch_event(cases[4].line);
  EXPECT_EQ(gone->error_message, "too old resource version: 1 (5)");
}

TEST(WatchEvent, RejectsMalformedLines) {
  const char* bad[] = {
      "not json",
      "[1,2]",
      R"({"object":{}})",
      R"({"type":"ADDED"})",
      R"({"type":"ADDED","object":"x"})",
      R"({"type":"RENAMED","object":{"metadata":{"resourceVersion":"1"}}})",
      R"({"type":"ADDED","object":{"metadata":{"name":"no-rv"}}})",
  };
  for (const char* line : bad) EXPECT_FALSE(parse_watch_event(line).ok()) << line;
}

TEST(List, SetsKindAndReadsContinue) {
  auto page = parse_list(
      R"({"kind":"ServiceList","metadata":{"resourceVersion":"42","continue":"abc"},)"
      R"("items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"}}]})",
      "Service", "v1");
  ASSERT_TRUE(page.ok()) << page.error().message;
  EXPECT_EQ(page->resource_version, "42");
  EXPECT_EQ(page->continue_token, "abc");
  ASSERT_EQ(page->items.size(), 2u);
  for (const auto& it : page->items) {
    EXPECT_EQ(it["kind"], "Service");
    EXPECT_EQ(it["apiVersion"], "v1");
  }
  auto empty = parse_list(R"({"metadata":{"resourceVersion":"1"},"items":null})", "X", "v1");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->items.empty());
  EXPECT_FALSE(parse_list(R"({"items":[]})", "X", "v1").ok());  // no resourceVersion
  EXPECT_FALSE(parse_list(R"({"metadata":{"resourceVersion":"1"},"items":{}})", "X", "v1").ok());
}

TEST(StatusMessage, PrefersTheStatusMessage) {
  EXPECT_EQ(status_message(R"({"kind":"Status","message":"services is forbidden"})"),
            "services is forbidden");
  EXPECT_EQ(status_message("plain\ntext"), "plain text");
}

TEST(LineSplitter, SplitsAcrossChunks) {
  struct Case {
    std::vector<std::string> chunks;
    std::vector<std::string> lines;
    size_t pending;
  } cases[] = {
      {{"a\nb\n"}, {"a", "b"}, 0},
      {{"ab", "c\nd", "e\n"}, {"abc", "de"}, 0},
      {{"x\r\n\n\ny"}, {"x"}, 1},
      {{"", "\n", "tail"}, {}, 4},
  };
  for (const auto& c : cases) {
    LineSplitter s;
    std::vector<std::string> got;
    for (const auto& ch : c.chunks) {
      auto r = s.feed(ch, [&](std::string_view l) {
        got.emplace_back(l);
        return true;
      });
      ASSERT_TRUE(r.ok());
    }
    EXPECT_EQ(got, c.lines);
    EXPECT_EQ(s.pending(), c.pending);
  }
}

TEST(LineSplitter, StopsWhenAskedAndBoundsLines) {
  LineSplitter s;
  int n = 0;
  auto r = s.feed("1\n2\n3\n", [&](std::string_view) { return ++n < 2; });
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(n, 2);

  LineSplitter small(4);
  EXPECT_TRUE(small.feed("abcd", [](std::string_view) { return true; }).ok());
  EXPECT_FALSE(small.feed("e", [](std::string_view) { return true; }).ok());
}

TEST(Resource, Paths) {
  struct Case {
    Resource r;
    const char* ns;
    const char* path;
    const char* describe;
  } cases[] = {
      {{"Service", "v1", "services", true}, "", "/api/v1/services", "services"},
      {{"Service", "v1", "services", true}, "web", "/api/v1/namespaces/web/services",
       "services in namespace web"},
      {{"EndpointSlice", "discovery.k8s.io/v1", "endpointslices", true}, "",
       "/apis/discovery.k8s.io/v1/endpointslices", "endpointslices.discovery.k8s.io"},
      {{"IngressClass", "networking.k8s.io/v1", "ingressclasses", false}, "web",
       "/apis/networking.k8s.io/v1/ingressclasses", "ingressclasses.networking.k8s.io"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(c.r.collection_path(c.ns), c.path);
    EXPECT_EQ(c.r.describe(c.ns), c.describe);
  }
  Resource gr{"GatewayRoute", "gantry.dev/v1alpha1", "gatewayroutes", true};
  EXPECT_EQ(gr.object_path("default", "shop"),
            "/apis/gantry.dev/v1alpha1/namespaces/default/gatewayroutes/shop");
}

TEST(UrlEscape, KeepsUnreservedOnly) {
  EXPECT_EQ(url_escape("abc-._~09"), "abc-._~09");
  EXPECT_EQ(url_escape("a=b&c/d+"), "a%3Db%26c%2Fd%2B");
}

TEST(Backoff, DoublesWithJitterUpToTheCap) {
  using ms = std::chrono::milliseconds;
  for (uint64_t seed : {1u, 2u, 3u, 99u}) {
    Backoff b(seed);
    int64_t base = 800;
    std::set<int64_t> seen;
    for (int i = 0; i < 12; ++i) {
      int64_t d = b.next().count();
      seen.insert(d);
      EXPECT_GE(d, std::min<int64_t>(base * 8 / 10, 30000)) << "step " << i;
      EXPECT_LE(d, 30000) << "step " << i;
      EXPECT_LT(d, base * 12 / 10 + 1) << "step " << i;
      base = std::min<int64_t>(base * 2, 30000);
    }
    EXPECT_GT(seen.size(), 3u);  // jittered, not constant
    b.reset();
    EXPECT_LT(b.next(), ms(1000));
  }
}

TEST(TokenBucket, BurstThenRate) {
  using Clock = TokenBucket::Clock;
  Clock::time_point t0{};
  TokenBucket b(20, 30, t0);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(b.take(t0), Clock::duration::zero()) << i;
  // The 31st waits 1/20 s, the 32nd 2/20 s.
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(b.take(t0)).count(), 50);
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(b.take(t0)).count(), 100);
  // A second later 20 tokens came back, minus the two borrowed.
  Clock::time_point t1 = t0 + std::chrono::seconds(1);
  for (int i = 0; i < 18; ++i) EXPECT_EQ(b.take(t1), Clock::duration::zero()) << i;
  EXPECT_GT(b.take(t1), Clock::duration::zero());
}

}  // namespace
}  // namespace gantry::controller::kube
