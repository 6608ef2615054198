// The HTTP/2 server codec on libnghttp2: see server_session.h for the contract.
#include "proxy/http2/server_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>

#include "proxy/http2/indexing.h"
#include "proxy/http2/session_memory.h"

namespace gantry::http2 {

namespace {

constexpr uint8_t kDrainPing[8] = {'g', 'a', 'n', 't', 'r', 'y', 'd', 'r'};

uint64_t steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

std::string_view sv(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

// A frame as a client would send it (the frames a hibernated session is
// woken with, ServerSession::Impl::wake()).
void append_frame(std::string& out, uint8_t type, uint8_t flags, int32_t stream, std::string_view payload) {
  const size_t n = payload.size();
  const char hd[9] = {static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n),
                      static_cast<char>(type), static_cast<char>(flags),
                      static_cast<char>((stream >> 24) & 0x7f), static_cast<char>(stream >> 16),
                      static_cast<char>(stream >> 8), static_cast<char>(stream)};
  out.append(hd, 9);
  out.append(payload);
}

void append_u32(std::string& out, uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
                     static_cast<char>(v)};
  out.append(b, 4);
}

void append_setting(std::string& out, uint16_t id, uint32_t v) {
  out.push_back(static_cast<char>(id >> 8));
  out.push_back(static_cast<char>(id));
  append_u32(out, v);
}

// Where the client's bytes are in the framing: a hibernated session must not
// lose half a frame, nor the CONTINUATION libnghttp2 waits for.
struct FrameBoundary {
  uint32_t payload_left = 0;
  uint8_t head[5] = {};  // a frame header's length, type and flags
  uint8_t head_have = 0;  // of its 9 bytes
  uint8_t preface_left = kClientPreface.size();
  bool in_header_block = false;  // HEADERS / PUSH_PROMISE / CONTINUATION without END_HEADERS

  void feed(std::string_view b) {
    const size_t skip = std::min<size_t>(preface_left, b.size());
    preface_left = static_cast<uint8_t>(preface_left - skip);
    b.remove_prefix(skip);
    while (!b.empty()) {
      if (payload_left > 0) {
        const size_t k = std::min<size_t>(payload_left, b.size());
        payload_left -= static_cast<uint32_t>(k);
        b.remove_prefix(k);
        continue;
      }
      // The header's first 5 bytes are kept; the stream id is skipped.
      const size_t k = std::min<size_t>(9 - head_have, b.size());
      for (size_t i = 0; i < k; ++i) {
        if (head_have + i < sizeof head) head[head_have + i] = static_cast<uint8_t>(b[i]);
      }
      head_have = static_cast<uint8_t>(head_have + k);
      b.remove_prefix(k);
      if (head_have < 9) break;
      head_have = 0;
      payload_left = (uint32_t{head[0]} << 16) | (uint32_t{head[1]} << 8) | head[2];
      const uint8_t type = head[3];
      if (type == NGHTTP2_HEADERS || type == NGHTTP2_PUSH_PROMISE || type == NGHTTP2_CONTINUATION) {
        in_header_block = (head[4] & NGHTTP2_FLAG_END_HEADERS) == 0;
      }
    }
  }
  bool at_rest() const { return preface_left == 0 && head_have == 0 && payload_left == 0 && !in_header_block; }
};

// The settings of the client a hibernated session keeps (RFC 9113 6.5.2,
// RFC 8441, RFC 9218), in this order.
constexpr nghttp2_settings_id kClientSettings[] = {
    NGHTTP2_SETTINGS_HEADER_TABLE_SIZE,     NGHTTP2_SETTINGS_ENABLE_PUSH,
    NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE,
    NGHTTP2_SETTINGS_MAX_FRAME_SIZE,        NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
    NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES,
};

// RFC 9113 8.2.2: fields that only make sense on one HTTP/1.x connection.
bool connection_specific(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade";
}

bool has_upper(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// A token bucket on the caller's clock.
class Bucket {
 public:
  Bucket(uint32_t burst, uint32_t per_second, uint64_t now)
      : burst_(burst), rate_(per_second), tokens_(burst), last_(now) {}
  bool take(uint64_t now) {
    if (now > last_) {
      tokens_ = std::min<double>(burst_, tokens_ + static_cast<double>(now - last_) * rate_ / 1000);
      last_ = now;
    }
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  double burst_;
  double rate_;
  double tokens_;
  uint64_t last_;
};

struct Stream {
  int32_t id = 0;
  RequestHead head;
  std::string host;
  std::string cookie;
  std::vector<Field> trailers;
  size_t header_bytes = 0;
  bool in_trailers = false;
  bool too_large = false;      // header list over the limit: answered 431
  bool malformed = false;      // reset with PROTOCOL_ERROR
  bool delivered = false;      // the handler knows this stream
  bool remote_ended = false;   // END_STREAM received
  bool client_reset = false;   // RST_STREAM received
  bool response_done = false;  // END_STREAM sent
  size_t unconsumed = 0;       // body bytes delivered but not yet consume()d
  uint64_t received = 0;       // body bytes received
  bool discarding = false;     // answered before the request ended: the rest is read and dropped
  bool connect = false;        // :method CONNECT (a tunnel when answered 2xx)
  bool tunnel = false;         // a CONNECT answered 2xx: END_STREAM sent is a half-close
  // Response body waiting for the client's window.
  bool responding = false;  // a body is expected (respond() without end_stream)
  std::string out;
  size_t out_off = 0;
  bool out_eof = false;
  bool deferred = false;
  bool wants_room = false;
  std::vector<Field> response_trailers;

  size_t buffered() const { return out.size() - out_off; }
};

}  // namespace

struct ServerSession::Impl {
  Impl(const Limits& l, Handler& h, Clock c)
      : limits(l),
        handler(h),
        clock(c ? c : steady_ms),
        pings(l.ping_burst, l.ping_per_second, clock()),
        settings(l.settings_burst, l.settings_per_second, clock()) {}
  ~Impl() {
    if (session) nghttp2_session_del(session);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Limits limits;
  Handler& handler;
  Clock clock;
  SessionMemory memory;  // outlives `session`: ~Impl deletes the session first
  nghttp2_session* session = nullptr;
  // Open streams, in no order (a stream's place changes when another
  // closes). At most MAX_CONCURRENT_STREAMS, a few most of the time: a scan
  // costs less than hashing, and no node is allocated per stream.
  std::vector<std::unique_ptr<Stream>> streams;
  // Objects of closed streams, reset, for the next streams to reuse.
  static constexpr size_t kSpareStreams = 16;
  std::vector<std::unique_ptr<Stream>> spare;
  std::string out;
  size_t out_off = 0;
  std::vector<int32_t> writable;  // on_writable notifications due after serialising
  Counters counters;
  std::optional<ErrorCode> goaway_received;
  Bucket pings;
  Bucket settings;
  uint32_t empty_run = 0;
  bool flood = false;  // a flood counter tripped: GOAWAY ENHANCE_YOUR_CALM
  bool bad_stream_id = false;  // HEADERS on a stream id the client skipped: PROTOCOL_ERROR
  // Client stream ids: the highest seen, and the ranges it skipped (RFC 9113
  // 5.1.1: a skipped id is closed; HEADERS on it is a connection error).
  // nghttp2 cannot tell a skipped id from a closed one and ignores both.
  int32_t last_client_id = 0;
  std::vector<std::pair<int32_t, int32_t>> skipped;  // [first, last], bounded
  bool dead = false;   // nothing more can be exchanged
  bool dead_input = false;  // a fatal receive error: nothing more is read
  int drain_step = 0;  // 0 serving, 1 notice sent, 2 final GOAWAY sent
  std::optional<ErrorCode> goaway;

  // Hibernation (ServerSession::hibernate()). `session` is null while
  // hibernating; what the next session is made from:
  struct Sleep {
    uint32_t client_settings[std::size(kClientSettings)] = {};
    int32_t local_window = 0;  // the connection's receive window
    int64_t remote_window = 0;  // what the client lets us send on the connection
    int32_t last_stream = 0;    // the client's highest stream id
  };
  std::optional<Sleep> sleep;
  FrameBoundary boundary;
  bool client_settings_seen = false;  // the client's first SETTINGS
  uint32_t settings_unacked = 0;      // our SETTINGS frames sent, not yet acknowledged
  bool table_zeroed = false;  // the last SETTINGS_HEADER_TABLE_SIZE we sent was 0
  bool restoring = false;     // the callbacks ignore the frames that wake a session
  // The client's connection window when a session woke was below the 65,535
  // bytes a new session assumes: libnghttp2's window is this much larger than
  // the client's (both move together from then on), and read_body() holds back.
  int64_t window_debt = 0;
  bool debt_blocked = false;  // read_body() held a stream back for it
  bool sleep_on_ack = false;  // hibernate() waits for the client's acknowledgement

  Stream* find(int32_t id) const {
    for (const auto& st : streams)
      if (st->id == id) return st.get();
    return nullptr;
  }

  Stream& open_stream(int32_t id) {
    std::unique_ptr<Stream> st;
    if (spare.empty()) {
      st = std::make_unique<Stream>();
    } else {
      st = std::move(spare.back());
      spare.pop_back();
    }
    st->id = id;
    streams.push_back(std::move(st));
    return *streams.back();
  }

  // Removes an open stream and hands it over (null when not open).
  std::unique_ptr<Stream> take_stream(int32_t id) {
    for (auto& slot : streams) {
      if (slot->id != id) continue;
      std::unique_ptr<Stream> st = std::move(slot);
      slot = std::move(streams.back());
      streams.pop_back();
      return st;
    }
    return nullptr;
  }

  void recycle(std::unique_ptr<Stream> st) {
    if (spare.size() >= kSpareStreams) return;
    *st = Stream();
    spare.push_back(std::move(st));
  }

  void terminate(ErrorCode code) {
    nghttp2_session_terminate_session(session, static_cast<uint32_t>(code));
  }

  void rst(int32_t id, ErrorCode code) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, static_cast<uint32_t>(code));
  }

  // Tracks client stream ids; false for HEADERS on an id the client skipped.
  bool stream_id_allowed(int32_t id) {
    if ((id & 1) == 0) return true;  // nghttp2 judges even and zero ids
    if (id > last_client_id) {
      if (id > last_client_id + 2) {
        if (skipped.size() == 64) skipped.erase(skipped.begin());
        skipped.emplace_back(last_client_id + 2, id - 2);
      }
      last_client_id = id;
      return true;
    }
    for (const auto& [lo, hi] : skipped) {
      if (id >= lo && id <= hi) return false;
    }
    return true;
  }

  // Flood counters, judged on each frame header before its payload is read.
  bool frame_allowed(const nghttp2_frame_hd& hd) {
    const uint64_t opened = counters.streams_opened;
    switch (hd.type) {
      case NGHTTP2_HEADERS:
      case NGHTTP2_CONTINUATION:
        if (hd.length == 0 && !(hd.flags & NGHTTP2_FLAG_END_HEADERS)) {
          return ++empty_run <= limits.max_consecutive_empty_frames;
        }
        if (hd.length > 0) empty_run = 0;
        return true;
      case NGHTTP2_PING:
        if (hd.flags & NGHTTP2_FLAG_ACK) return true;
        ++counters.pings;
        return pings.take(clock()) ||
               counters.pings <= limits.ping_per_stream * opened + limits.ping_per_data_frame * counters.data_frames_sent;
      case NGHTTP2_SETTINGS:
        if (hd.flags & NGHTTP2_FLAG_ACK) return true;
        ++counters.settings;
        return settings.take(clock());
      case NGHTTP2_WINDOW_UPDATE:
        ++counters.window_updates;
        return counters.window_updates <=
               limits.window_update_base + limits.window_update_per_stream * opened +
                   limits.window_update_per_data_frame * counters.data_frames_sent;
      case NGHTTP2_PRIORITY:
        ++counters.priorities;
        return counters.priorities <= limits.priority_base + limits.priority_per_stream * opened;
      default:
        return true;
    }
  }

  // A request head is complete: validate and hand it over, or refuse it.
  void request_head_done(Stream& st, bool end_stream) {
    if (st.too_large) {
      // The header block was decoded (HPACK state stays in sync) but not kept.
      static const nghttp2_nv nv[] = {
          {(uint8_t*)":status", (uint8_t*)"431", 7, 3, NGHTTP2_NV_FLAG_NONE},
          {(uint8_t*)"content-length", (uint8_t*)"0", 14, 1, NGHTTP2_NV_FLAG_NONE}};
      nghttp2_submit_response(session, st.id, nv, 2, nullptr);
      return;
    }
    if (!st.malformed && !st.host.empty()) {
      if (st.head.authority.empty()) {
        st.head.authority = std::move(st.host);
      } else if (st.head.authority != st.host) {
        st.malformed = true;  // RFC 9113 8.3.1: both present, different values
      }
    }
    if (st.malformed) {
      rst(st.id, ErrorCode::kProtocolError);
      return;
    }
    if (!st.cookie.empty()) st.head.headers.push_back({"cookie", std::move(st.cookie)});
    st.connect = st.head.method == "CONNECT";
    st.delivered = true;
    st.remote_ended = end_stream;
    handler.on_request(st.id, std::move(st.head), end_stream);
  }

  void on_header(Stream& st, std::string_view name, std::string_view value) {
    st.header_bytes += name.size() + value.size() + 32;
    if (st.header_bytes > limits.max_header_list_bytes) {
      st.too_large = true;
      st.head = RequestHead{};
      st.trailers.clear();
      st.cookie.clear();
      st.host.clear();
      return;
    }
    if (st.too_large || st.malformed) return;
    if (st.in_trailers) {
      st.trailers.push_back({std::string(name), std::string(value)});
      return;
    }
    if (!name.empty() && name[0] == ':') {
      if (name == ":method") {
        st.head.method = value;
      } else if (name == ":scheme") {
        st.head.scheme = value;
      } else if (name == ":authority") {
        st.head.authority = value;
      } else if (name == ":path") {
        st.head.path = value;
      } else if (name == ":protocol") {  // nghttp2 lets it through with ENABLE_CONNECT_PROTOCOL only
        st.head.protocol = value;
      } else {
        st.malformed = true;
      }
      return;
    }
    if (connection_specific(name) || (name == "te" && value != "trailers") || has_upper(name)) {
      st.malformed = true;
      return;
    }
    if (name == "host") {
      st.host = value;
      return;
    }
    if (name == "cookie") {
      // RFC 9113 8.2.3: crumbs are joined with "; " before going to HTTP/1.1.
      if (!st.cookie.empty()) st.cookie.append("; ");
      st.cookie.append(value);
      return;
    }
    if (name == "content-length") {
      uint64_t v = 0;
      for (char c : value) v = v * 10 + static_cast<uint64_t>(c - '0');  // digits: checked by nghttp2
      st.head.content_length = v;
    }
    // Room for a typical request's fields at once (the head is handed on
    // with its vector, so each request grows a new one: one allocation for
    // up to eight fields instead of one per doubling).
    if (st.head.headers.capacity() == 0) st.head.headers.reserve(8);
    Field& f = st.head.headers.emplace_back();
    f.name.assign(name);
    f.value.assign(value);
  }

  void stream_closed(int32_t id, uint32_t code) {
    std::unique_ptr<Stream> st = take_stream(id);
    if (st == nullptr) return;
    if (st->unconsumed > 0) nghttp2_session_consume_connection(session, st->unconsumed);
    if (st->client_reset && !st->response_done) {
      ++counters.premature_resets;
      if (counters.premature_resets >= limits.premature_reset_limit &&
          counters.premature_resets * 2 >= counters.streams_opened) {
        flood = true;
        terminate(ErrorCode::kEnhanceYourCalm);
      }
    }
    if (st->delivered) handler.on_closed(id, static_cast<ErrorCode>(code));
    recycle(std::move(st));
  }

  // --- nghttp2 callbacks -------------------------------------------------
  static Impl& self(void* user) { return *static_cast<Impl*>(user); }

  static int on_begin_frame(nghttp2_session*, const nghttp2_frame_hd* hd, void* user) {
    Impl& s = self(user);
    if (s.restoring) return 0;
    if (hd->type == NGHTTP2_HEADERS && !s.stream_id_allowed(hd->stream_id)) {
      s.bad_stream_id = true;
      return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    if (s.frame_allowed(*hd)) return 0;
    s.flood = true;
    return NGHTTP2_ERR_CALLBACK_FAILURE;
  }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* user) {
    Impl& s = self(user);
    if (f->hd.type != NGHTTP2_HEADERS || s.restoring) return 0;
    const int32_t id = f->hd.stream_id;
    if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
      s.open_stream(id);
      ++s.counters.streams_opened;
      s.sleep_on_ack = false;
      if (s.table_zeroed) {
        // Not idle any more: the client may index its fields again.
        s.table_zeroed = false;
        const nghttp2_settings_entry raise[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 4096}};
        nghttp2_submit_settings(s.session, NGHTTP2_FLAG_NONE, raise, 1);
      }
    } else if (Stream* st = s.find(id)) {
      st->in_trailers = true;
      st->header_bytes = 0;
    }
    return 0;
  }

  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* name,
                       size_t namelen, const uint8_t* value, size_t valuelen, uint8_t,
                       void* user) {
    Impl& s = self(user);
    if (s.restoring) return 0;
    if (Stream* st = s.find(f->hd.stream_id)) s.on_header(*st, sv(name, namelen), sv(value, valuelen));
    return 0;
  }

  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* user) {
    Impl& s = self(user);
    if (s.restoring) return 0;
    const int32_t id = f->hd.stream_id;
    const bool end_stream = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (f->hd.type) {
      case NGHTTP2_DATA: {
        const size_t payload = f->hd.length - std::min<size_t>(f->hd.length, f->data.padlen);
        if (payload == 0 && !end_stream) {
          if (++s.empty_run > s.limits.max_consecutive_empty_frames) {
            s.flood = true;
            return NGHTTP2_ERR_CALLBACK_FAILURE;
          }
        } else {
          s.empty_run = 0;
        }
        Stream* st = s.find(id);
        if (st && end_stream && st->delivered && !st->remote_ended) {
          st->remote_ended = true;
          s.handler.on_request_end(id, nullptr);
        }
        break;
      }
      case NGHTTP2_HEADERS: {
        Stream* st = s.find(id);
        if (st == nullptr) break;
        if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
          s.request_head_done(*st, end_stream);
        } else if (st->in_trailers && st->delivered && !st->remote_ended) {
          st->remote_ended = true;
          if (st->too_large) {
            s.rst(id, ErrorCode::kProtocolError);
          } else {
            s.handler.on_request_end(id, &st->trailers);
          }
        }
        break;
      }
      case NGHTTP2_RST_STREAM:
        if (Stream* st = s.find(id)) st->client_reset = true;
        break;
      case NGHTTP2_GOAWAY:
        s.goaway_received = static_cast<ErrorCode>(f->goaway.error_code);
        break;
      case NGHTTP2_SETTINGS:
        if ((f->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
          s.client_settings_seen = true;
        } else if (s.settings_unacked > 0) {
          --s.settings_unacked;
        }
        break;
      case NGHTTP2_WINDOW_UPDATE:
        if (id == 0 && s.debt_blocked) s.debt_window_opened();
        break;
      case NGHTTP2_PING:
        if ((f->hd.flags & NGHTTP2_FLAG_ACK) && s.drain_step == 1 &&
            std::memcmp(f->ping.opaque_data, kDrainPing, 8) == 0) {
          s.final_goaway();
        }
        break;
      default:
        break;
    }
    return 0;
  }

  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* data, size_t len,
                           void* user) {
    Impl& s = self(user);
    Stream* st = s.find(id);
    if (st == nullptr || !st->delivered) {
      nghttp2_session_consume(s.session, id, len);  // refused stream: nobody reads it
      return 0;
    }
    st->received += len;
    if (st->discarding) {  // the answer is out: only the connection's window reopens
      nghttp2_session_consume_connection(s.session, len);
      return 0;
    }
    st->unconsumed += len;
    s.handler.on_data(id, sv(data, len));
    return 0;
  }

  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t code, void* user) {
    if (self(user).restoring) return 0;
    self(user).stream_closed(id, code);
    return 0;
  }

  static int on_frame_send(nghttp2_session*, const nghttp2_frame* f, void* user) {
    Impl& s = self(user);
    if (s.restoring) return 0;
    const int32_t id = f->hd.stream_id;
    if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK) == 0) ++s.settings_unacked;
    if (f->hd.type == NGHTTP2_DATA) ++s.counters.data_frames_sent;
    if (f->hd.type == NGHTTP2_GOAWAY) {
      if (f->goaway.error_code != NGHTTP2_NO_ERROR || !s.goaway) {
        s.goaway = static_cast<ErrorCode>(f->goaway.error_code);
      }
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
      if (Stream* st = s.find(id)) {
        st->response_done = true;
        // The answer is complete before the request (RFC 9113 8.1). A body
        // whose announced rest fits in the stream's open window is read and
        // dropped, so a client still sending it ends cleanly (curl 7.88 fails
        // on RST_STREAM while it uploads); any other is stopped with
        // RST_STREAM NO_ERROR. Either way no window reopens for the stream.
        // A tunnel's END_STREAM only closes the proxy's half (RFC 8441 / 9113 8.5).
        if (!st->tunnel && !st->remote_ended && !nghttp2_session_get_stream_remote_close(s.session, id)) {
          const int32_t window = nghttp2_session_get_stream_local_window_size(s.session, id);
          const auto& cl = st->head.content_length;
          if (cl && window > 0 && *cl >= st->received &&
              *cl - st->received <= static_cast<uint64_t>(window)) {
            st->discarding = true;
          } else {
            s.rst(id, ErrorCode::kNoError);
          }
        }
      }
    }
    return 0;
  }

  static ssize_t read_body(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                                 uint32_t* flags, nghttp2_data_source* source, void* user) {
    Impl& s = self(user);
    Stream* st = static_cast<Stream*>(source->ptr);
    if (s.window_debt > 0) {  // the client's window is smaller than libnghttp2's (wake())
      const int64_t room = int64_t{nghttp2_session_get_remote_window_size(session)} - s.window_debt;
      length = room > 0 ? std::min(length, static_cast<size_t>(room)) : 0;
    }
    const size_t n = std::min(length, st->buffered());
    std::memcpy(buf, st->out.data() + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out.size()) {
      st->out.clear();
      st->out_off = 0;
    }
    if (st->buffered() == 0 && st->out_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!st->response_trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv> nv;
        s.to_nv(st->response_trailers, nv);
        nghttp2_submit_trailer(session, id, nv.data(), nv.size());
      }
    } else if (n == 0) {
      st->deferred = true;
      if (length == 0) s.debt_blocked = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (st->wants_room && s.limits.response_buffer - st->buffered() >= s.limits.response_buffer / 2) {
      st->wants_room = false;
      s.writable.push_back(id);
    }
    return static_cast<ssize_t>(n);
  }

  // -----------------------------------------------------------------------
  void to_nv(const std::vector<Field>& fields, std::vector<nghttp2_nv>& nv) {
    for (const Field& f : fields) {
      if (connection_specific(f.name) || f.name == "te" || f.name.empty() || f.name[0] == ':') continue;
      nv.push_back({(uint8_t*)f.name.data(), (uint8_t*)f.value.data(), f.name.size(), f.value.size(),
                    nv_flags(f.name)});
    }
  }

  // ---- the libnghttp2 session, and hibernation --------------------------
  // Makes the session. One woken from hibernation (wake()) does not expect
  // the client preface again.
  int make_session(bool woken) {
    nghttp2_session_callbacks* cb = nullptr;
    if (nghttp2_session_callbacks_new(&cb) != 0) return NGHTTP2_ERR_NOMEM;
    nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, on_frame_send);
    nghttp2_option* opt = nullptr;
    if (nghttp2_option_new(&opt) != 0) {
      nghttp2_session_callbacks_del(cb);
      return NGHTTP2_ERR_NOMEM;
    }
    // Windows reopen only as the handler consumes (end-to-end flow control).
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_continuations(opt, limits.max_continuations);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    if (woken) nghttp2_option_set_no_recv_client_magic(opt, 1);
    const int rv = nghttp2_session_server_new3(&session, cb, this, opt, memory.mem());
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv == 0) memory.mark_frame_buffer();
    return rv;
  }

  // Our SETTINGS and the connection's receive window, as on a new connection.
  Status submit_local_settings(int32_t connection_window) {
    const nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_bytes},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        // RFC 8441: WebSocket over HTTP/2 (extended CONNECT with :protocol).
        {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
    };
    // Without it (a test backend playing one that lacks RFC 8441) the last entry is left out.
    const size_t n_settings = std::size(iv) - (limits.connect_protocol ? 0 : 1);
    if (nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, iv, n_settings) != 0) {
      return Error{"http2: cannot queue SETTINGS"};
    }
    if (connection_window > 65535 &&
        nghttp2_session_set_local_window_size(session, NGHTTP2_FLAG_NONE, 0, connection_window) != 0) {
      return Error{"http2: cannot raise the connection window"};
    }
    return ok_status();
  }

  // Idle, with nothing half done that the session alone would remember.
  bool can_sleep() const {
    return session != nullptr && streams.empty() && out_off >= out.size() && !dead && !dead_input && !flood &&
           drain_step == 0 && !goaway_received && client_settings_seen && boundary.at_rest() &&
           nghttp2_session_want_read(session) != 0 && nghttp2_session_want_write(session) == 0;
  }

  // Deletes the session, keeping what wake() needs. Call when can_sleep()
  // and the client has acknowledged every SETTINGS (the zero table size
  // among them) and every received byte's window has been given back.
  void sleep_now() {
    Sleep z;
    for (size_t i = 0; i < std::size(kClientSettings); ++i) {
      z.client_settings[i] = nghttp2_session_get_remote_settings(session, kClientSettings[i]);
    }
    z.local_window = nghttp2_session_get_effective_local_window_size(session);
    z.remote_window = int64_t{nghttp2_session_get_remote_window_size(session)} - window_debt;
    z.last_stream = last_client_id;
    nghttp2_session_del(session);
    session = nullptr;
    sleep = z;
    window_debt = 0;
    sleep_on_ack = false;
    // What a served stream left behind goes too.
    std::vector<std::unique_ptr<Stream>>().swap(spare);
    std::vector<int32_t>().swap(writable);
    std::string().swap(out);
    out_off = 0;
    memory.shrink();
  }

  // hibernate(): sleeps now, or prepares for it (the zero table size, and a
  // WINDOW_UPDATE for received bytes not yet given back).
  bool try_sleep() {
    if (session == nullptr) return true;
    if (!can_sleep()) return false;
    if (const int32_t unacked = nghttp2_session_get_effective_recv_data_length(session); unacked > 0) {
      nghttp2_submit_window_update(session, NGHTTP2_FLAG_NONE, 0, unacked);
      sleep_on_ack = true;
    }
    // The client's table of its fields must be empty before our copy goes:
    // SETTINGS_HEADER_TABLE_SIZE = 0 (RFC 7541 4.2), unless it never indexed one.
    if (!table_zeroed && nghttp2_session_get_hd_inflate_dynamic_table_size(session) > 0) {
      const nghttp2_settings_entry zero[] = {{NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, 0}};
      nghttp2_submit_settings(session, NGHTTP2_FLAG_NONE, zero, 1);
      table_zeroed = true;
      sleep_on_ack = true;
    }
    if (nghttp2_session_want_write(session) != 0 || settings_unacked > 0) {
      sleep_on_ack = true;
      return false;
    }
    sleep_now();
    return true;
  }

  // Drops what the session wrote (the answers to the frames wake() feeds it).
  bool discard_output() {
    const uint8_t* p = nullptr;
    ssize_t n = 0;
    while ((n = nghttp2_session_mem_send(session, &p)) > 0) {
    }
    return n == 0;
  }

  // Makes a new session from `sleep`: it is told the client's settings, the
  // windows and the last stream id by the frames the client would have sent
  // (its answers dropped), so it picks up where the old one stopped.
  bool wake() {
    const Sleep z = *sleep;
    sleep.reset();
    restoring = true;
    const bool ok = restore(z);
    restoring = false;
    if (!ok) {
      if (session) nghttp2_session_del(session);
      session = nullptr;
      dead = true;
      return false;
    }
    // A zero table size sent before stays until the client's next request
    // (on_begin_headers raises it), not raised for a PING.
    return true;
  }

  bool restore(const Sleep& z) {
    if (make_session(true) != 0 || !submit_local_settings(z.local_window).ok() || !discard_output()) return false;
    std::string in;
    std::string iv;
    // The client's settings; first with a zero table size, so that our
    // first header block empties the client's table of our fields (it holds
    // the old session's, which the new encoder does not know).
    for (size_t i = 0; i < std::size(kClientSettings); ++i) {
      append_setting(iv, kClientSettings[i],
                     kClientSettings[i] == NGHTTP2_SETTINGS_HEADER_TABLE_SIZE ? 0 : z.client_settings[i]);
    }
    append_frame(in, NGHTTP2_SETTINGS, NGHTTP2_FLAG_NONE, 0, iv);
    iv.clear();
    append_setting(iv, NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, z.client_settings[0]);
    append_frame(in, NGHTTP2_SETTINGS, NGHTTP2_FLAG_NONE, 0, iv);
    // Ours, acknowledged as they were.
    append_frame(in, NGHTTP2_SETTINGS, NGHTTP2_FLAG_ACK, 0, {});
    // The client's connection window: a new session assumes 65,535 bytes.
    window_debt = 0;
    if (z.remote_window > 65535) {
      std::string inc;
      append_u32(inc, static_cast<uint32_t>(z.remote_window - 65535));
      append_frame(in, NGHTTP2_WINDOW_UPDATE, NGHTTP2_FLAG_NONE, 0, inc);
    } else {
      window_debt = 65535 - z.remote_window;
    }
    // The last stream: a request on it (GET / from the static table, without
    // indexing), reset below. Later frames on older streams are then frames
    // on closed streams, and the next GOAWAY names it.
    if (z.last_stream > 0) {
      static constexpr char kBlock[] = {'\x82', '\x86', '\x84', '\x01', '\x01', 'x'};
      append_frame(in, NGHTTP2_HEADERS, NGHTTP2_FLAG_END_HEADERS | NGHTTP2_FLAG_END_STREAM, z.last_stream,
                   std::string_view(kBlock, sizeof kBlock));
    }
    const auto rv = nghttp2_session_mem_recv(session, reinterpret_cast<const uint8_t*>(in.data()), in.size());
    if (rv != static_cast<ssize_t>(in.size())) return false;
    if (z.last_stream > 0) nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, z.last_stream, NGHTTP2_NO_ERROR);
    return discard_output() && nghttp2_session_want_read(session) != 0 &&
           nghttp2_session_get_last_proc_stream_id(session) == z.last_stream;
  }

  // A WINDOW_UPDATE on the connection: streams read_body() held back for the
  // window debt try again.
  void debt_window_opened() {
    debt_blocked = false;
    for (const auto& st : streams) {
      if (st->deferred && st->buffered() > 0) {
        st->deferred = false;
        nghttp2_session_resume_data(session, st->id);
      }
    }
  }

  void final_goaway() {
    if (drain_step >= 2 || session == nullptr) return;  // (no session: a wake-up failed, the connection is over)
    drain_step = 2;
    nghttp2_submit_goaway(session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session),
                          NGHTTP2_NO_ERROR, nullptr, 0);
  }
};

Result<std::unique_ptr<ServerSession>> ServerSession::create(const Limits& limits, Handler& handler,
                                                             Clock clock) {
  auto impl = std::make_unique<Impl>(limits, handler, clock);
  if (const int rv = impl->make_session(false); rv != 0) return Error{std::string("http2: ") + nghttp2_strerror(rv)};
  if (auto st = impl->submit_local_settings(static_cast<int32_t>(limits.connection_window)); !st.ok()) return st.error();
  return std::unique_ptr<ServerSession>(new ServerSession(std::move(impl)));
}

ServerSession::ServerSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServerSession::~ServerSession() = default;

Status ServerSession::receive(std::string_view bytes) {
  Impl& s = *impl_;
  if (s.dead) return Error{"http2: connection closed"};
  if (s.flood || s.dead_input) return Error{"http2: connection failed"};
  if (s.session == nullptr && !s.wake()) return Error{"http2: cannot resume a hibernated session"};
  s.boundary.feed(bytes);
  const auto rv = nghttp2_session_mem_recv(s.session, reinterpret_cast<const uint8_t*>(bytes.data()),
                                            bytes.size());
  if (s.flood) {
    s.terminate(ErrorCode::kEnhanceYourCalm);
    return Error{"http2: flood"};
  }
  if (s.bad_stream_id) {
    s.dead_input = true;
    s.terminate(ErrorCode::kProtocolError);
    return Error{"http2: HEADERS on a skipped stream id"};
  }
  if (rv < 0) {
    s.dead_input = true;
    if (rv == NGHTTP2_ERR_BAD_CLIENT_MAGIC) {
      s.terminate(ErrorCode::kProtocolError);
      return Error{"http2: bad connection preface"};
    }
    if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) {
      s.flood = true;
      s.terminate(ErrorCode::kEnhanceYourCalm);
      return Error{"http2: flood"};
    }
    s.terminate(ErrorCode::kInternalError);
    return Error{std::string("http2: ") + nghttp2_strerror(static_cast<int>(rv))};
  }
  // The acknowledgement hibernate() waited for, with the connection still idle.
  if (s.sleep_on_ack && s.settings_unacked == 0) s.try_sleep();
  return ok_status();
}

std::string_view ServerSession::output() {
  Impl& s = *impl_;
  if (s.session == nullptr) return {};  // hibernating: nothing was left to send
  if (s.out_off > 0 && s.out_off == s.out.size()) {
    s.out.clear();
    s.out_off = 0;
  }
  // Notifications may queue more data: a few rounds, bounded by the high water.
  for (int round = 0; round < 4 && !s.dead; ++round) {
    while (s.out.size() - s.out_off < s.limits.output_high_water) {
      const uint8_t* p = nullptr;
      const auto n = nghttp2_session_mem_send(s.session, &p);
      if (n < 0) {
        s.dead = true;
        break;
      }
      if (n == 0) break;
      s.out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
    if (s.writable.empty()) break;
    std::vector<int32_t> due;
    due.swap(s.writable);
    for (int32_t id : due) {
      if (s.find(id)) s.handler.on_writable(id);
    }
  }
  return std::string_view(s.out).substr(s.out_off);
}

void ServerSession::written(size_t n) {
  Impl& s = *impl_;
  s.out_off = std::min(s.out.size(), s.out_off + n);
  if (s.out_off == s.out.size()) {
    s.out.clear();
    s.out_off = 0;
    // Nothing in flight: the output buffer's memory goes too (an idle
    // connection keeps none; the next answer grows it again).
    if (s.out.capacity() > 256 && open_streams() == 0) std::string().swap(s.out);
  } else if (s.out_off > 64 * 1024 && s.out_off > s.out.size() / 2) {
    s.out.erase(0, s.out_off);
    s.out_off = 0;
  }
}

void ServerSession::respond(int32_t id, int status, std::span<const Field> headers, bool end_stream) {
  thread_local std::vector<FieldView> views;
  views.clear();
  for (const Field& f : headers) views.push_back({f.name, f.value});
  respond(id, status, std::span<const FieldView>(views), end_stream);
}

void ServerSession::respond(int32_t id, int status, std::span<const FieldView> headers, bool end_stream) {
  Impl& s = *impl_;
  Stream* st = s.find(id);
  if (st == nullptr || !st->delivered || st->responding || st->response_done) return;
  // Three digits by hand: snprintf cost ~700 instructions a response.
  const int st3 = std::clamp(status, 100, 999);
  const char code[4] = {static_cast<char>('0' + st3 / 100), static_cast<char>('0' + st3 / 10 % 10),
                        static_cast<char>('0' + st3 % 10), '\0'};
  // Reused on the thread (nghttp2_submit_response copies what it is given).
  thread_local std::vector<nghttp2_nv> nv;
  thread_local std::vector<std::string> lowered;  // names sent by an HTTP/1.1 upstream keep their case
  nv.clear();
  nv.push_back({(uint8_t*)":status", (uint8_t*)code, 7, 3, NGHTTP2_NV_FLAG_NONE});
  size_t n_lowered = 0;
  if (lowered.size() < headers.size()) lowered.resize(headers.size());  // no reallocation below: views stay valid
  for (const FieldView& f : headers) {
    std::string_view name = f.name;
    if (has_upper(name)) {
      std::string& l = lowered[n_lowered++];
      l.assign(name);
      std::transform(l.begin(), l.end(), l.begin(),
                     [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
      name = l;
    }
    if (name.empty() || name[0] == ':' || connection_specific(name) || name == "te") continue;
    nv.push_back({(uint8_t*)name.data(), (uint8_t*)f.value.data(), name.size(), f.value.size(),
                  nv_flags(name)});
  }
  nghttp2_data_provider provider{};
  provider.source.ptr = st;
  provider.read_callback = Impl::read_body;
  st->responding = !end_stream;
  st->tunnel = st->connect && status >= 200 && status < 300 && !end_stream;
  nghttp2_submit_response(s.session, id, nv.data(), nv.size(), end_stream ? nullptr : &provider);
}

size_t ServerSession::room(int32_t id) const {
  const Stream* st = impl_->find(id);
  if (st == nullptr || !st->responding || st->out_eof) return 0;
  return impl_->limits.response_buffer - std::min(impl_->limits.response_buffer, st->buffered());
}

size_t ServerSession::send_data(int32_t id, std::string_view data) {
  Impl& s = *impl_;
  Stream* st = s.find(id);
  const size_t n = std::min(data.size(), room(id));
  if (st == nullptr || n == 0) {
    if (st != nullptr && !data.empty()) st->wants_room = true;
    return 0;
  }
  if (st->out_off > 0 && st->out_off >= st->out.size() / 2) {
    st->out.erase(0, st->out_off);
    st->out_off = 0;
  }
  st->out.append(data.data(), n);
  if (n < data.size()) st->wants_room = true;
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(s.session, id);
  }
  return n;
}

void ServerSession::end_response(int32_t id, std::span<const Field> trailers) {
  Impl& s = *impl_;
  Stream* st = s.find(id);
  if (st == nullptr || !st->responding || st->out_eof) return;
  st->out_eof = true;
  for (const Field& f : trailers) {
    Field& t = st->response_trailers.emplace_back(f);
    std::transform(t.name.begin(), t.name.end(), t.name.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
  }
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(s.session, id);
  }
}

void ServerSession::reset(int32_t id, ErrorCode code) {
  if (impl_->find(id) != nullptr) impl_->rst(id, code);
}

void ServerSession::consume(int32_t id, size_t n) {
  Impl& s = *impl_;
  Stream* st = s.find(id);
  if (st == nullptr) return;
  n = std::min(n, st->unconsumed);
  st->unconsumed -= n;
  if (n > 0) nghttp2_session_consume(s.session, id, n);
}

void ServerSession::drain() {
  Impl& s = *impl_;
  if (s.drain_step > 0 || s.dead) return;
  if (s.session == nullptr && !s.wake()) return;
  s.drain_step = 1;
  nghttp2_submit_shutdown_notice(s.session);
  nghttp2_submit_ping(s.session, NGHTTP2_FLAG_NONE, kDrainPing);
}

void ServerSession::finish_drain() {
  if (impl_->drain_step == 0) drain();
  impl_->final_goaway();
}

bool ServerSession::draining() const { return impl_->drain_step > 0; }

bool ServerSession::done() const {
  const Impl& s = *impl_;
  if (s.out.size() > s.out_off) return false;
  if (s.dead) return true;
  if (s.session == nullptr) return false;  // hibernating: waits for the client
  return !nghttp2_session_want_read(s.session) && !nghttp2_session_want_write(s.session);
}

size_t ServerSession::open_streams() const { return impl_->streams.size(); }

size_t ServerSession::release_idle_memory() {
  Impl& s = *impl_;
  if (s.session == nullptr || !s.streams.empty() || s.out_off < s.out.size() ||
      nghttp2_session_want_write(s.session) != 0)
    return 0;
  return s.memory.release_idle();
}
bool ServerSession::hibernate() { return impl_->try_sleep(); }
bool ServerSession::hibernated() const { return impl_->session == nullptr && impl_->sleep.has_value(); }
std::optional<ErrorCode> ServerSession::goaway_sent() const { return impl_->goaway; }
std::optional<ErrorCode> ServerSession::goaway_received() const { return impl_->goaway_received; }
const Counters& ServerSession::counters() const { return impl_->counters; }

}  // namespace gantry::http2
