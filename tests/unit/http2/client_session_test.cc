// Unit tests of the HTTP/2 upstream codec, talking in memory to the proxy's
// own server codec: unary and streaming exchanges with trailers both ways,
// cancel as RST_STREAM CANCEL, the server's concurrency limit honoured, and
// response windows that reopen only as the caller consumes.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "proxy/http2/client_session.h"
#include "proxy/http2/server_session.h"

namespace gantry::http2 {
namespace {

struct Backend : Handler {  // the server side: answers as told
  ServerSession* s = nullptr;
  std::map<int32_t, RequestHead> heads;
  std::map<int32_t, std::string> bodies;
  std::map<int32_t, std::vector<Field>> trailers;
  std::map<int32_t, ErrorCode> closed;
  bool answer = true;
  std::string answer_body = "pong";
  void on_request(int32_t id, RequestHead&& h, bool end) override {
    heads[id] = std::move(h);
    if (end) reply(id);
  }
  void on_data(int32_t id, std::string_view d) override {
    bodies[id].append(d);
    s->consume(id, d.size());
  }
  void on_request_end(int32_t id, const std::vector<Field>* t) override {
    if (t) trailers[id] = *t;
    reply(id);
  }
  void on_closed(int32_t id, ErrorCode c) override { closed[id] = c; }
  std::map<int32_t, std::string> pending;
  void reply(int32_t id) {
    if (!answer) return;
    s->respond(id, 200, std::vector<Field>{{"content-type", "application/grpc"}}, false);
    pending[id] = answer_body;
    write(id);
  }
  void write(int32_t id) {  // as much as the codec takes; the rest on_writable
    std::string& p = pending[id];
    p.erase(0, s->send_data(id, p));
    if (p.empty()) s->end_response(id, std::vector<Field>{{"grpc-status", "0"}});
  }
  void on_writable(int32_t id) override {
    if (pending.count(id) && !pending[id].empty()) write(id);
  }
};

struct Caller : ClientHandler {  // the client side: records
  std::map<int32_t, int> status;
  std::map<int32_t, std::string> body;
  std::map<int32_t, std::vector<Field>> trailers;
  std::map<int32_t, ErrorCode> closed;
  std::vector<int32_t> ended;
  void on_response(int32_t id, int st, std::vector<Field>&&, bool) override { status[id] = st; }
  void on_data(int32_t id, std::string_view d) override { body[id].append(d); }
  void on_response_end(int32_t id, const std::vector<Field>* t) override {
    ended.push_back(id);
    if (t) trailers[id] = *t;
  }
  void on_closed(int32_t id, ErrorCode c) override { closed[id] = c; }
};

struct Pair {
  Backend b;
  Caller c;
  std::unique_ptr<ServerSession> srv;
  std::unique_ptr<ClientSession> cli;
  explicit Pair(Limits l = {}) {
    srv = std::move(ServerSession::create(l, b).value());
    b.s = srv.get();
    cli = std::move(ClientSession::create({}, c).value());
  }
  void pump() {
    for (int i = 0; i < 1000; ++i) {
      std::string up(cli->output());
      cli->written(up.size());
      if (!up.empty()) {
        EXPECT_TRUE(srv->receive(up).ok());
      }
      std::string down(srv->output());
      srv->written(down.size());
      if (!down.empty()) {
        EXPECT_TRUE(cli->receive(down).ok());
      }
      if (up.empty() && down.empty()) return;
    }
  }
};

RequestHead post(std::string path) {
  RequestHead h;
  h.method = "POST";
  h.scheme = "http";
  h.authority = "grpc.example";
  h.path = std::move(path);
  h.headers = {{"content-type", "application/grpc"}, {"te", "trailers"}, {"connection", "x"}};
  return h;
}

TEST(Http2ClientSession, UnaryCallWithTrailersBothWays) {
  Pair p;
  auto id = p.cli->request(post("/pkg.Svc/Call"), false);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(p.cli->send_data(*id, "ping"), 4u);
  p.cli->end_request(*id, std::vector<Field>{{"x-sum", "1"}});
  p.pump();
  ASSERT_EQ(p.b.heads.count(*id), 1u);
  EXPECT_EQ(p.b.heads[*id].path, "/pkg.Svc/Call");
  for (const Field& f : p.b.heads[*id].headers) EXPECT_NE(f.name, "connection");
  EXPECT_EQ(p.b.bodies[*id], "ping");
  ASSERT_EQ(p.b.trailers[*id].size(), 1u);
  EXPECT_EQ(p.c.status[*id], 200);
  EXPECT_EQ(p.c.body[*id], "pong");
  ASSERT_EQ(p.c.trailers[*id].size(), 1u);
  EXPECT_EQ(p.c.trailers[*id][0].name, "grpc-status");
  EXPECT_EQ(p.c.closed[*id], ErrorCode::kNoError);
  EXPECT_EQ(p.cli->open_streams(), 0u);
}

TEST(Http2ClientSession, CancelReachesTheBackendAsRstStreamCancel) {
  Pair p;
  p.b.answer = false;
  auto id = p.cli->request(post("/pkg.Svc/Stream"), false);
  ASSERT_TRUE(id.ok());
  p.cli->send_data(*id, "first");
  p.pump();
  EXPECT_EQ(p.b.bodies[*id], "first");
  p.cli->reset(*id, ErrorCode::kCancel);
  p.pump();
  EXPECT_EQ(p.b.closed[*id], ErrorCode::kCancel);
  EXPECT_EQ(p.c.closed[*id], ErrorCode::kCancel);
}

TEST(Http2ClientSession, HonoursTheServersConcurrencyLimit) {
  Limits l;
  l.max_concurrent_streams = 2;
  Pair p(l);
  p.b.answer = false;
  p.pump();  // SETTINGS exchanged
  ASSERT_TRUE(p.cli->request(post("/a"), true).ok());
  ASSERT_TRUE(p.cli->request(post("/b"), true).ok());
  EXPECT_FALSE(p.cli->can_open());
  EXPECT_FALSE(p.cli->request(post("/c"), true).ok()) << "the pool opens another connection instead";
  p.pump();
  EXPECT_EQ(p.b.heads.size(), 2u);
}

TEST(Http2ClientSession, ResponseWindowReopensOnlyAsConsumed) {
  Pair p;
  p.b.answer_body = std::string(1 << 20, 'r');
  auto id = p.cli->request(post("/big"), true);
  ASSERT_TRUE(id.ok());
  p.pump();
  EXPECT_EQ(p.c.body[*id].size(), 256u * 1024) << "the client's stream window bounds it";
  size_t consumed = 0;
  for (int i = 0; i < 100 && p.c.body[*id].size() < (1u << 20); ++i) {
    const size_t have = p.c.body[*id].size();
    p.cli->consume(*id, have - consumed);
    consumed = have;
    p.pump();
    EXPECT_LE(p.c.body[*id].size() - consumed, 256u * 1024);
  }
  EXPECT_EQ(p.c.body[*id], p.b.answer_body);
  ASSERT_EQ(p.c.trailers[*id].size(), 1u);
}

// The server's SETTINGS mark the connection ready; a PING is answered (the
// keepalive's proof of life); goaway() closes the connection to new streams
// and reaches the server as GOAWAY(NO_ERROR).
TEST(Http2ClientSession, SettingsPingAndGoaway) {
  Pair p;
  EXPECT_FALSE(p.cli->settings_received());
  p.pump();
  EXPECT_TRUE(p.cli->settings_received());
  p.cli->ping();
  std::string up(p.cli->output());
  p.cli->written(up.size());
  ASSERT_TRUE(p.srv->receive(up).ok());
  EXPECT_FALSE(std::string(p.srv->output()).empty());  // the ack
  p.pump();
  ASSERT_TRUE(p.cli->can_open());
  p.cli->goaway(ErrorCode::kNoError);
  EXPECT_FALSE(p.cli->can_open());
  EXPECT_FALSE(p.cli->request(post("/late"), true).ok());
  EXPECT_FALSE(p.srv->goaway_received().has_value());
  p.pump();
  ASSERT_TRUE(p.srv->goaway_received().has_value());
  EXPECT_EQ(*p.srv->goaway_received(), ErrorCode::kNoError);
}

// RFC 8441: an extended CONNECT goes only to a server whose SETTINGS enable
// it, and then carries :protocol and a tunnel's DATA both ways.
TEST(Http2ClientSession, ExtendedConnectOnlyWhenTheServerEnablesIt) {
  RequestHead ws;
  ws.method = "CONNECT";
  ws.protocol = "websocket";
  ws.scheme = "http";
  ws.authority = "ws.example";
  ws.path = "/chat";
  ws.headers = {{"sec-websocket-version", "13"}};

  Limits without;
  without.connect_protocol = false;
  Pair no(without);
  no.pump();  // SETTINGS exchanged
  EXPECT_FALSE(no.cli->connect_protocol());
  EXPECT_FALSE(no.cli->request(ws, false).ok());
  no.pump();
  EXPECT_TRUE(no.b.heads.empty());  // nothing was sent

  Pair p;
  p.b.answer = false;
  p.pump();
  ASSERT_TRUE(p.cli->connect_protocol());
  auto id = p.cli->request(ws, false);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(p.cli->send_data(*id, "hello"), 5u);
  p.pump();
  ASSERT_EQ(p.b.heads.count(*id), 1u);
  EXPECT_EQ(p.b.heads[*id].method, "CONNECT");
  EXPECT_EQ(p.b.heads[*id].protocol, "websocket");
  EXPECT_EQ(p.b.heads[*id].path, "/chat");
  EXPECT_EQ(p.b.bodies[*id], "hello");
  p.srv->respond(*id, 200, std::vector<Field>{}, false);  // the tunnel opens
  EXPECT_EQ(p.srv->send_data(*id, "world"), 5u);
  p.pump();
  EXPECT_EQ(p.c.status[*id], 200);
  EXPECT_EQ(p.c.body[*id], "world");
  EXPECT_EQ(p.c.closed.count(*id), 0u);  // still open both ways
  p.cli->end_request(*id);
  p.srv->end_response(*id);
  p.pump();
  EXPECT_EQ(p.c.closed[*id], ErrorCode::kNoError);
}

}  // namespace
}  // namespace gantry::http2
