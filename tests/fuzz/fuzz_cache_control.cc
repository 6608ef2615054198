// Fuzzes Cache-Control parsing and the cache policy
// (proxy/filters/cache_control.h). The input is split into header lines
// ("Name: value"). Invariants: delta-seconds never exceed 2^31; parsing is
// idempotent (first occurrence wins, flags only turn on); a request policy
// that forbids storing also forbids the lookup; a TTL is always positive and
// never given for no-store / private / no-cache / Set-Cookie.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "proxy/filters/cache_control.h"

using namespace gantry::filters;

namespace {

void check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  CacheControl once;
  parse_cache_control(in, once);
  CacheControl twice = once;
  parse_cache_control(in, twice);
  check(once == twice);
  if (once.max_age) check(*once.max_age <= kMaxDeltaSeconds);
  if (once.s_maxage) check(*once.s_maxage <= kMaxDeltaSeconds);

  std::vector<gantry::http::Header> headers;
  size_t i = 0;
  while (i < in.size()) {
    size_t nl = in.find('\n', i);
    if (nl == std::string_view::npos) nl = in.size();
    std::string_view line = in.substr(i, nl - i);
    if (size_t colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      headers.push_back({line.substr(0, colon), value});
    }
    i = nl + 1;
  }

  const RequestCachePolicy p = request_policy(size % 2 ? "GET" : "HEAD", headers);
  check(p.store || !p.lookup);

  gantry::snapshot::Cache config;
  const int status = 100 + static_cast<int>(size % 500);
  const auto ttl = response_ttl(config, size % 3 == 0, status, headers);
  const CacheControl cc = cache_control_of(headers);
  if (ttl) {
    check(ttl->count() > 0);
    check(!cc.no_store && !cc.private_ && !cc.no_cache);
    check(status != 206 && status != 304);
    for (const auto& h : headers) check(!gantry::http::iequals(h.name, "Set-Cookie"));
  }
  return 0;
}
