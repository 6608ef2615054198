#include "proxy/filters/global_rate_limit.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>

namespace gantry::filters {

namespace {

// The store's decisions: rate_limiter.cc's two algorithms, line for line,
// in Lua 5.1 (numbers are doubles; every value stays an integer below 2^53,
// and idiv corrects floor(a / b) where the quotient rounded up). The clock is
// the store's (TIME, microseconds, read once per call): replicas' clocks
// never enter a decision. One call decides a batch: KEYS[i] with ARGV[5i-4 ..
// 5i] (algorithm 't' or 'w', then requests, interval, capacity and n in
// hexadecimal): the n decisions pending on that key in the proxy, decided as
// n requests at one instant would be one after the other, with the key's
// state read and written once. A key may come twice in a call (counted twice,
// in order). Reply: per key {admitted, tokens, prev, curr, elapsed},
// flattened: how many of the n were admitted (the first ones) and the state
// before them (GlobalKeyState), from which the proxy derives each decision's
// RateLimit-* and Retry-After values (global_decision, the same arithmetic).
//
// State: one string per key, its numbers packed as little-endian doubles
// (struct.pack: '<dd' = last refill in us, tokens x interval for the token
// bucket; '<ddd' = window index, previous and current window counts), read
// with GET and written with one SET ... PX to the moment it would be back to
// a fresh key's state. What it costs Redis, measured (callgrind, instructions
// inside EVALSHA of one key, docs/BENCHMARKS.md): the first version's hash
// (HMGET, HSET, PEXPIRE) and decimal arguments 88.7k; a string read and
// written by two commands 76.7k; with hexadecimal arguments (tonumber(x, 16)
// is one strtoul; a decimal tonumber runs strtod twice) and packed doubles
// (no number-string conversion at all) 62.2k; 63.1k with the checks below.
// A value that is not such a string (another version's, a foreign one)
// counts as a fresh key; GET runs under pcall so that not even a key of
// another type (WRONGTYPE) fails a call. global_key() carries the state's
// version in its digest, so the hash keys of older proxies are never read:
// they expire on their own.
//
// Redis 7 replicates a script's effects (its writes, not the script), so
// reading TIME before writing is allowed; older servers are asked for it
// with replicate_commands (REDIS_VERSION_NUM exists from 7.0 on).
constexpr std::string_view kScript = R"lua(
if not redis.REDIS_VERSION_NUM then redis.replicate_commands() end
local tm = redis.call('TIME')
local now = tm[1] * 1000000 + tm[2]
local call, pcall_, floor, tonumber, pack, unpack = redis.call, redis.pcall, math.floor, tonumber, struct.pack, struct.unpack
local function idiv(a, b)
  local q = floor(a / b)
  if q * b > a then q = q - 1 end
  return q
end
local out = {}
for i = 1, #KEYS do
  local key, j = KEYS[i], 5 * i
  local requests, interval = tonumber(ARGV[j - 3], 16), tonumber(ARGV[j - 2], 16)
  local capacity, n = tonumber(ARGV[j - 1], 16), tonumber(ARGV[j], 16)
  local v = pcall_('GET', key)
  local admitted, tokens, prev, curr, elapsed = 0, 0, 0, 0, 0
  if ARGV[j - 4] == 't' then
    local full = capacity * interval
    local rate = requests
    local at
    if type(v) == 'string' and #v == 16 then at, tokens = unpack('<dd', v) else at, tokens = now, full end
    if now > at then
      local gone = now - at
      if gone >= idiv(full - tokens + rate - 1, rate) then tokens = full else tokens = tokens + gone * rate end
      at = now
    end
    admitted = idiv(tokens, interval)
    if admitted > n then admitted = n end
    local after = tokens - admitted * interval
    call('SET', key, pack('<dd', at, after), 'PX', idiv(idiv(full - after + rate - 1, rate), 1000) + 1000)
  else
    local window = idiv(now, interval)
    local at = window
    if type(v) == 'string' and #v == 24 then at, prev, curr = unpack('<ddd', v) end
    if window == at + 1 then
      prev, curr = curr, 0
    elseif window > at + 1 then
      prev, curr = 0, 0
    end
    if window > at then at = window end
    elapsed = now - at * interval
    if elapsed < 0 then elapsed = 0 end
    local left = 0
    if interval > elapsed then left = interval - elapsed end
    admitted = idiv(requests * interval - prev * left, interval) - curr
    if admitted > n then admitted = n end
    if admitted < 0 then admitted = 0 end
    call('SET', key, pack('<ddd', at, prev, curr + admitted), 'PX', idiv(2 * interval, 1000) + 1000)
  end
  local o = 5 * i
  out[o - 4], out[o - 3], out[o - 2], out[o - 1], out[o] = admitted, tokens, prev, curr, elapsed
end
return out
)lua";

std::string hex(const unsigned char* p, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

std::string digest_hex(const EVP_MD* md, std::string_view data) {
  unsigned char buf[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), buf, &n, md, nullptr);
  return hex(buf, n);
}

// FNV-1a 64: a stable digest of the settings (the same on every replica).
uint64_t fnv1a(std::string_view s, uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

std::string global_key(std::string_view prefix, std::string_view rule_label,
                       const snapshot::RateLimit& c, std::string_view client_key) {
  // "2": the state's format (packed strings; "1", implicit, was hashes):
  // proxies of different formats never share a key.
  std::string settings = "2|";
  settings.append(c.algorithm == snapshot::RateLimitAlgorithm::kSlidingWindow ? "w" : "t");
  settings.append("|").append(std::to_string(c.requests));
  settings.append("|").append(std::to_string(c.interval.count()));
  settings.append("|").append(std::to_string(c.burst));
  settings.append("|").append(c.key);
  const uint64_t h = fnv1a(settings);
  unsigned char hb[8];
  for (int i = 0; i < 8; ++i) hb[i] = static_cast<unsigned char>(h >> (56 - 8 * i));
  std::string out;
  out.reserve(prefix.size() + rule_label.size() + 24 + std::min<size_t>(client_key.size(), 128));
  out.append(prefix).append("{").append(rule_label).append("|").append(hex(hb, 4)).append("|");
  if (client_key.size() > 128)
    out.append("sha256:").append(digest_hex(EVP_sha256(), client_key));
  else
    out.append(client_key);
  out.append("}");
  return out;
}

GlobalCheck global_check(const snapshot::RateLimit& c) {
  GlobalCheck g;
  g.sliding_window = c.algorithm == snapshot::RateLimitAlgorithm::kSlidingWindow;
  g.requests = c.requests;
  g.interval_us = static_cast<uint64_t>(c.interval.count()) * 1000;
  g.capacity = g.sliding_window ? c.requests : c.requests + c.burst;
  return g;
}

Status global_limit_fits(const snapshot::RateLimit& c) {
  constexpr uint64_t kMax = uint64_t{1} << 53;
  const GlobalCheck g = global_check(c);
  if (g.interval_us == 0 || g.requests == 0) return Error{"requests and interval must be > 0"};
  // The largest products the script forms: capacity x interval (token bucket),
  // requests x interval (window), the clock (~2^51 us) plus interval x rate.
  if (g.capacity > kMax / g.interval_us || g.requests > kMax / g.interval_us)
    return Error{"requests + burst times the interval (in microseconds) must stay below 2^53 with scope global"};
  return ok_status();
}

snapshot::RateLimit fallback_limit(const snapshot::RateLimit& c, uint32_t expected_replicas) {
  snapshot::RateLimit f = c;
  const uint64_t n = std::max<uint32_t>(1, expected_replicas);
  f.requests = std::max<uint64_t>(1, c.requests / n);
  f.burst = c.burst / n;
  f.scope = snapshot::RateLimitScope::kLocal;
  return f;
}

uint16_t cluster_slot(std::string_view key) {
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  uint16_t crc = 0;
  for (unsigned char c : key) {
    crc ^= static_cast<uint16_t>(c << 8);
    for (int i = 0; i < 8; ++i)
      crc = static_cast<uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return static_cast<uint16_t>(crc & 16383);
}

bool global_state_valid(const GlobalCheck& c, const GlobalKeyState& s, uint64_t n) {
  if (c.interval_us == 0 || c.requests == 0 || s.admitted > n) return false;
  // Bounded by the limit, the products stay below 2^53 (global_limit_fits);
  // and `admitted` is what the algorithm admits from that state: as many as
  // fit, at most n.
  const uint64_t interval = c.interval_us;
  if (!c.sliding_window) {
    if (s.tokens > c.capacity * interval || s.admitted > s.tokens / interval) return false;
    return s.admitted == n || s.tokens - s.admitted * interval < interval;
  }
  if (s.prev > c.requests || s.curr > c.requests || s.admitted > c.requests - s.curr) return false;
  const uint64_t left = interval > s.elapsed ? interval - s.elapsed : 0;
  const uint64_t quota = c.requests * interval;
  const uint64_t weighted_prev = s.prev * left;
  if (weighted_prev + (s.curr + s.admitted) * interval > quota) return false;
  return s.admitted == n || weighted_prev + (s.curr + s.admitted + 1) * interval > quota;
}

namespace {

constexpr uint64_t kMicrosPerSecond = 1000000;

// ceil(us / 1 s), at least 1 (the script's and rate_limiter.cc's).
uint64_t ceil_seconds(uint64_t us) { return std::max<uint64_t>(1, (us + kMicrosPerSecond - 1) / kMicrosPerSecond); }

}  // namespace

RateLimitDecision global_decision(const GlobalCheck& c, const GlobalKeyState& s, uint64_t i) {
  const uint64_t interval = c.interval_us;
  const uint64_t rate = c.requests;
  RateLimitDecision d;
  d.allowed = i < s.admitted;
  if (!c.sliding_window) {
    // rate_limiter.cc's token_bucket after its refill, the (i + 1)-th take.
    const uint64_t full = c.capacity * interval;
    const uint64_t tokens = s.tokens - (d.allowed ? i + 1 : s.admitted) * interval;
    d.limit = c.capacity;
    if (!d.allowed) d.retry_after_seconds = ceil_seconds((interval - tokens + rate - 1) / rate);
    d.remaining = tokens / interval;
    d.reset_seconds = tokens == full ? 0 : ceil_seconds((full - tokens + rate - 1) / rate);
    return d;
  }
  // rate_limiter.cc's sliding_window after its roll, with curr the count
  // the earlier decisions of the call left.
  const uint64_t elapsed = s.elapsed;
  const uint64_t left = interval > elapsed ? interval - elapsed : 0;
  const uint64_t quota = c.requests * interval;
  const uint64_t weighted_prev = s.prev * left;
  d.limit = c.requests;
  d.reset_seconds = ceil_seconds(left);
  if (d.allowed) {
    const uint64_t curr = s.curr + i + 1;
    d.remaining = (quota - weighted_prev - curr * interval) / interval;
    return d;
  }
  const uint64_t curr = s.curr + s.admitted;
  uint64_t wait = 0;
  if (curr + 1 <= c.requests) {
    const uint64_t room = (c.requests - curr - 1) * interval;
    const uint64_t t = s.prev == 0 ? interval : interval - std::min(interval, room / s.prev);
    wait = t > elapsed ? t - elapsed : 1;
  } else {
    const uint64_t room = (c.requests - 1) * interval;
    const uint64_t t = curr == 0 ? 0 : interval - std::min(interval, room / curr);
    wait = left + t;
  }
  d.retry_after_seconds = ceil_seconds(wait);
  return d;
}

std::string_view global_script() { return kScript; }

const std::string& global_script_sha1() {
  static const std::string sha = digest_hex(EVP_sha1(), kScript);
  return sha;
}

}  // namespace gantry::filters
