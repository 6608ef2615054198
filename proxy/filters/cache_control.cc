#include "proxy/filters/cache_control.h"

namespace gantry::filters {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

uint32_t parse_delta(std::string_view v) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty()) return 0;
  uint64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return 0;  // invalid: treat as stale
    n = n * 10 + static_cast<uint64_t>(c - '0');
    if (n > kMaxDeltaSeconds) n = kMaxDeltaSeconds;
  }
  return static_cast<uint32_t>(n);
}

bool has_header(std::span<const http::Header> headers, std::string_view name) {
  for (const auto& h : headers) {
    if (http::iequals(h.name, name)) return true;
  }
  return false;
}

}  // namespace

void parse_cache_control(std::string_view value, CacheControl& cc) {
  // Split on commas outside quoted strings.
  size_t i = 0;
  while (i <= value.size()) {
    size_t j = i;
    bool quoted = false;
    while (j < value.size() && (quoted || value[j] != ',')) {
      if (value[j] == '"') quoted = !quoted;
      if (quoted && value[j] == '\\' && j + 1 < value.size()) ++j;
      ++j;
    }
    std::string_view d = trim(value.substr(i, j - i));
    i = j + 1;
    if (d.empty()) continue;
    std::string_view name = d, arg;
    bool has_arg = false;
    if (size_t eq = d.find('='); eq != std::string_view::npos) {
      name = trim(d.substr(0, eq));
      arg = trim(d.substr(eq + 1));
      has_arg = true;
    }
    if (http::iequals(name, "no-store")) {
      cc.no_store = true;
    } else if (http::iequals(name, "no-cache")) {
      cc.no_cache = true;  // with field names too: conservative
    } else if (http::iequals(name, "private")) {
      cc.private_ = true;  // with field names too: conservative
    } else if (http::iequals(name, "public")) {
      cc.public_ = true;
    } else if (http::iequals(name, "must-revalidate") || http::iequals(name, "proxy-revalidate")) {
      cc.must_revalidate = true;
    } else if (http::iequals(name, "only-if-cached")) {
      cc.only_if_cached = true;
    } else if (http::iequals(name, "max-age")) {
      if (!cc.max_age) cc.max_age = has_arg ? parse_delta(arg) : 0;
    } else if (http::iequals(name, "s-maxage")) {
      if (!cc.s_maxage) cc.s_maxage = has_arg ? parse_delta(arg) : 0;
    }
  }
}

CacheControl cache_control_of(std::span<const http::Header> headers) {
  CacheControl cc;
  for (const auto& h : headers) {
    if (http::iequals(h.name, "Cache-Control")) parse_cache_control(h.value, cc);
  }
  return cc;
}

RequestCachePolicy request_policy(std::string_view method, std::span<const http::Header> headers) {
  if (method != "GET" && method != "HEAD") return {};
  bool has_cc = false;
  bool pragma_no_cache = false;
  for (const auto& h : headers) {
    if (http::iequals(h.name, "Cache-Control")) has_cc = true;
    if (http::iequals(h.name, "Pragma")) {
      http::for_each_list_element(h.value, [&](std::string_view e) {
        if (http::iequals(e, "no-cache")) pragma_no_cache = true;
      });
    }
  }
  const CacheControl cc = cache_control_of(headers);
  if (cc.no_store) return {};
  RequestCachePolicy p{true, true};
  if (cc.no_cache || (cc.max_age && *cc.max_age == 0) || (!has_cc && pragma_no_cache)) {
    p.lookup = false;
  }
  return p;
}

std::optional<std::chrono::milliseconds> response_ttl(const snapshot::Cache& config,
                                                      bool request_had_authorization, int status,
                                                      std::span<const http::Header> headers) {
  if (status < 200 || status > 599 || status == 206 || status == 304) return std::nullopt;
  const CacheControl cc = cache_control_of(headers);
  if (cc.no_store || cc.private_ || cc.no_cache) return std::nullopt;
  if (has_header(headers, "Set-Cookie")) return std::nullopt;
  for (const auto& h : headers) {
    if (!http::iequals(h.name, "Vary")) continue;
    bool star = false;
    http::for_each_list_element(h.value, [&](std::string_view e) { star = star || e == "*"; });
    if (star) return std::nullopt;
  }
  if (request_had_authorization && !cc.public_ && !cc.s_maxage && !cc.must_revalidate) {
    return std::nullopt;
  }
  const bool explicit_ttl = cc.s_maxage || cc.max_age;
  switch (status) {
    case 200:
    case 203:
    case 204:
    case 300:
    case 301:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
      break;
    default:
      if (!explicit_ttl) return std::nullopt;
  }
  std::chrono::milliseconds ttl;
  if (cc.s_maxage) {
    ttl = std::chrono::seconds(*cc.s_maxage);
  } else if (cc.max_age) {
    ttl = std::chrono::seconds(*cc.max_age);
  } else {
    ttl = config.ttl;
  }
  if (ttl.count() <= 0) return std::nullopt;
  return ttl;
}

}  // namespace gantry::filters
