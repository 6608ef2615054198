#include "proxy/filters/response_capture.h"

#include <cstdint>

namespace gantry::filters {

namespace {

// True when `name` is a token of any Connection field of `headers`.
bool named_by_connection(const std::vector<http::Header>& headers, std::string_view name) {
  bool found = false;
  for (const auto& h : headers) {
    if (!http::iequals(h.name, "connection")) continue;
    http::for_each_list_element(h.value, [&](std::string_view e) {
      if (http::iequals(e, name)) found = true;
    });
  }
  return found;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string cache_key(bool tls, std::string_view host, std::string_view path,
                      std::string_view query) {
  std::string key;
  key.reserve(8 + host.size() + path.size() + query.size() + 1);
  key.append(tls ? "https://" : "http://").append(host).append(path);
  if (!query.empty()) key.append("?").append(query);
  return key;
}

std::vector<std::pair<std::string, std::string>> storable_headers(
    const std::vector<http::Header>& response_headers) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(response_headers.size());
  for (const auto& h : response_headers) {
    if (http::is_hop_by_hop(h.name) || http::iequals(h.name, "content-length") ||
        http::iequals(h.name, "x-request-id") || named_by_connection(response_headers, h.name))
      continue;
    out.emplace_back(std::string(h.name), std::string(h.value));
  }
  return out;
}

bool dechunk(std::string_view raw, std::string& out) {
  size_t i = 0;
  while (true) {
    // chunk-size [ extensions ] CRLF
    uint64_t size = 0;
    size_t digits = 0;
    for (; i < raw.size() && hex_digit(raw[i]) >= 0; ++i, ++digits) {
      if (size > (uint64_t{1} << 59)) return false;
      size = size * 16 + static_cast<uint64_t>(hex_digit(raw[i]));
    }
    if (digits == 0) return false;
    size_t eol = raw.find("\r\n", i);
    if (eol == std::string_view::npos) return false;
    i = eol + 2;
    if (size == 0) break;
    if (raw.size() - i < size + 2 || raw.substr(i + size, 2) != "\r\n") return false;
    out.append(raw.substr(i, size));
    i += size + 2;
  }
  // trailer fields, then the final CRLF
  while (true) {
    size_t eol = raw.find("\r\n", i);
    if (eol == std::string_view::npos) return false;
    if (eol == i) return true;
    i = eol + 2;
  }
}

std::string shadow_host(std::string_view host) {
  size_t name_end = host.size();
  if (!host.empty() && host.front() == '[') {  // IPv6 literal: the port follows ']'
    auto close = host.find(']');
    if (close != std::string_view::npos) name_end = close + 1;
  } else if (auto colon = host.rfind(':'); colon != std::string_view::npos) {
    name_end = colon;
  }
  std::string out(host.substr(0, name_end));
  out += "-shadow";
  out.append(host.substr(name_end));
  return out;
}

}  // namespace gantry::filters
