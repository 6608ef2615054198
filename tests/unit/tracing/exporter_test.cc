// The exporter without a collector: endpoint parsing, the bounded queue that
// drops and counts, and a failed export counted (nothing listens on the port).
#include "proxy/tracing/exporter.h"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

namespace gantry::tracing {
namespace {

TEST(Endpoint, Parse) {
  struct Case {
    std::string url;
    bool ok;
    std::string host;
    uint16_t port;
    std::string path;
  };
  const std::vector<Case> cases = {
      {"http://127.0.0.1:4318/v1/traces", true, "127.0.0.1", 4318, "/v1/traces"},
      {"http://collector", true, "collector", 4318, "/v1/traces"},
      {"http://collector/", true, "collector", 4318, "/v1/traces"},
      {"http://collector:9/otlp/v1/traces", true, "collector", 9, "/otlp/v1/traces"},
      {"http://[::1]:4318", true, "::1", 4318, "/v1/traces"},
      {"https://collector:4318", false, "", 0, ""},
      {"collector:4318", false, "", 0, ""},
      {"http://:4318", false, "", 0, ""},
      {"http://c:0", false, "", 0, ""},
      {"http://c:70000", false, "", 0, ""},
      {"http://c:x", false, "", 0, ""},
      {"http://[::1", false, "", 0, ""},
  };
  for (const auto& c : cases) {
    auto e = parse_endpoint(c.url);
    EXPECT_EQ(e.ok(), c.ok) << c.url;
    if (!e.ok() || !c.ok) continue;
    EXPECT_EQ(e->host, c.host) << c.url;
    EXPECT_EQ(e->port, c.port) << c.url;
    EXPECT_EQ(e->path, c.path) << c.url;
  }
}

// A loopback port with nothing listening (bound, then closed).
uint16_t closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST(Exporter, FullQueueDropsAndCountsWithoutBlocking) {
  ExporterOptions o;
  o.endpoint.host = "127.0.0.1";
  o.endpoint.port = closed_port();
  o.queue_spans = 4;
  Exporter ex(o);  // not started: nothing drains the queue
  for (int i = 0; i < 10; ++i) ex.submit(Span{});
  EXPECT_EQ(ex.dropped(), 6u);
  EXPECT_EQ(ex.exported(), 0u);
}

TEST(Exporter, UnreachableCollectorCountsErrorsAndDrops) {
  ExporterOptions o;
  o.endpoint.host = "127.0.0.1";
  o.endpoint.port = closed_port();
  o.interval = std::chrono::milliseconds(20);
  Exporter ex(o);
  ex.start();
  ex.submit(Span{});
  ex.submit(Span{});
  for (int i = 0; i < 200 && ex.export_errors() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(ex.export_errors(), 1u);
  EXPECT_EQ(ex.dropped(), 2u);
  EXPECT_EQ(ex.exported(), 0u);
}

}  // namespace
}  // namespace gantry::tracing
