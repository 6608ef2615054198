// gRPC-Web framing: see grpc_web.h.
#include "proxy/filters/grpc_web.h"

#include <array>

#include "proxy/exchange/exchange.h"
#include "proxy/exchange/grpc.h"

namespace gantry::filters::grpc_web {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr std::array<int8_t, 256> kDecode = make_table();

bool istarts_with(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char c = s[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c != prefix[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<WebType> parse_content_type(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  if (size_t semi = v.find(';'); semi != std::string_view::npos) v = v.substr(0, semi);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  constexpr std::string_view kWeb = "application/grpc-web";
  constexpr std::string_view kText = "-text";
  if (!istarts_with(v, kWeb)) return std::nullopt;
  WebType t;
  v.remove_prefix(kWeb.size());
  if (istarts_with(v, kText)) {
    t.text = true;
    v.remove_prefix(kText.size());
  }
  if (v.empty()) return t;
  if (v.front() != '+' || v.size() < 2) return std::nullopt;
  for (char c : v.substr(1))
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
          c == '_'))
      return std::nullopt;
  t.suffix = v;
  return t;
}

std::string grpc_content_type(const WebType& t) {
  std::string out("application/grpc");
  out.append(t.suffix);
  return out;
}

std::string web_content_type(const WebType& t) {
  std::string out(t.text ? "application/grpc-web-text" : "application/grpc-web");
  out.append(t.suffix);
  return out;
}

void append_trailer_frame(std::span<const http::Header> trailers, std::string& out) {
  size_t len = 0;
  for (const auto& h : trailers) len += h.name.size() + 2 + h.value.size() + 2;
  out.push_back(static_cast<char>(0x80));
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((len >> shift) & 0xff));
  for (const auto& h : trailers) {
    for (char c : h.name) out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c);
    out.append(": ").append(h.value).append("\r\n");
  }
}

void to_trailers_only(exchange::LocalReply& reply, const WebType& t) {
  const int status = reply.status;
  exchange::OwnedHeaders fields;
  fields.reserve(reply.headers.size() + 3);
  fields.emplace_back("content-type", web_content_type(t));
  fields.emplace_back("grpc-status", std::to_string(exchange::grpc_status_for(status)));
  if (!reply.body.empty()) fields.emplace_back("grpc-message", exchange::grpc_message_encode(reply.body));
  for (auto& h : reply.headers)
    if (!http::iequals(h.first, "content-type")) fields.push_back(std::move(h));
  reply.headers = std::move(fields);
  reply.status = 200;
  reply.body.clear();
  reply.verbatim = true;  // no text body, the content-type above
}

bool Base64Decoder::feed(std::string_view in, std::string& out) {
  if (failed_) return false;
  for (char c : in) {
    group_[held_++] = c;
    if (held_ < 4) continue;
    held_ = 0;
    int v[4];
    int pad = 0;
    for (int i = 0; i < 4; ++i) {
      if (group_[i] == '=') {
        v[i] = 0;
        ++pad;
        continue;
      }
      v[i] = kDecode[static_cast<unsigned char>(group_[i])];
      if (v[i] < 0 || pad > 0) return !(failed_ = true);  // not base64, or data after '='
    }
    if (pad > 2) return !(failed_ = true);
    const uint32_t n = (static_cast<uint32_t>(v[0]) << 18) | (static_cast<uint32_t>(v[1]) << 12) |
                       (static_cast<uint32_t>(v[2]) << 6) | static_cast<uint32_t>(v[3]);
    out.push_back(static_cast<char>((n >> 16) & 0xff));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
  }
  return true;
}

void Base64Encoder::feed(std::string_view in, std::string& out) {
  for (char c : in) {
    group_[held_++] = static_cast<unsigned char>(c);
    if (held_ < 3) continue;
    held_ = 0;
    const uint32_t n = (uint32_t{group_[0]} << 16) | (uint32_t{group_[1]} << 8) | group_[2];
    out.push_back(kAlphabet[(n >> 18) & 63]);
    out.push_back(kAlphabet[(n >> 12) & 63]);
    out.push_back(kAlphabet[(n >> 6) & 63]);
    out.push_back(kAlphabet[n & 63]);
  }
}

void Base64Encoder::finish(std::string& out) {
  if (held_ == 0) return;
  const uint32_t n = (uint32_t{group_[0]} << 16) | (held_ > 1 ? uint32_t{group_[1]} << 8 : 0);
  out.push_back(kAlphabet[(n >> 18) & 63]);
  out.push_back(kAlphabet[(n >> 12) & 63]);
  out.push_back(held_ > 1 ? kAlphabet[(n >> 6) & 63] : '=');
  out.push_back('=');
  held_ = 0;
}

std::optional<std::vector<Frame>> parse_frames(std::string_view body) {
  std::vector<Frame> out;
  while (!body.empty()) {
    if (body.size() < 5) return std::nullopt;
    const auto flag = static_cast<unsigned char>(body[0]);
    if ((flag & ~0x81u) != 0) return std::nullopt;
    uint64_t len = 0;
    for (int i = 1; i <= 4; ++i) len = (len << 8) | static_cast<unsigned char>(body[static_cast<size_t>(i)]);
    if (len > body.size() - 5) return std::nullopt;
    out.push_back(Frame{(flag & 0x80) != 0, (flag & 0x01) != 0, body.substr(5, static_cast<size_t>(len))});
    body.remove_prefix(5 + static_cast<size_t>(len));
  }
  return out;
}

std::optional<std::vector<std::pair<std::string, std::string>>> parse_trailers(std::string_view payload) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!payload.empty()) {
    size_t eol = payload.find("\r\n");
    std::string_view line = payload.substr(0, eol);
    payload.remove_prefix(eol == std::string_view::npos ? payload.size() : eol + 2);
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    std::string name(line.substr(0, colon));
    for (char& c : name)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    out.emplace_back(std::move(name), std::string(value));
  }
  return out;
}

}  // namespace gantry::filters::grpc_web
