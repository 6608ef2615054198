// filters.apiKey as a chain filter (request_filters.h).
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cstring>

#include "proxy/filters/access_decisions.h"
#include "proxy/filters/request_filters.h"

namespace gantry::filters {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The value of query parameter `name` (percent-decoded into `out`); false when absent.
bool query_value(std::string_view query, std::string_view name, std::string& out) {
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    auto eq = param.find('=');
    if (param.substr(0, eq) != name) continue;
    std::string_view v = eq == std::string_view::npos ? std::string_view{} : param.substr(eq + 1);
    out.clear();
    for (size_t i = 0; i < v.size(); ++i) {
      int hi, lo;
      if (v[i] == '%' && i + 2 < v.size() && (hi = hex_value(v[i + 1])) >= 0 &&
          (lo = hex_value(v[i + 2])) >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
      } else {
        out.push_back(v[i]);
      }
    }
    return true;
  }
  return false;
}

// `query` without any parameter called `name`.
std::string drop_param(std::string_view query, std::string_view name) {
  std::string out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (param.substr(0, param.find('=')) == name) continue;
    if (!out.empty()) out += '&';
    out += param;
  }
  return out;
}

uint64_t prefix_of(const unsigned char* d) {
  uint64_t v;
  std::memcpy(&v, d, sizeof v);
  return v;
}

}  // namespace

ApiKeyFilter::ApiKeyFilter(const snapshot::ApiKey& config) : config_(config) {
  for (const auto& k : config.keys) {
    Entry e{};
    for (size_t i = 0; i < 32; ++i)  // validated: 64 hex digits
      e.digest[i] = static_cast<unsigned char>(hex_value(k.sha256[2 * i]) * 16 + hex_value(k.sha256[2 * i + 1]));
    e.consumer = k.consumer;
    by_prefix_.emplace(prefix_of(e.digest.data()), e);
  }
}

std::string_view ApiKeyFilter::lookup(const unsigned char* digest) const {
  auto [lo, hi] = by_prefix_.equal_range(prefix_of(digest));
  std::string_view found;
  for (auto it = lo; it != hi; ++it)
    if (CRYPTO_memcmp(it->second.digest.data(), digest, 32) == 0) found = it->second.consumer;
  return found;
}

exchange::Verdict ApiKeyFilter::on_request(exchange::Exchange& ex) const {
  std::optional<std::string_view> key;
  std::string from_query;
  if (!config_.header.empty()) key = ex.header(config_.header);
  if (!key && !config_.query_param.empty() && query_value(ex.req.query, config_.query_param, from_query))
    key = from_query;
  if (key && !key->empty()) {
    unsigned char digest[32];
    SHA256(reinterpret_cast<const unsigned char*>(key->data()), key->size(), digest);
    OPENSSL_cleanse(from_query.data(), from_query.size());
    std::string_view consumer = lookup(digest);
    if (!consumer.empty()) {
      ex.consumer = consumer;
      count_access(AccessFilter::kApiKey, AccessDecision::kAllowed);
      return exchange::Verdict::kContinue;
    }
    ex.reply.status = config_.unknown_key_status;
    ex.reply.body = "invalid API key";
    ex.reply.kind = "api_key_invalid";
  } else {
    ex.reply.status = 401;
    ex.reply.body = "API key required";
    ex.reply.kind = "api_key_missing";
  }
  if (ex.reply.status == 401) ex.reply.headers.emplace_back("www-authenticate", "ApiKey");
  count_access(AccessFilter::kApiKey, AccessDecision::kDenied);
  return exchange::Verdict::kRespond;
}

void ApiKeyFilter::on_upstream_request(exchange::Exchange& ex, exchange::UpstreamRequest& up) const {
  if (!config_.header.empty()) up.headers.remove.push_back(config_.header);
  if (!config_.consumer_header.empty()) up.headers.set.push_back({config_.consumer_header, ex.consumer});
  if (!config_.query_param.empty()) {
    std::string_view q = up.query ? std::string_view(*up.query) : ex.req.query;
    std::string dummy;
    if (query_value(q, config_.query_param, dummy)) up.query = drop_param(q, config_.query_param);
    OPENSSL_cleanse(dummy.data(), dummy.size());
  }
}

}  // namespace gantry::filters
