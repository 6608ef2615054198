#include "proxy/tls/client_hello.h"

#include <cstdint>

namespace gantry::tls {

namespace {

constexpr uint8_t kHandshakeRecord = 22;   // ContentType handshake
constexpr uint8_t kClientHelloType = 1;    // HandshakeType client_hello
constexpr size_t kMaxRecordPayload = 16384;  // 2^14 (RFC 8446 5.1)
constexpr uint16_t kServerNameExtension = 0;
constexpr uint8_t kHostName = 0;

ClientHello not_hello(std::string_view why) {
  ClientHello h;
  h.status = HelloStatus::kNotHello;
  h.why = why;
  return h;
}

// A bounds-checked reader over one ClientHello body: every read fails (and
// stays failed) instead of reading past the end.
class Cursor {
 public:
  explicit Cursor(std::string_view s) : s_(s) {}
  bool ok() const { return ok_; }
  size_t left() const { return s_.size(); }
  uint32_t num(size_t n) {
    std::string_view b = take(n);
    uint32_t v = 0;
    for (char c : b) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }
  // `n` bytes, or an empty view (and ok() false) when fewer are left.
  std::string_view take(size_t n) {
    if (!ok_ || n > s_.size()) {
      ok_ = false;
      s_ = {};
      return {};
    }
    std::string_view out = s_.substr(0, n);
    s_.remove_prefix(n);
    return out;
  }
  // A vector with a length prefix of `width` bytes.
  std::string_view vec(size_t width) { return take(num(width)); }

 private:
  std::string_view s_;
  bool ok_ = true;
};

// A host_name as a DNS name: 1..253 bytes of letters, digits, '-', '_' and
// '.', no empty label. Lower-cased into `out`; false otherwise.
bool host_name(std::string_view name, std::string& out) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  out.clear();
  out.reserve(name.size());
  char prev = 0;
  for (char c : name) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && c != '-' && c != '_' && c != '.') return false;
    if (c == '.' && prev == '.') return false;
    out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
    prev = c;
  }
  return true;
}

// The ClientHello body after its handshake header (RFC 8446 4.1.2; TLS 1.0
// to 1.2 hellos have the same layout, extensions optional).
ClientHello parse_body(std::string_view body) {
  Cursor c(body);
  c.take(2);   // legacy_version
  c.take(32);  // random
  std::string_view session_id = c.vec(1);
  std::string_view suites = c.vec(2);
  std::string_view compression = c.vec(1);
  if (!c.ok()) return not_hello("truncated ClientHello");
  if (session_id.size() > 32) return not_hello("session id longer than 32 bytes");
  if (suites.size() < 2 || suites.size() % 2 != 0) return not_hello("bad cipher_suites length");
  if (compression.empty()) return not_hello("no compression methods");
  ClientHello out;
  out.status = HelloStatus::kDone;
  if (c.left() == 0) return out;  // no extensions (TLS 1.2 and older may omit them)
  std::string_view exts = c.vec(2);
  if (!c.ok() || c.left() != 0) return not_hello("extensions length does not match the ClientHello");
  Cursor e(exts);
  bool seen_sni = false;
  while (e.left() > 0) {
    uint32_t type = e.num(2);
    std::string_view data = e.vec(2);
    if (!e.ok()) return not_hello("truncated extension");
    if (type != kServerNameExtension) continue;
    if (seen_sni) return not_hello("two server_name extensions");
    seen_sni = true;
    Cursor d(data);
    std::string_view list = d.vec(2);
    if (!d.ok() || d.left() != 0 || list.empty()) return not_hello("bad server_name extension");
    Cursor l(list);
    bool have_host = false;
    while (l.left() > 0) {
      uint32_t name_type = l.num(1);
      std::string_view name = l.vec(2);
      if (!l.ok() || name.empty()) return not_hello("bad server_name entry");
      if (name_type != kHostName) continue;
      if (have_host) return not_hello("two host_name entries");
      have_host = true;
      if (!host_name(name, out.server_name)) out.server_name.clear();
    }
  }
  return out;
}

}  // namespace

ClientHello parse_client_hello(std::string_view in) {
  // Bytes past the limit are never looked at: the verdict is the limit's.
  if (in.size() > kMaxClientHelloBytes) in = in.substr(0, kMaxClientHelloBytes);
  // The handshake message's bytes, gathered from the records that carry it.
  // One record holds the whole hello nearly always: then `msg` views it.
  std::string joined;
  std::string_view msg;
  size_t pos = 0;
  bool complete = false;
  while (pos < in.size() && !complete) {
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(in[pos + i]); };
    const size_t have = in.size() - pos;
    if (byte(0) != kHandshakeRecord) return not_hello("not a TLS handshake record");
    if (have >= 2 && byte(1) != 3) return not_hello("not a TLS record version");
    if (have < 5) break;
    const size_t len = static_cast<size_t>(byte(3)) << 8 | byte(4);
    if (len == 0) return not_hello("empty handshake record");
    if (len > kMaxRecordPayload) return not_hello("record longer than 2^14 bytes");
    std::string_view payload = in.substr(pos + 5, len);  // shorter when the record is not all here
    if (msg.empty() && joined.empty()) {
      msg = payload;
    } else {
      if (joined.empty()) joined.assign(msg);
      joined.append(payload);
      msg = joined;
    }
    if (payload.size() < len) break;  // the rest of this record has not arrived
    pos += 5 + len;
    if (msg.size() >= 4) {
      const size_t body = static_cast<size_t>(static_cast<uint8_t>(msg[1])) << 16 |
                          static_cast<size_t>(static_cast<uint8_t>(msg[2])) << 8 |
                          static_cast<uint8_t>(msg[3]);
      complete = msg.size() >= 4 + body;
    }
    if (msg.size() > 4 + kMaxClientHello) break;  // decided below
  }
  if (!msg.empty() && static_cast<uint8_t>(msg[0]) != kClientHelloType)
    return not_hello("first handshake message is not a ClientHello");
  if (msg.size() >= 4) {
    const size_t body = static_cast<size_t>(static_cast<uint8_t>(msg[1])) << 16 |
                        static_cast<size_t>(static_cast<uint8_t>(msg[2])) << 8 |
                        static_cast<uint8_t>(msg[3]);
    if (body > kMaxClientHello) return not_hello("ClientHello too large");
    if (msg.size() >= 4 + body) return parse_body(msg.substr(4, body));
  }
  if (in.size() >= kMaxClientHelloBytes) return not_hello("ClientHello incomplete at the size limit");
  return ClientHello{};
}

}  // namespace gantry::tls
