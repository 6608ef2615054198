// The HTTP/2 upstream codec on libnghttp2: see client_session.h.
#include "proxy/http2/client_session.h"

#include "proxy/http2/indexing.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

namespace gantry::http2 {

namespace {

std::string_view sv(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

nghttp2_nv nv(std::string_view n, std::string_view v) {
  return {reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())),
          reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(), v.size(), nv_flags(n)};
}

bool connection_specific(std::string_view name) {
  return name == "connection" || name == "keep-alive" || name == "proxy-connection" ||
         name == "transfer-encoding" || name == "upgrade" || name == "host";
}

struct CStream {
  int32_t id = 0;
  int status = 0;
  bool in_trailers = false;
  std::vector<Field> headers;
  std::vector<Field> trailers;
  size_t unconsumed = 0;
  std::string out;
  size_t out_off = 0;
  bool out_eof = false;
  bool deferred = false;
  bool wants_room = false;
  bool has_body = false;
  std::vector<Field> request_trailers;
  size_t buffered() const { return out.size() - out_off; }
};

}  // namespace

struct ClientSession::Impl {
  Impl(const ClientLimits& l, ClientHandler& h) : limits(l), handler(h) {}
  ~Impl() {
    if (session) nghttp2_session_del(session);
  }
  ClientLimits limits;
  ClientHandler& handler;
  nghttp2_session* session = nullptr;
  std::unordered_map<int32_t, std::unique_ptr<CStream>> streams;
  std::string out;
  size_t out_off = 0;
  std::vector<int32_t> writable;
  bool goaway = false;
  bool dead = false;
  bool settings = false;  // the server's SETTINGS arrived

  CStream* find(int32_t id) const {
    auto it = streams.find(id);
    return it == streams.end() ? nullptr : it->second.get();
  }
  static Impl& self(void* u) { return *static_cast<Impl*>(u); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* f, void* u) {
    if (CStream* st = self(u).find(f->hd.stream_id)) {
      if (f->headers.cat == NGHTTP2_HCAT_HEADERS && st->status >= 200) st->in_trailers = true;
      if (f->headers.cat == NGHTTP2_HCAT_RESPONSE) st->headers.clear();
    }
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl,
                       const uint8_t* v, size_t vl, uint8_t, void* u) {
    CStream* st = self(u).find(f->hd.stream_id);
    if (st == nullptr) return 0;
    const std::string_view name = sv(n, nl), value = sv(v, vl);
    if (st->in_trailers) {
      st->trailers.push_back({std::string(name), std::string(value)});
    } else if (name == ":status") {
      int s = 0;
      for (char c : value) s = s * 10 + (c - '0');  // three digits: checked by nghttp2
      st->status = s;
    } else {
      st->headers.push_back({std::string(name), std::string(value)});
    }
    return 0;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* f, void* u) {
    Impl& s = self(u);
    const bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK) == 0) s.settings = true;
    if (f->hd.type == NGHTTP2_GOAWAY) {
      s.goaway = true;
      s.handler.on_goaway(f->goaway.last_stream_id, static_cast<ErrorCode>(f->goaway.error_code));
      return 0;
    }
    CStream* st = s.find(f->hd.stream_id);
    if (st == nullptr) return 0;
    if (f->hd.type == NGHTTP2_HEADERS) {
      if (st->in_trailers) {
        s.handler.on_response_end(st->id, &st->trailers);
      } else if (st->status >= 200) {
        s.handler.on_response(st->id, st->status, std::move(st->headers), end);
        if (end) s.handler.on_response_end(st->id, nullptr);
      }
    } else if (f->hd.type == NGHTTP2_DATA && end) {
      s.handler.on_response_end(st->id, nullptr);
    }
    return 0;
  }
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n,
                           void* u) {
    Impl& s = self(u);
    CStream* st = s.find(id);
    if (st == nullptr) {
      nghttp2_session_consume(s.session, id, n);
      return 0;
    }
    st->unconsumed += n;
    s.handler.on_data(id, sv(d, n));
    return 0;
  }
  static int on_stream_close(nghttp2_session*, int32_t id, uint32_t code, void* u) {
    Impl& s = self(u);
    auto it = s.streams.find(id);
    if (it == s.streams.end()) return 0;
    std::unique_ptr<CStream> st = std::move(it->second);
    s.streams.erase(it);
    if (st->unconsumed > 0) nghttp2_session_consume_connection(s.session, st->unconsumed);
    s.handler.on_closed(id, static_cast<ErrorCode>(code));
    return 0;
  }
  static ssize_t read_body(nghttp2_session* session, int32_t id, uint8_t* buf, size_t length,
                           uint32_t* flags, nghttp2_data_source* src, void* u) {
    Impl& s = self(u);
    CStream* st = static_cast<CStream*>(src->ptr);
    const size_t n = std::min(length, st->buffered());
    std::memcpy(buf, st->out.data() + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out.size()) {
      st->out.clear();
      st->out_off = 0;
    }
    if (st->buffered() == 0 && st->out_eof) {
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      if (!st->request_trailers.empty()) {
        *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
        std::vector<nghttp2_nv> t;
        for (const Field& f : st->request_trailers) t.push_back(nv(f.name, f.value));
        nghttp2_submit_trailer(session, id, t.data(), t.size());
      }
    } else if (n == 0) {
      st->deferred = true;
      return NGHTTP2_ERR_DEFERRED;
    }
    if (st->wants_room && s.limits.request_buffer - st->buffered() >= s.limits.request_buffer / 2) {
      st->wants_room = false;
      s.writable.push_back(id);
    }
    return static_cast<ssize_t>(n);
  }
};

Result<std::unique_ptr<ClientSession>> ClientSession::create(const ClientLimits& limits,
                                                             ClientHandler& handler) {
  auto impl = std::make_unique<Impl>(limits, handler);
  nghttp2_session_callbacks* cb = nullptr;
  if (nghttp2_session_callbacks_new(&cb) != 0) return Error{"http2: out of memory"};
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, Impl::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, Impl::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, Impl::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, Impl::on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, Impl::on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_send_header_block_length(opt, limits.max_header_list_bytes);
  const int rv = nghttp2_session_client_new2(&impl->session, cb, impl.get(), opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cb);
  if (rv != 0) return Error{std::string("http2: ") + nghttp2_strerror(rv)};
  const nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits.max_header_list_bytes},
  };
  nghttp2_submit_settings(impl->session, NGHTTP2_FLAG_NONE, iv, std::size(iv));
  if (limits.connection_window > 65535) {
    nghttp2_session_set_local_window_size(impl->session, NGHTTP2_FLAG_NONE, 0,
                                          static_cast<int32_t>(limits.connection_window));
  }
  return std::unique_ptr<ClientSession>(new ClientSession(std::move(impl)));
}

ClientSession::ClientSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClientSession::~ClientSession() = default;

Status ClientSession::receive(std::string_view bytes) {
  Impl& s = *impl_;
  if (s.dead) return Error{"http2: connection closed"};
  const auto rv = nghttp2_session_mem_recv(s.session, reinterpret_cast<const uint8_t*>(bytes.data()),
                                           bytes.size());
  if (rv < 0) {
    s.dead = true;
    return Error{std::string("http2: ") + nghttp2_strerror(static_cast<int>(rv))};
  }
  return ok_status();
}

std::string_view ClientSession::output() {
  Impl& s = *impl_;
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

void ClientSession::written(size_t n) {
  Impl& s = *impl_;
  s.out_off = std::min(s.out.size(), s.out_off + n);
  if (s.out_off == s.out.size()) {
    s.out.clear();
    s.out_off = 0;
  }
}

bool ClientSession::can_open() const {
  const Impl& s = *impl_;
  if (s.dead || s.goaway) return false;
  if (nghttp2_session_get_next_stream_id(s.session) > (1u << 31) - 2) return false;
  return s.streams.size() <
         nghttp2_session_get_remote_settings(s.session, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

Result<int32_t> ClientSession::request(const RequestHead& head, bool end_stream) {
  Impl& s = *impl_;
  if (!can_open()) return Error{"http2: the connection takes no more streams"};
  std::vector<nghttp2_nv> h;
  h.reserve(head.headers.size() + 4);
  h.push_back(nv(":method", head.method));
  h.push_back(nv(":scheme", head.scheme));
  h.push_back(nv(":authority", head.authority));
  h.push_back(nv(":path", head.path));
  // An extended CONNECT (RFC 8441): only to a server that allows it.
  if (!head.protocol.empty()) {
    if (!connect_protocol()) return Error{"http2: the server does not accept extended CONNECT"};
    h.push_back(nv(":protocol", head.protocol));
  }
  for (const Field& f : head.headers) {
    if (connection_specific(f.name) || (f.name == "te" && f.value != "trailers")) continue;
    h.push_back(nv(f.name, f.value));
  }
  auto st = std::make_unique<CStream>();
  st->has_body = !end_stream;
  nghttp2_data_provider provider{};
  provider.source.ptr = st.get();
  provider.read_callback = Impl::read_body;
  const int32_t id = nghttp2_submit_request(s.session, nullptr, h.data(), h.size(),
                                            end_stream ? nullptr : &provider, nullptr);
  if (id < 0) return Error{std::string("http2: ") + nghttp2_strerror(id)};
  st->id = id;
  s.streams[id] = std::move(st);
  return id;
}

size_t ClientSession::room(int32_t id) const {
  const CStream* st = impl_->find(id);
  if (st == nullptr || !st->has_body || st->out_eof) return 0;
  return impl_->limits.request_buffer - std::min(impl_->limits.request_buffer, st->buffered());
}

size_t ClientSession::send_data(int32_t id, std::string_view data) {
  Impl& s = *impl_;
  CStream* st = s.find(id);
  const size_t n = std::min(data.size(), room(id));
  if (st == nullptr || n == 0) {
    if (st != nullptr && !data.empty()) st->wants_room = true;
    return 0;
  }
  st->out.append(data.data(), n);
  if (n < data.size()) st->wants_room = true;
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(s.session, id);
  }
  return n;
}

void ClientSession::end_request(int32_t id, std::span<const Field> trailers) {
  Impl& s = *impl_;
  CStream* st = s.find(id);
  if (st == nullptr || !st->has_body || st->out_eof) return;
  st->out_eof = true;
  st->request_trailers.assign(trailers.begin(), trailers.end());
  if (st->deferred) {
    st->deferred = false;
    nghttp2_session_resume_data(s.session, id);
  }
}

void ClientSession::reset(int32_t id, ErrorCode code) {
  if (impl_->find(id) != nullptr) {
    nghttp2_submit_rst_stream(impl_->session, NGHTTP2_FLAG_NONE, id, static_cast<uint32_t>(code));
  }
}

void ClientSession::consume(int32_t id, size_t n) {
  CStream* st = impl_->find(id);
  if (st == nullptr) return;
  n = std::min(n, st->unconsumed);
  st->unconsumed -= n;
  if (n > 0) nghttp2_session_consume(impl_->session, id, n);
}

void ClientSession::ping() {
  if (!impl_->dead) nghttp2_submit_ping(impl_->session, NGHTTP2_FLAG_NONE, nullptr);
}

void ClientSession::goaway(ErrorCode code) {
  Impl& s = *impl_;
  if (s.dead) return;
  s.goaway = true;
  nghttp2_submit_goaway(s.session, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s.session),
                        static_cast<uint32_t>(code), nullptr, 0);
}

bool ClientSession::settings_received() const { return impl_->settings; }

bool ClientSession::connect_protocol() const {
  return nghttp2_session_get_remote_settings(impl_->session, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1;
}

size_t ClientSession::open_streams() const { return impl_->streams.size(); }

bool ClientSession::done() const {
  const Impl& s = *impl_;
  if (s.out.size() > s.out_off) return false;
  return s.dead || (!nghttp2_session_want_read(s.session) && !nghttp2_session_want_write(s.session));
}

}  // namespace gantry::http2
