// Tests of the glue between the request path and the response cache
// (proxy/filters/response_capture.h): cache keys, the header fields worth
// storing, decoding a captured chunked body, and the mirror's shadow Host.
#include "proxy/filters/response_capture.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proxy/http/parser.h"

namespace gantry::filters {
namespace {

TEST(CacheKey, NamesSchemeHostPathAndQuery) {
  struct Case {
    bool tls;
    const char* host;
    const char* path;
    const char* query;
    const char* want;
  };
  const Case cases[] = {
      {false, "a.example.com", "/x", "", "http://a.example.com/x"},
      {true, "a.example.com", "/x", "", "https://a.example.com/x"},
      {false, "a.example.com", "/x", "p=1&q=2", "http://a.example.com/x?p=1&q=2"},
      {false, "b.example.com", "/", "", "http://b.example.com/"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(cache_key(c.tls, c.host, c.path, c.query), c.want) << c.want;
  // Distinct requests never share a key.
  EXPECT_NE(cache_key(false, "a", "/x", ""), cache_key(true, "a", "/x", ""));
  EXPECT_NE(cache_key(false, "a", "/x", "1"), cache_key(false, "a", "/x", ""));
  EXPECT_NE(cache_key(false, "a", "/x?", ""), cache_key(false, "a", "/x", ""));
}

TEST(StorableHeaders, DropsHopByHopLengthAndRequestId) {
  const std::vector<http::Header> in = {
      {"Content-Type", "text/plain"},
      {"Connection", "keep-alive, X-Hop"},
      {"X-Hop", "1"},
      {"Keep-Alive", "timeout=5"},
      {"Transfer-Encoding", "chunked"},
      {"Content-Length", "12"},
      {"X-Request-Id", "abc"},
      {"Cache-Control", "max-age=60"},
      {"Age", "3"},
      {"Vary", "Accept"},
  };
  const std::vector<std::pair<std::string, std::string>> want = {{"Content-Type", "text/plain"},
                                                                 {"Cache-Control", "max-age=60"},
                                                                 {"Age", "3"},
                                                                 {"Vary", "Accept"}};
  EXPECT_EQ(storable_headers(in), want);
}

TEST(Dechunk, DecodesValidBodies) {
  struct Case {
    const char* raw;
    const char* want;
  };
  const Case cases[] = {
      {"0\r\n\r\n", ""},
      {"5\r\nhello\r\n0\r\n\r\n", "hello"},
      {"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"},
      {"A;ext=1\r\n0123456789\r\n0\r\n\r\n", "0123456789"},
      {"3\r\nabc\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n", "abc"},
      {"00003\r\nabc\r\n0\r\n\r\n", "abc"},
  };
  for (const auto& c : cases) {
    std::string out;
    EXPECT_TRUE(dechunk(c.raw, out)) << c.raw;
    EXPECT_EQ(out, c.want) << c.raw;
  }
}

TEST(Dechunk, RefusesIncompleteOrMalformedBodies) {
  const char* cases[] = {
      "",                       // nothing
      "5\r\nhello\r\n",         // no last chunk
      "5\r\nhell",              // short data
      "5\r\nhelloXX0\r\n\r\n",  // no CRLF after the data
      "zz\r\n\r\n",             // not hex
      "0\r\n",                  // no final CRLF
      "0\r\nX-Trailer: 1\r\n",  // trailers not ended
  };
  for (const char* c : cases) {
    std::string out;
    EXPECT_FALSE(dechunk(c, out)) << c;
  }
}

TEST(Dechunk, AgreesWithTheStreamingDecoder) {
  const std::string raw =
      "4\r\nWiki\r\n5;x=y\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: v\r\n\r\n";
  http::ChunkedDecoder d;
  auto step = d.feed(raw);
  ASSERT_TRUE(step.ok());
  ASSERT_TRUE(step->done);
  std::string out;
  ASSERT_TRUE(dechunk(raw, out));
  EXPECT_EQ(out.size(), d.data_bytes());
  EXPECT_EQ(out, "Wikipedia in\r\n\r\nchunks.");
}

TEST(ShadowHost, AppendsShadowBeforeThePort) {
  struct Case {
    const char* host;
    const char* want;
  };
  const Case cases[] = {
      {"api.example.com", "api.example.com-shadow"},
      {"api.example.com:8080", "api.example.com-shadow:8080"},
      {"10.0.0.1:80", "10.0.0.1-shadow:80"},
      {"[::1]:8080", "[::1]-shadow:8080"},
      {"[::1]", "[::1]-shadow"},
      {"", "-shadow"},
  };
  for (const auto& c : cases) EXPECT_EQ(shadow_host(c.host), c.want) << c.host;
}

}  // namespace
}  // namespace gantry::filters
