// Unit tests of the HTTP/2 server codec, driven in-process by libnghttp2's own
// client session (requests, bodies, trailers, PING/SETTINGS/WINDOW_UPDATE and
// RST_STREAM floods) and, where no well-behaved client would produce the frames
// (empty frames, CONTINUATION floods, PRIORITY floods), by frames written byte
// by byte. Every limit and flood case asserts the error code that ends the
// stream or the connection, and that other streams keep being served.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "proxy/http2/server_session.h"

namespace gantry::http2 {
namespace {

uint64_t fixed_clock() { return 1000; }

// ---- raw frames ------------------------------------------------------------
struct Frame {
  uint8_t type;
  uint8_t flags;
  int32_t stream;
  std::string payload;
};

std::string frame(uint8_t type, uint8_t flags, int32_t stream, std::string_view payload = {}) {
  std::string f;
  const size_t n = payload.size();
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  f.push_back(static_cast<char>((stream >> 24) & 0x7f));
  f.push_back(static_cast<char>(stream >> 16));
  f.push_back(static_cast<char>(stream >> 8));
  f.push_back(static_cast<char>(stream));
  f.append(payload);
  return f;
}

std::vector<Frame> parse_frames(std::string_view b) {
  std::vector<Frame> out;
  while (b.size() >= 9) {
    const auto* p = reinterpret_cast<const uint8_t*>(b.data());
    const size_t n = (size_t{p[0]} << 16) | (size_t{p[1]} << 8) | p[2];
    if (b.size() < 9 + n) break;
    Frame f{p[3], p[4],
            static_cast<int32_t>(((uint32_t{p[5]} & 0x7f) << 24) | (uint32_t{p[6]} << 16) |
                                 (uint32_t{p[7]} << 8) | p[8]),
            std::string(b.substr(9, n))};
    out.push_back(std::move(f));
    b.remove_prefix(9 + n);
  }
  return out;
}

uint32_t be32(std::string_view s, size_t at) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data() + at);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// The HPACK block of a minimal GET (literal fields without indexing), plus extras.
std::string hpack(const std::vector<std::pair<std::string, std::string>>& fields) {
  nghttp2_hd_deflater* d = nullptr;
  nghttp2_hd_deflate_new(&d, 4096);
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : fields) {
    nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  }
  std::string out(nghttp2_hd_deflate_bound(d, nv.data(), nv.size()), '\0');
  const auto n = nghttp2_hd_deflate_hd(d, reinterpret_cast<uint8_t*>(out.data()), out.size(),
                                       nv.data(), nv.size());
  nghttp2_hd_deflate_del(d);
  out.resize(static_cast<size_t>(n));
  return out;
}

const std::vector<std::pair<std::string, std::string>> kGet = {
    {":method", "GET"}, {":scheme", "http"}, {":authority", "a.example"}, {":path", "/"}};

std::string client_settings() { return std::string(kClientPreface) + frame(NGHTTP2_SETTINGS, 0, 0); }

// ---- the server side: records events, answers when told to ------------------
struct Recorder : Handler {
  std::map<int32_t, RequestHead> heads;
  std::map<int32_t, std::string> bodies;
  std::map<int32_t, std::vector<Field>> trailers;
  std::map<int32_t, ErrorCode> closed;
  std::vector<int32_t> ended;
  std::vector<int32_t> writable;
  std::function<void(int32_t, bool)> on_head;  // answer policy
  std::function<void(int32_t)> on_end;

  void on_request(int32_t id, RequestHead&& h, bool end_stream) override {
    heads[id] = std::move(h);
    if (end_stream) ended.push_back(id);
    if (on_head) on_head(id, end_stream);
    if (end_stream && on_end) on_end(id);
  }
  void on_data(int32_t id, std::string_view d) override { bodies[id].append(d); }
  void on_request_end(int32_t id, const std::vector<Field>* t) override {
    ended.push_back(id);
    if (t) trailers[id] = *t;
    if (on_end) on_end(id);
  }
  void on_closed(int32_t id, ErrorCode code) override { closed[id] = code; }
  void on_writable(int32_t id) override { writable.push_back(id); }
};

// ---- the client side: libnghttp2's client session ---------------------------
struct Client {
  nghttp2_session* s = nullptr;
  std::map<int32_t, int> status;
  std::map<int32_t, std::map<std::string, std::string>> headers;  // response fields
  std::map<int32_t, std::string> body;
  std::map<int32_t, std::vector<std::pair<std::string, std::string>>> trailers;
  std::map<int32_t, uint32_t> rst;  // stream -> code received
  std::vector<std::pair<int32_t, uint32_t>> goaways;  // last stream id, code
  std::set<int32_t> done;
  bool auto_window = true;

  explicit Client(bool auto_window_update = true, uint32_t window = 65535) : auto_window(auto_window_update) {
    nghttp2_session_callbacks* cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v,
               size_t vl, uint8_t, void* u) {
          auto& c = *static_cast<Client*>(u);
          std::string name(reinterpret_cast<const char*>(n), nl), value(reinterpret_cast<const char*>(v), vl);
          if (name == ":status") {
            c.status[f->hd.stream_id] = std::stoi(value);
          } else if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) {
            c.headers[f->hd.stream_id][name] = value;
          } else if (f->headers.cat == NGHTTP2_HCAT_HEADERS) {
            c.trailers[f->hd.stream_id].emplace_back(name, value);
          }
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* u) {
          static_cast<Client*>(u)->body[id].append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
          auto& c = *static_cast<Client*>(u);
          if (f->hd.type == NGHTTP2_RST_STREAM) c.rst[f->hd.stream_id] = f->rst_stream.error_code;
          if (f->hd.type == NGHTTP2_GOAWAY) c.goaways.emplace_back(f->goaway.last_stream_id, f->goaway.error_code);
          if ((f->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
              (f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS)) {
            c.done.insert(f->hd.stream_id);
          }
          return 0;
        });
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    if (!auto_window) nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_session_client_new2(&s, cb, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, window}};
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, iv, 1);
  }
  ~Client() { nghttp2_session_del(s); }

  // Everything the client session has queued, as bytes (preface first).
  // Sends what is queued now into `pending`, so a later submit (an RST_STREAM)
  // cannot cancel a request that was never written.
  std::string pending;
  void take_into_pending() { pending += take_raw(); }
  std::string take() {
    std::string out = std::move(pending);
    pending.clear();
    out += take_raw();
    return out;
  }
  std::string take_raw() {
    std::string out;
    const uint8_t* p;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(s, &p)) > 0) out.append(reinterpret_cast<const char*>(p), n);
    return out;
  }
  int32_t get(std::vector<std::pair<std::string, std::string>> extra = {}, bool with_body = false,
              nghttp2_data_provider* body_provider = nullptr) {
    auto fields = kGet;
    for (auto& f : extra) fields.push_back(f);
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : fields) {
      nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    (void)with_body;
    return nghttp2_submit_request(s, nullptr, nv.data(), nv.size(), body_provider, this);
  }
};

// One connection: a server session and a client session joined in memory.
struct Conn {
  Recorder h;
  std::unique_ptr<ServerSession> srv;
  Limits limits;
  std::string wire_out;  // everything the server wrote
  bool server_failed = false;

  explicit Conn(Limits l = {}) : limits(l) {
    auto r = ServerSession::create(limits, h, fixed_clock);
    EXPECT_TRUE(r.ok());
    srv = std::move(r.value());
  }
  // Feeds bytes to the server; returns what it wrote back.
  std::string feed(std::string_view in) {
    if (!in.empty() && !srv->receive(in).ok()) server_failed = true;
    std::string out(srv->output());
    srv->written(out.size());
    wire_out += out;
    return out;
  }
  // Runs client <-> server until neither has anything to say.
  void pump(Client& c, int rounds = 1000) {
    for (int i = 0; i < rounds; ++i) {
      std::string up = c.take();
      std::string down = feed(up);
      if (!down.empty()) nghttp2_session_mem_recv(c.s, reinterpret_cast<const uint8_t*>(down.data()), down.size());
      if (up.empty() && down.empty()) return;
    }
  }
  std::optional<uint32_t> goaway_code() const {
    for (const Frame& f : parse_frames(wire_out)) {
      if (f.type == NGHTTP2_GOAWAY && f.payload.size() >= 8) return be32(f.payload, 4);
    }
    return std::nullopt;
  }
  std::optional<uint32_t> rst_code(int32_t id) const {
    for (const Frame& f : parse_frames(wire_out)) {
      if (f.type == NGHTTP2_RST_STREAM && f.stream == id && f.payload.size() == 4) return be32(f.payload, 0);
    }
    return std::nullopt;
  }
};

void answer_ok(Conn& c, int32_t id) {
  std::vector<Field> hdr = {{"content-type", "text/plain"}};
  c.srv->respond(id, 200, hdr, false);
  c.srv->send_data(id, "hello");
  c.srv->end_response(id);
}

// ---- tests -----------------------------------------------------------------

TEST(Http2Preface, FirstBytesOfACleartextConnection) {
  const std::string p(kClientPreface);
  struct Case {
    std::string bytes;
    PrefaceMatch want;
  } cases[] = {
      {"P", PrefaceMatch::kPartial},
      {"PRI * HTTP/2.0\r\n", PrefaceMatch::kPartial},
      {p.substr(0, p.size() - 1), PrefaceMatch::kPartial},
      {p, PrefaceMatch::kFull},
      {p + "\x00\x00\x00\x04\x00\x00\x00\x00\x00", PrefaceMatch::kFull},  // + SETTINGS
      {"POST / HTTP/1.1\r\n", PrefaceMatch::kNo},
      {"PUT", PrefaceMatch::kNo},
      {"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", PrefaceMatch::kNo},
      {"PRI * HTTP/1.1\r\n", PrefaceMatch::kNo},
      {"GET / HTTP/1.1\r\n", PrefaceMatch::kNo},
      {"pri * http/2.0\r\n\r\nsm\r\n\r\n", PrefaceMatch::kNo},
  };
  for (const auto& c : cases) EXPECT_EQ(match_preface(c.bytes), c.want) << c.bytes;
}

TEST(Http2ServerSession, ServesAGetAndAdvertisesItsLimits) {
  Conn c;
  c.h.on_end = [&](int32_t id) { answer_ok(c, id); };
  Client cl;
  const int32_t id = cl.get({{"user-agent", "t"}});
  c.pump(cl);
  ASSERT_EQ(c.h.heads.count(id), 1u);
  EXPECT_EQ(c.h.heads[id].method, "GET");
  EXPECT_EQ(c.h.heads[id].authority, "a.example");
  EXPECT_EQ(cl.status[id], 200);
  EXPECT_EQ(cl.body[id], "hello");
  EXPECT_EQ(c.h.closed[id], ErrorCode::kNoError);
  EXPECT_EQ(nghttp2_session_get_remote_settings(cl.s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS), 100u);
  EXPECT_EQ(nghttp2_session_get_remote_settings(cl.s, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE), 256u * 1024);
  EXPECT_EQ(nghttp2_session_get_remote_settings(cl.s, NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE), 64u * 1024);
  // The connection window was raised too.
  EXPECT_EQ(nghttp2_session_get_remote_window_size(cl.s), 1024 * 1024);
  EXPECT_EQ(c.srv->open_streams(), 0u);
}

// An answer relayed from an HTTP/1.1 upstream is handed over as views of its
// fields, names as the upstream wrote them: they go out in lower case, and
// the connection-specific ones not at all.
TEST(Http2ServerSession, AnswersFromFieldViewsInLowerCase) {
  Conn c;
  c.h.on_end = [&](int32_t id) {
    const std::vector<FieldView> fields = {{"Content-Type", "text/plain"},
                                           {"X-Served-By", "b1"},
                                           {"Connection", "close"},
                                           {"Transfer-Encoding", "chunked"},
                                           {"x-request-id", "0123456789abcdef0123456789abcdef"}};
    c.srv->respond(id, 200, fields, false);
    c.srv->send_data(id, "hello");
    c.srv->end_response(id);
  };
  Client cl;
  const int32_t id = cl.get();
  c.pump(cl);
  ASSERT_EQ(cl.status[id], 200);
  const std::map<std::string, std::string> want = {
      {"content-type", "text/plain"}, {"x-served-by", "b1"}, {"x-request-id", "0123456789abcdef0123456789abcdef"}};
  EXPECT_EQ(cl.headers[id], want);
  EXPECT_EQ(cl.body[id], "hello");
  EXPECT_FALSE(c.server_failed);
}

TEST(Http2ServerSession, JoinsCookieCrumbsAndTakesHostWithoutAuthority) {
  Conn c;
  c.h.on_end = [&](int32_t id) { answer_ok(c, id); };
  Client cl;
  const int32_t id = cl.get({{"cookie", "a=1"}, {"x-y", "z"}, {"cookie", "b=2"}});
  c.pump(cl);
  ASSERT_EQ(c.h.heads.count(id), 1u);
  int cookies = 0;
  for (const Field& f : c.h.heads[id].headers) {
    if (f.name == "cookie") {
      ++cookies;
      EXPECT_EQ(f.value, "a=1; b=2");
    }
  }
  EXPECT_EQ(cookies, 1);

  // No :authority: Host is used.
  Conn c2;
  std::string in = client_settings();
  in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1,
              hpack({{":method", "GET"}, {":scheme", "http"}, {":path", "/x"}, {"host", "h.example"}}));
  c2.feed(in);
  ASSERT_EQ(c2.h.heads.count(1), 1u);
  EXPECT_EQ(c2.h.heads[1].authority, "h.example");
}

// Requests the codec must refuse on their stream, while the connection goes on.
struct StreamCase {
  const char* name;
  std::vector<std::pair<std::string, std::string>> fields;
  std::optional<uint32_t> rst;   // RST_STREAM code expected
  std::optional<int> status;     // or a status answered
};

TEST(Http2ServerSession, RefusesMalformedRequestsOnTheirStreamOnly) {
  const std::string big(70 * 1024, 'x');
  const std::vector<StreamCase> cases = {
      {"authority differs from host", {{"host", "b.example"}}, NGHTTP2_PROTOCOL_ERROR, {}},
      {"connection header", {{"connection", "keep-alive"}}, NGHTTP2_PROTOCOL_ERROR, {}},
      {"keep-alive header", {{"keep-alive", "5"}}, NGHTTP2_PROTOCOL_ERROR, {}},
      {"proxy-connection header", {{"proxy-connection", "x"}}, NGHTTP2_PROTOCOL_ERROR, {}},
      {"transfer-encoding header", {{"transfer-encoding", "chunked"}}, NGHTTP2_PROTOCOL_ERROR, {}},
      {"upgrade header", {{"upgrade", "websocket"}}, NGHTTP2_PROTOCOL_ERROR, {}},
      {"te other than trailers", {{"te", "gzip"}}, NGHTTP2_PROTOCOL_ERROR, {}},
      {"upper-case name", {{"X-Big", "1"}}, NGHTTP2_PROTOCOL_ERROR, {}},
      {"header list over the limit", {{"x-big", big}}, {}, 431},
      {"many fields over the limit", {}, {}, 431},
  };
  for (const StreamCase& tc : cases) {
    SCOPED_TRACE(tc.name);
    Conn c;
    c.h.on_end = [&](int32_t id) { answer_ok(c, id); };
    std::string in = client_settings();
    auto fields = kGet;
    for (const auto& f : tc.fields) fields.push_back(f);
    if (std::string(tc.name) == "many fields over the limit") {
      for (int i = 0; i < 3000; ++i) fields.emplace_back("x-f" + std::to_string(i), "v");
    }
    const std::string block = hpack(fields);
    // Large blocks go out as HEADERS + CONTINUATION frames of 16 KiB.
    const size_t chunk = 16384;
    for (size_t off = 0; off < block.size(); off += chunk) {
      const bool first = off == 0, last = off + chunk >= block.size();
      const uint8_t flags = (last ? NGHTTP2_FLAG_END_HEADERS : 0) | (first ? NGHTTP2_FLAG_END_STREAM : 0);
      in += frame(first ? NGHTTP2_HEADERS : NGHTTP2_CONTINUATION, flags, 1, block.substr(off, chunk));
    }
    // A good request follows on stream 3.
    in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 3, hpack(kGet));
    c.feed(in);
    EXPECT_FALSE(c.server_failed);
    EXPECT_EQ(c.h.heads.count(1), 0u) << "a refused request never reaches the handler";
    if (tc.rst) {
      EXPECT_EQ(c.rst_code(1), tc.rst);
    }
    if (tc.status) {
      bool seen = false;
      nghttp2_hd_inflater* inf;
      nghttp2_hd_inflate_new(&inf);
      for (const Frame& f : parse_frames(c.wire_out)) {
        if (f.type != NGHTTP2_HEADERS) continue;
        std::string_view blk = f.payload;
        while (true) {
          nghttp2_nv nv;
          int fl = 0;
          auto n = nghttp2_hd_inflate_hd2(inf, &nv, &fl, reinterpret_cast<const uint8_t*>(blk.data()), blk.size(), 1);
          ASSERT_GE(n, 0);
          blk.remove_prefix(static_cast<size_t>(n));
          if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            if (f.stream == 1 && std::string_view((char*)nv.name, nv.namelen) == ":status") {
              EXPECT_EQ(std::string_view((char*)nv.value, nv.valuelen), std::to_string(*tc.status));
              seen = true;
            }
          }
          if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(inf);
            break;
          }
          if (n == 0 && !(fl & NGHTTP2_HD_INFLATE_EMIT)) break;
        }
      }
      nghttp2_hd_inflate_del(inf);
      EXPECT_TRUE(seen);
    }
    EXPECT_EQ(c.h.heads.count(3), 1u) << "the next stream is served";
    EXPECT_FALSE(c.goaway_code().has_value());
  }
}

// Floods: each sends n crafted frames. Just under the limit the connection is
// served (the counter is what decides); over it, GOAWAY with the expected code.
struct FloodCase {
  const char* name;
  std::function<std::string(int)> build;  // bytes after the client preface + SETTINGS
  int under;
  int over;
  uint32_t goaway;
};

std::string client_bytes(int n, const std::function<void(Client&, int)>& fill) {
  Client cl;
  cl.take();  // preface + SETTINGS are sent by the test itself
  std::string all;
  for (int i = 0; i < n; ++i) {
    fill(cl, i);
    all += cl.take();
  }
  return all;
}

TEST(Http2ServerSession, FloodsEndTheConnectionWithTheRightCode) {
  const std::vector<FloodCase> cases = {
      {"PING flood",
       [](int n) {
         return client_bytes(n, [](Client& cl, int) { nghttp2_submit_ping(cl.s, NGHTTP2_FLAG_NONE, nullptr); });
       },
       45, 60, NGHTTP2_ENHANCE_YOUR_CALM},
      {"SETTINGS flood",
       [](int n) {
         return client_bytes(n, [](Client& cl, int) { nghttp2_submit_settings(cl.s, NGHTTP2_FLAG_NONE, nullptr, 0); });
       },
       45, 60, NGHTTP2_ENHANCE_YOUR_CALM},
      {"WINDOW_UPDATE flood",
       [](int n) {
         return client_bytes(n, [](Client& cl, int) { nghttp2_submit_window_update(cl.s, NGHTTP2_FLAG_NONE, 0, 1); });
       },
       95, 150, NGHTTP2_ENHANCE_YOUR_CALM},
      {"PRIORITY flood",
       [](int n) {
         std::string b;
         const std::string prio("\x00\x00\x00\x00\x10", 5);
         for (int i = 0; i < n; ++i) b += frame(NGHTTP2_PRIORITY, 0, 2 * i + 1, prio);
         return b;
       },
       95, 150, NGHTTP2_ENHANCE_YOUR_CALM},
      {"empty DATA frames",
       [](int n) {
         std::string b = frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, hpack(kGet));
         for (int i = 0; i < n; ++i) b += frame(NGHTTP2_DATA, 0, 1);
         return b;
       },
       10, 11, NGHTTP2_ENHANCE_YOUR_CALM},
      {"empty padded DATA frames",
       [](int n) {
         std::string b = frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, hpack(kGet));
         for (int i = 0; i < n; ++i) b += frame(NGHTTP2_DATA, NGHTTP2_FLAG_PADDED, 1, std::string("\x02\x00\x00", 3));
         return b;
       },
       10, 11, NGHTTP2_ENHANCE_YOUR_CALM},
      {"empty CONTINUATION frames",
       [](int n) {
         std::string b = frame(NGHTTP2_HEADERS, 0, 1, hpack(kGet));
         for (int i = 0; i < n; ++i) b += frame(NGHTTP2_CONTINUATION, 0, 1);
         return b;
       },
       7, 20, NGHTTP2_ENHANCE_YOUR_CALM},
      {"CONTINUATION flood (CVE-2024-28182)",
       [](int n) {
         std::string b = frame(NGHTTP2_HEADERS, 0, 1, hpack(kGet));
         for (int i = 0; i < n; ++i) b += frame(NGHTTP2_CONTINUATION, 0, 1, hpack({{"x-a", "b"}}));
         return b;
       },
       7, 50, NGHTTP2_ENHANCE_YOUR_CALM},
      {"Rapid Reset (CVE-2023-44487)",
       [](int n) {
         return client_bytes(n, [](Client& cl, int) {
           const int32_t id = cl.get();
           cl.take_into_pending();
           nghttp2_submit_rst_stream(cl.s, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
         });
       },
       95, 150, NGHTTP2_ENHANCE_YOUR_CALM},
  };
  for (const FloodCase& tc : cases) {
    SCOPED_TRACE(tc.name);
    {
      Conn c;
      c.feed(client_settings() + tc.build(tc.under));
      EXPECT_FALSE(c.server_failed);
      EXPECT_FALSE(c.goaway_code().has_value()) << "under the limit the connection is served";
    }
    Conn c;
    c.feed(client_settings() + tc.build(tc.over));
    EXPECT_TRUE(c.server_failed);
    ASSERT_TRUE(c.goaway_code().has_value());
    EXPECT_EQ(*c.goaway_code(), tc.goaway);
    EXPECT_TRUE(c.srv->done()) << "nothing more is read or written";
  }
}

// Requests whose client cancels them now and then (gRPC does) are not a flood.
TEST(Http2ServerSession, OccasionalCancelsAreNotRapidReset) {
  Conn c;
  c.h.on_end = [&](int32_t id) { answer_ok(c, id); };
  Client cl;
  for (int i = 0; i < 400; ++i) {
    const int32_t id = cl.get();
    c.pump(cl);
    if (i % 3 == 0) {
      const int32_t id2 = cl.get();
      cl.take_into_pending();
      nghttp2_submit_rst_stream(cl.s, NGHTTP2_FLAG_NONE, id2, NGHTTP2_CANCEL);
      c.pump(cl);
    }
    EXPECT_EQ(cl.status[id], 200);
  }
  EXPECT_GE(c.srv->counters().premature_resets, 100u);
  EXPECT_FALSE(c.goaway_code().has_value());
}

// A gRPC client's PINGs (grpc-go sends one each time DATA arrives and none is
// outstanding: hundreds per second under load) are not a flood: beyond the
// bucket they are allowed in proportion to the streams and DATA frames.
TEST(Http2ServerSession, PingsInProportionToTrafficAreNotAFlood) {
  Conn c;
  c.h.on_end = [&](int32_t id) { answer_ok(c, id); };
  Client cl;
  for (int i = 0; i < 300; ++i) {
    const int32_t id = cl.get();
    c.pump(cl);
    nghttp2_submit_ping(cl.s, NGHTTP2_FLAG_NONE, nullptr);
    c.pump(cl);
    EXPECT_EQ(cl.status[id], 200);
  }
  EXPECT_EQ(c.srv->counters().pings, 300u);
  EXPECT_FALSE(c.goaway_code().has_value());
  // The same connection, now sending PINGs alone, is ended once the bucket
  // and the traffic's allowance are spent.
  for (int i = 0; i < 400 && !c.goaway_code().has_value(); ++i) {
    nghttp2_submit_ping(cl.s, NGHTTP2_FLAG_NONE, nullptr);
    c.pump(cl);
  }
  ASSERT_TRUE(c.goaway_code().has_value());
  EXPECT_EQ(*c.goaway_code(), NGHTTP2_ENHANCE_YOUR_CALM);
}

TEST(Http2ServerSession, TooManyConcurrentStreamsAreRefused) {
  Limits l;
  l.max_concurrent_streams = 3;
  Conn c(l);
  std::string in = client_settings();
  for (int32_t id = 1; id <= 9; id += 2) {
    in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, id, hpack(kGet));
  }
  c.feed(in);  // nobody answers: streams 1, 3, 5 stay open
  EXPECT_EQ(c.h.heads.size(), 3u);
  EXPECT_EQ(c.rst_code(7), NGHTTP2_REFUSED_STREAM);
  EXPECT_EQ(c.rst_code(9), NGHTTP2_REFUSED_STREAM);
  answer_ok(c, 1);
  c.feed({});  // the answer goes out and closes stream 1
  c.feed(frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 11, hpack(kGet)));
  EXPECT_EQ(c.h.heads.count(11), 1u) << "a slot freed by an answer is used again";
}

TEST(Http2ServerSession, RequestBodyWindowOpensOnlyAsTheHandlerConsumes) {
  Conn c;
  Client cl;
  std::string payload(1 << 20, 'b');  // 1 MiB, four times the stream window
  struct Src { std::string* p; size_t off = 0; } src{&payload};
  nghttp2_data_provider prov;
  prov.source.ptr = &src;
  prov.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                          nghttp2_data_source* s, void*) -> ssize_t {
    auto& st = *static_cast<Src*>(s->ptr);
    const size_t n = std::min(len, st.p->size() - st.off);
    std::memcpy(buf, st.p->data() + st.off, n);
    st.off += n;
    if (st.off == st.p->size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  };
  auto fields = kGet;
  fields[0].second = "POST";
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : fields) nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), 0});
  const int32_t id = nghttp2_submit_request(cl.s, nullptr, nv.data(), nv.size(), &prov, nullptr);
  c.pump(cl);
  EXPECT_EQ(c.h.bodies[id].size(), 256u * 1024) << "the stream window bounds what is buffered";
  // The handler passes bytes on in pieces; each consume lets more in.
  size_t consumed = 0;
  for (int i = 0; i < 100 && consumed < payload.size(); ++i) {
    const size_t have = c.h.bodies[id].size();
    c.srv->consume(id, have - consumed);
    consumed = have;
    c.pump(cl);
    EXPECT_LE(c.h.bodies[id].size() - consumed, 256u * 1024);
  }
  EXPECT_EQ(c.h.bodies[id], payload);
  ASSERT_EQ(c.h.ended.size(), 1u);
}

TEST(Http2ServerSession, ASlowReaderStopsTheResponseAtABoundedBuffer) {
  Conn c;
  Client cl(/*auto_window_update=*/false);
  const int32_t id = cl.get();
  c.pump(cl);
  ASSERT_EQ(c.h.heads.count(id), 1u);
  c.srv->respond(id, 200, std::vector<Field>{}, false);
  const std::string chunk(16 * 1024, 'r');
  size_t accepted = 0;
  for (int i = 0; i < 1000; ++i) {  // the handler writes whenever there is room
    const size_t n = c.srv->send_data(id, chunk);
    accepted += n;
    c.pump(cl);
    if (n == 0) break;
  }
  // The client's 64 KiB window plus the codec's 64 KiB buffer, no more.
  EXPECT_LE(accepted, 65535u + 64 * 1024 + chunk.size());
  EXPECT_EQ(c.srv->room(id), 0u);
  EXPECT_LE(cl.body[id].size(), 65535u);
  // The client reads: window updates reopen the stream, on_writable fires.
  nghttp2_session_consume(cl.s, id, cl.body[id].size());
  c.pump(cl);
  EXPECT_FALSE(c.h.writable.empty());
  EXPECT_GT(c.srv->room(id), 0u);
}

TEST(Http2ServerSession, TrailersBothWays) {
  Conn c;
  c.h.on_end = [&](int32_t id) {
    c.srv->respond(id, 200, std::vector<Field>{{"content-type", "application/grpc"}}, false);
    c.srv->send_data(id, "abc");
    c.srv->end_response(id, std::vector<Field>{{"grpc-status", "0"}, {"Grpc-Message", "ok"}});
  };
  std::string in = client_settings();
  in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, hpack(kGet));
  in += frame(NGHTTP2_DATA, 0, 1, "body");
  in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1,
              hpack({{"x-checksum", "42"}}));
  Client cl;
  c.feed(in);
  ASSERT_EQ(c.h.trailers[1].size(), 1u);
  EXPECT_EQ(c.h.trailers[1][0].name, "x-checksum");
  EXPECT_EQ(c.h.bodies[1], "body");
  // Decode the answer with a client-side view of the wire.
  const auto frames = parse_frames(c.wire_out);
  int headers = 0;
  bool end_on_trailers = false;
  for (const Frame& f : frames) {
    if (f.type == NGHTTP2_HEADERS && f.stream == 1) {
      ++headers;
      end_on_trailers = (f.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    }
  }
  EXPECT_EQ(headers, 2);
  EXPECT_TRUE(end_on_trailers);
  EXPECT_EQ(c.h.closed[1], ErrorCode::kNoError);
}

// A body the client sends only when the test says so.
struct HeldBody {
  std::string data;
  size_t off = 0;
  bool release = false;
  static ssize_t read(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                      nghttp2_data_source* src, void*) {
    auto& b = *static_cast<HeldBody*>(src->ptr);
    if (!b.release) return NGHTTP2_ERR_DEFERRED;
    const size_t n = std::min(len, b.data.size() - b.off);
    std::memcpy(buf, b.data.data() + b.off, n);
    b.off += n;
    if (b.off == b.data.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }
};

// The server answers (413) as soon as it has the head, before the body.
TEST(Http2ServerSession, AnAnswerBeforeTheBodyLetsASmallBodyEndAndStopsALargeOne) {
  for (const size_t size : {size_t{4096}, size_t{1} << 20}) {
    Conn c;
    Client cl;
    HeldBody body{std::string(size, 'x')};
    nghttp2_data_provider prov;
    prov.source.ptr = &body;
    prov.read_callback = HeldBody::read;
    const std::string len = std::to_string(size);
    std::vector<std::pair<std::string, std::string>> fields = {
        {":method", "POST"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/up"},
        {"content-length", len}};
    std::vector<nghttp2_nv> nv;
    for (const auto& [n, v] : fields)
      nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    const int32_t id = nghttp2_submit_request(cl.s, nullptr, nv.data(), nv.size(), &prov, nullptr);
    c.h.on_head = [&](int32_t sid, bool) {
      std::vector<Field> hdr = {{"content-type", "text/plain"}};
      c.srv->respond(sid, 413, hdr, false);
      c.srv->send_data(sid, "too large");
      c.srv->end_response(sid);
    };
    c.pump(cl);
    EXPECT_EQ(cl.status[id], 413) << size;
    EXPECT_EQ(cl.body[id], "too large") << size;
    body.release = true;
    nghttp2_session_resume_data(cl.s, id);
    c.pump(cl);
    if (size == 4096) {
      // Within the stream's window: read and dropped, the stream ends as the client ends it.
      EXPECT_FALSE(c.rst_code(id).has_value());
      EXPECT_EQ(body.off, size);
      EXPECT_EQ(c.h.closed.count(id), 1u);
      EXPECT_EQ(c.h.closed[id], ErrorCode::kNoError);
      EXPECT_TRUE(c.h.bodies[id].empty());  // nothing reaches the handler after the answer
      EXPECT_EQ(c.srv->open_streams(), 0u);
    } else {
      // Beyond it: stopped at once.
      EXPECT_EQ(c.rst_code(id), std::optional<uint32_t>(NGHTTP2_NO_ERROR));
      EXPECT_LT(body.off, size);
    }
    EXPECT_FALSE(c.server_failed);
  }
}

// RFC 8441: the codec advertises SETTINGS_ENABLE_CONNECT_PROTOCOL, hands an
// extended CONNECT over with its :protocol, and a 2xx answer is a tunnel: the
// server's END_STREAM half-closes it while the client goes on sending.
TEST(Http2ServerSession, ExtendedConnectIsATunnelThatHalfCloses) {
  Conn c;
  Client cl;
  c.pump(cl);  // the server's SETTINGS first, as a real client waits for them
  EXPECT_EQ(nghttp2_session_get_remote_settings(cl.s, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL), 1u);
  HeldBody body{std::string(100 * 1024, 'w')};
  nghttp2_data_provider prov;
  prov.source.ptr = &body;
  prov.read_callback = HeldBody::read;
  const std::vector<std::pair<std::string, std::string>> fields = {
      {":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "http"},
      {":authority", "ws.example"}, {":path", "/chat?room=1"}, {"sec-websocket-version", "13"}};
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : fields)
    nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  const int32_t id = nghttp2_submit_request(cl.s, nullptr, nv.data(), nv.size(), &prov, nullptr);
  c.h.on_head = [&](int32_t sid, bool end) {
    EXPECT_FALSE(end);
    c.srv->respond(sid, 200, std::vector<Field>{}, false);
    c.srv->send_data(sid, "from upstream");
    c.srv->end_response(sid);  // the upstream closed its side first
  };
  c.pump(cl);
  ASSERT_EQ(c.h.heads.count(id), 1u);
  EXPECT_EQ(c.h.heads[id].method, "CONNECT");
  EXPECT_EQ(c.h.heads[id].protocol, "websocket");
  EXPECT_EQ(c.h.heads[id].path, "/chat?room=1");
  EXPECT_EQ(cl.status[id], 200);
  EXPECT_EQ(cl.body[id], "from upstream");
  EXPECT_EQ(cl.done.count(id), 1u);
  // Half-closed, not stopped: no RST_STREAM, and the client's bytes still come in.
  EXPECT_FALSE(c.rst_code(id).has_value());
  body.release = true;
  nghttp2_session_resume_data(cl.s, id);
  c.pump(cl);
  for (int i = 0; i < 10 && c.h.bodies[id].size() < body.data.size(); ++i) {
    c.srv->consume(id, c.h.bodies[id].size());
    c.pump(cl);
  }
  EXPECT_EQ(c.h.bodies[id], body.data);
  EXPECT_FALSE(c.rst_code(id).has_value());
  EXPECT_EQ(c.h.closed.count(id), 1u);
  EXPECT_EQ(c.h.closed[id], ErrorCode::kNoError);
  EXPECT_EQ(c.srv->open_streams(), 0u);

  // A plain CONNECT (no :protocol) reaches the handler as one, to be refused there;
  // answered 4xx it is not a tunnel.
  const std::vector<std::pair<std::string, std::string>> plain = {{":method", "CONNECT"},
                                                                  {":authority", "db.internal:5432"}};
  nv.clear();
  for (const auto& [n, v] : plain)
    nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  HeldBody more{std::string(1 << 20, 'x')};
  prov.source.ptr = &more;
  const int32_t id2 = nghttp2_submit_request(cl.s, nullptr, nv.data(), nv.size(), &prov, nullptr);
  c.h.on_head = [&](int32_t sid, bool) {
    std::vector<Field> hdr = {{"content-length", "0"}};
    c.srv->respond(sid, 400, hdr, true);
  };
  c.pump(cl);
  EXPECT_EQ(c.h.heads[id2].method, "CONNECT");
  EXPECT_TRUE(c.h.heads[id2].protocol.empty());
  EXPECT_EQ(cl.status[id2], 400);
  EXPECT_EQ(c.rst_code(id2), std::optional<uint32_t>(NGHTTP2_NO_ERROR));  // an answer before the request's end
  EXPECT_FALSE(c.server_failed);
}

// :protocol on anything but CONNECT is malformed (nghttp2's RFC 8441 check).
TEST(Http2ServerSession, ProtocolPseudoHeaderOnlyWithConnect) {
  Conn c;
  c.h.on_end = [&](int32_t id) { answer_ok(c, id); };
  Client cl;
  c.pump(cl);
  const int32_t id = cl.get({{":protocol", "websocket"}});
  c.pump(cl);
  EXPECT_EQ(c.h.heads.count(id), 0u);
  EXPECT_EQ(c.rst_code(id), std::optional<uint32_t>(NGHTTP2_PROTOCOL_ERROR));
  EXPECT_FALSE(c.server_failed);
}

TEST(Http2ServerSession, DrainIsTwoStep) {
  Conn c;
  Client cl;
  const int32_t first = cl.get();
  c.pump(cl);
  c.srv->drain();
  c.pump(cl);
  ASSERT_GE(cl.goaways.size(), 1u);
  EXPECT_EQ(cl.goaways[0].first, (1u << 31) - 1) << "step one names no stream";
  // The PING was acknowledged by the client session: step two names the last stream.
  ASSERT_EQ(cl.goaways.size(), 2u);
  EXPECT_EQ(cl.goaways[1].first, first);
  EXPECT_EQ(cl.goaways[1].second, NGHTTP2_NO_ERROR);
  EXPECT_FALSE(c.srv->done()) << "the stream in flight is still served";
  answer_ok(c, first);
  c.pump(cl);
  EXPECT_EQ(cl.status[first], 200);
  EXPECT_TRUE(c.srv->done());
}

TEST(Http2ServerSession, HeadersOnASkippedStreamIdIsAConnectionError) {
  Conn c;
  std::string in = client_settings();
  in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 5, hpack(kGet));
  in += frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 3, hpack(kGet));
  c.feed(in);
  EXPECT_TRUE(c.server_failed);
  EXPECT_EQ(c.goaway_code(), NGHTTP2_PROTOCOL_ERROR);
  // Trailers on a stream the server already answered and closed are not an
  // error (the client may not have seen the end yet): they are ignored.
  Conn d;
  d.h.on_head = [&](int32_t id, bool) {
    d.srv->respond(id, 200, std::vector<Field>{}, true);
  };
  d.feed(client_settings() + frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 1, hpack(kGet)));
  d.feed(frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS, 3, hpack(kGet)));
  d.feed(frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, 1, hpack({{"x-t", "1"}})));
  EXPECT_FALSE(d.server_failed);
  EXPECT_FALSE(d.goaway_code().has_value());
}

TEST(Http2ServerSession, BadPrefaceFailsTheConnection) {
  Conn c;
  c.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(c.server_failed);
  EXPECT_TRUE(c.srv->done());
}

// An idle connection gives back the pages of libnghttp2's frame buffer, and
// of its stream map while that is empty (session_memory.h); while a stream is
// open, or output is queued, nothing is touched. Responses after a release are
// intact.
TEST(Http2ServerSession, AnIdleSessionGivesItsLargeBuffersBack) {
  Conn c;
  Client cl;
  // SETTINGS queued, not yet written: nothing goes.
  EXPECT_EQ(c.srv->release_idle_memory(), 0u);
  c.pump(cl);
  // No stream yet: the frame buffer (16,394 bytes) and the empty stream map
  // (4,096 bytes). libnghttp2 keeps closed streams in the map (for RFC 7540
  // priorities), so after a request only the frame buffer goes.
  EXPECT_EQ(c.srv->release_idle_memory(), 16394u + 4096u);
  c.h.on_end = [&](int32_t id) {
    std::vector<Field> hdr = {{"content-type", "text/plain"}};
    c.srv->respond(id, 200, hdr, false);
    c.srv->send_data(id, std::string(12000, 'x'));  // most of the frame buffer is written
    c.srv->end_response(id);
  };
  const int32_t first = cl.get();
  c.pump(cl);
  ASSERT_EQ(cl.status[first], 200);
  ASSERT_EQ(c.srv->open_streams(), 0u);
  EXPECT_EQ(c.srv->release_idle_memory(), 16394u);

  // A stream open: nothing is released.
  c.h.on_end = nullptr;
  const int32_t second = cl.get();
  c.pump(cl);
  ASSERT_EQ(c.srv->open_streams(), 1u);
  EXPECT_EQ(c.srv->release_idle_memory(), 0u);
  answer_ok(c, second);
  c.pump(cl);
  EXPECT_EQ(cl.body[second], "hello");

  // After a release, the session serves on as before.
  EXPECT_GT(c.srv->release_idle_memory(), 0u);
  c.h.on_end = [&](int32_t id) {
    std::vector<Field> hdr = {{"content-type", "text/plain"}};
    c.srv->respond(id, 200, hdr, false);
    c.srv->send_data(id, std::string(20000, 'y'));
    c.srv->end_response(id);
  };
  for (int i = 0; i < 3; ++i) {
    const int32_t id = cl.get({{"x-round", std::to_string(i)}});
    c.pump(cl);
    EXPECT_EQ(cl.status[id], 200);
    EXPECT_EQ(cl.body[id], std::string(20000, 'y'));
    EXPECT_GT(c.srv->release_idle_memory(), 0u);
  }
  EXPECT_FALSE(c.server_failed);
}

// ---- hibernation (ServerSession::hibernate()) -------------------------------

// Answers with `size` bytes and two fields our encoder indexes; bodies larger
// than the stream's buffer go out as room opens (call c.pump between).
struct Answerer {
  explicit Answerer(Conn& conn) : c(conn) {}
  Conn& c;
  size_t size = 5;
  std::map<int32_t, std::string> left;
  void answer(int32_t id) {
    std::vector<Field> hdr = {{"content-type", "text/plain"}, {"x-served-by", "gantry-unit-test"}};
    c.srv->respond(id, 200, hdr, false);
    left[id] = std::string(size, 'z');
    push();
  }
  void push() {
    for (auto& [id, rest] : left) {
      if (rest.empty()) continue;
      const size_t n = c.srv->send_data(id, rest);
      rest.erase(0, n);
      if (rest.empty()) c.srv->end_response(id);
    }
  }
  // Pumps, pushing body bytes as room opens.
  void pump(Client& cl) {
    for (int i = 0; i < 200; ++i) {
      c.pump(cl);
      const bool pending = std::any_of(left.begin(), left.end(), [](const auto& kv) { return !kv.second.empty(); });
      if (!pending) return;
      const std::string before = c.wire_out;
      push();
      c.pump(cl);
      if (c.wire_out == before) return;  // stuck: the client's window
    }
  }
};

// Puts the idle session to sleep the way the connection does: hibernate()
// asks the client to empty its table (SETTINGS_HEADER_TABLE_SIZE = 0) when it
// indexed fields (nghttp2's client does), and its acknowledgement puts the
// session to sleep.
void hibernate(Conn& c, Client& cl) {
  if (!c.srv->hibernate()) c.pump(cl);
  EXPECT_TRUE(c.srv->hibernated());
  EXPECT_TRUE(c.srv->output().empty());
  EXPECT_FALSE(c.srv->done());
}

// Both HPACK tables survive a sleep: the client's (indexed fields sent
// before it) is emptied by the zero table size it acknowledged, ours by the
// size update the new session starts with; the client indexes again after
// the wake-up (the table size is raised back), and every head decodes.
TEST(Http2ServerSession, HibernatesWhenIdleAndBothHpackTablesStayInStep) {
  Conn c;
  Answerer a(c);
  c.h.on_end = [&](int32_t id) { a.answer(id); };
  Client cl;
  const std::vector<std::pair<std::string, std::string>> extra = {{"user-agent", "unit-test/1.0"},
                                                                  {"x-token", "a-value-worth-indexing"}};
  int32_t id = cl.get(extra);
  a.pump(cl);
  ASSERT_EQ(cl.status[id], 200);
  ASSERT_GT(nghttp2_session_get_hd_deflate_dynamic_table_size(cl.s), 0u) << "the client indexed its fields";
  ASSERT_GT(nghttp2_session_get_hd_inflate_dynamic_table_size(cl.s), 0u) << "and the client holds ours";
  for (int round = 0; round < 3; ++round) {
    EXPECT_FALSE(c.srv->hibernate()) << "the client indexed fields: it must empty its table first";
    EXPECT_FALSE(c.srv->hibernated());
    hibernate(c, cl);
    for (int i = 0; i < 2; ++i) {  // the second request after the raise may index again
      id = cl.get(extra);
      a.pump(cl);
      EXPECT_FALSE(c.srv->hibernated());
      ASSERT_EQ(c.h.heads.count(id), 1u) << round;
      const auto& h = c.h.heads[id].headers;
      ASSERT_EQ(h.size(), 2u);
      EXPECT_EQ(h[0].name, "user-agent");
      EXPECT_EQ(h[0].value, "unit-test/1.0");
      EXPECT_EQ(h[1].value, "a-value-worth-indexing");
      EXPECT_EQ(c.h.heads[id].authority, "a.example");
      EXPECT_EQ(cl.status[id], 200);
      EXPECT_EQ(cl.headers[id]["x-served-by"], "gantry-unit-test");
      EXPECT_EQ(cl.body[id], "zzzzz");
    }
    EXPECT_EQ(nghttp2_session_get_remote_settings(cl.s, NGHTTP2_SETTINGS_HEADER_TABLE_SIZE), 4096u)
        << "the table size is raised again once requests come";
  }
  EXPECT_GT(nghttp2_session_get_hd_deflate_dynamic_table_size(cl.s), 0u) << "the client indexes again";
  EXPECT_FALSE(c.server_failed);
  EXPECT_FALSE(c.goaway_code().has_value());
  EXPECT_FALSE(c.srv->goaway_received().has_value());
}

// The client's connection window below 65,535 bytes when the session slept
// (this client never gives it back by itself): the new session sends no
// more than it, and the rest once the client reads.
TEST(Http2ServerSession, ASmallConnectionWindowIsKeptAcrossHibernation) {
  Conn c;
  Answerer a(c);
  a.size = 1000;
  c.h.on_end = [&](int32_t id) { a.answer(id); };
  Client cl(/*auto_window_update=*/false);
  int32_t id = cl.get();
  a.pump(cl);
  ASSERT_EQ(cl.body[id].size(), 1000u);
  nghttp2_session_consume_stream(cl.s, id, 1000);  // the stream's window only
  hibernate(c, cl);
  a.size = 100000;
  id = cl.get();
  a.pump(cl);
  EXPECT_EQ(cl.body[id].size(), 65535u - 1000) << "the client's connection window, not a new session's";
  EXPECT_FALSE(c.srv->goaway_received().has_value()) << "no FLOW_CONTROL_ERROR from the client";
  EXPECT_NE(nghttp2_session_want_read(cl.s), 0);
  // The client reads: the rest follows.
  size_t consumed = 0;
  for (int i = 0; i < 20 && cl.done.count(id) == 0; ++i) {
    nghttp2_session_consume(cl.s, id, cl.body[id].size() - consumed);
    consumed = cl.body[id].size();
    a.pump(cl);
  }
  EXPECT_EQ(cl.body[id], std::string(100000, 'z'));
  EXPECT_FALSE(c.srv->goaway_received().has_value());
}

// A large window, and settings the client changed (one while the session
// slept): kept, so a 200 KB answer goes out at once with no WINDOW_UPDATE.
// A request body after the wake-up is taken within our windows as before.
TEST(Http2ServerSession, WindowsAndSettingsSurviveHibernation) {
  Conn c;
  Answerer a(c);
  c.h.on_end = [&](int32_t id) { a.answer(id); };
  Client cl(/*auto_window_update=*/false);
  ASSERT_EQ(nghttp2_session_set_local_window_size(cl.s, NGHTTP2_FLAG_NONE, 0, 1 << 20), 0);
  int32_t id = cl.get();
  a.pump(cl);
  ASSERT_EQ(cl.status[id], 200);
  hibernate(c, cl);
  // SETTINGS while asleep: the session wakes, acknowledges, sleeps again.
  const nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
  ASSERT_EQ(nghttp2_submit_settings(cl.s, NGHTTP2_FLAG_NONE, iv, 1), 0);
  const size_t acks_before = [&] {
    size_t n = 0;
    for (const Frame& f : parse_frames(c.wire_out)) n += f.type == NGHTTP2_SETTINGS && (f.flags & NGHTTP2_FLAG_ACK);
    return n;
  }();
  c.pump(cl);
  size_t acks = 0;
  for (const Frame& f : parse_frames(c.wire_out)) acks += f.type == NGHTTP2_SETTINGS && (f.flags & NGHTTP2_FLAG_ACK);
  EXPECT_EQ(acks, acks_before + 1);
  EXPECT_FALSE(c.srv->hibernated());
  EXPECT_TRUE(c.srv->hibernate()) << "the zero table size was acknowledged before: asleep at once";
  a.size = 200000;
  id = cl.get();
  a.pump(cl);
  EXPECT_EQ(cl.body[id].size(), 200000u) << "the client's 1 MiB windows, with no WINDOW_UPDATE";
  nghttp2_session_consume(cl.s, id, 200000);
  c.pump(cl);

  // A request body of 300 KB after another sleep: our stream window (256 KiB)
  // holds until the handler consumes.
  hibernate(c, cl);
  std::string payload(300000, 'b');
  struct Src { std::string* p; size_t off = 0; } src{&payload};
  nghttp2_data_provider prov;
  prov.source.ptr = &src;
  prov.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags,
                          nghttp2_data_source* s, void*) -> ssize_t {
    auto& st = *static_cast<Src*>(s->ptr);
    const size_t n = std::min(len, st.p->size() - st.off);
    std::memcpy(buf, st.p->data() + st.off, n);
    st.off += n;
    if (st.off == st.p->size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  };
  auto fields = kGet;
  fields[0].second = "POST";
  std::vector<nghttp2_nv> nv;
  for (const auto& [n, v] : fields) nv.push_back({(uint8_t*)n.data(), (uint8_t*)v.data(), n.size(), v.size(), 0});
  a.size = 5;
  id = nghttp2_submit_request(cl.s, nullptr, nv.data(), nv.size(), &prov, nullptr);
  c.pump(cl);
  EXPECT_EQ(c.h.bodies[id].size(), 256u * 1024);
  c.srv->consume(id, c.h.bodies[id].size());
  a.pump(cl);
  EXPECT_EQ(c.h.bodies[id], payload);
  EXPECT_EQ(cl.status[id], 200);
  EXPECT_FALSE(c.server_failed);
  EXPECT_FALSE(c.srv->goaway_received().has_value());
}

// The last stream id survives: frames on the old streams are frames on
// closed streams (not a connection error), and the drain's final GOAWAY
// names the last stream served before the sleep.
TEST(Http2ServerSession, StreamIdsSurviveHibernation) {
  Conn c;
  Answerer a(c);
  c.h.on_end = [&](int32_t id) { a.answer(id); };
  Client cl;
  cl.get();
  const int32_t last = cl.get();
  a.pump(cl);
  ASSERT_EQ(cl.status[last], 200);
  hibernate(c, cl);
  // The client's late WINDOW_UPDATE and RST_STREAM on its old streams.
  c.feed(frame(NGHTTP2_WINDOW_UPDATE, 0, 1, std::string("\x00\x00\x10\x00", 4)) +
         frame(NGHTTP2_RST_STREAM, 0, last, std::string("\x00\x00\x00\x08", 4)));
  EXPECT_FALSE(c.server_failed);
  EXPECT_FALSE(c.goaway_code().has_value());
  EXPECT_TRUE(c.srv->hibernate());
  c.srv->drain();  // wakes the session
  c.pump(cl);
  // (The client session, with no stream open, stops reading after the first
  // GOAWAY: the server's frames tell.)
  std::vector<uint32_t> goaways;
  for (const Frame& f : parse_frames(c.wire_out)) {
    if (f.type == NGHTTP2_GOAWAY) goaways.push_back(be32(f.payload, 0));
  }
  ASSERT_EQ(goaways.size(), 2u);
  EXPECT_EQ(goaways[0], (1u << 31) - 1);
  EXPECT_EQ(goaways[1], static_cast<uint32_t>(last)) << "the last stream served before the sleep";
  EXPECT_TRUE(c.srv->done());
}

// Never with half a frame received (nor a header block waiting for its
// CONTINUATION): the new session would not know the rest.
TEST(Http2ServerSession, NoHibernationInTheMiddleOfAFrame) {
  Conn c;
  c.feed(client_settings());
  c.feed(frame(NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0));
  const std::string ping = frame(NGHTTP2_PING, 0, 0, "12345678");
  c.feed(ping.substr(0, 11));
  EXPECT_FALSE(c.srv->hibernate());
  EXPECT_TRUE(c.srv->output().empty()) << "nothing queued either";
  c.feed(ping.substr(11));
  // No header block yet, so no table to empty: asleep at once.
  EXPECT_TRUE(c.srv->hibernate());
  EXPECT_TRUE(c.srv->output().empty());
  // A PING wakes it; it is answered.
  c.wire_out.clear();
  c.feed(ping);
  const auto frames = parse_frames(c.wire_out);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, NGHTTP2_PING);
  EXPECT_EQ(frames[0].flags, NGHTTP2_FLAG_ACK);
  EXPECT_EQ(frames[0].payload, "12345678");
  EXPECT_FALSE(c.server_failed);
}

}  // namespace
}  // namespace gantry::http2
