#include "proxy/filters/response_cache.h"

#include <algorithm>
#include <list>
#include <mutex>
#include <unordered_map>

namespace gantry::filters {

namespace {

constexpr size_t kEntryOverhead = 256;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + ('a' - 'A'));
  }
  return out;
}

// The sorted, de-duplicated, lower-cased Vary names; false for Vary: *.
bool vary_names(std::span<const std::pair<std::string, std::string>> headers,
                std::vector<std::string>& names) {
  bool star = false;
  for (const auto& [name, value] : headers) {
    if (!http::iequals(name, "Vary")) continue;
    http::for_each_list_element(value, [&](std::string_view e) {
      if (e == "*") star = true;
      names.push_back(lower(e));
    });
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return !star;
}

std::string full_key(std::string_view primary, const std::vector<std::string>& names,
                     std::span<const http::Header> request_headers) {
  std::string key(primary);
  for (const auto& n : names) {
    key += '\n';
    key += n;
    key += '=';
    bool first = true;
    for (const auto& h : request_headers) {
      if (!http::iequals(h.name, n)) continue;
      if (!first) key += ", ";
      key.append(h.value);
      first = false;
    }
  }
  return key;
}

}  // namespace

uint64_t CachedResponse::age_seconds(SteadyTime now) const {
  const auto stored_for = now > stored_at ? now - stored_at : SteadyTime::duration::zero();
  return initial_age + static_cast<uint64_t>(
                           std::chrono::duration_cast<std::chrono::seconds>(stored_for).count());
}

namespace detail {

struct VarySpec {
  std::string primary;
  std::vector<std::string> names;
  size_t variants = 0;
};

struct Entry {
  std::string key;
  std::string primary;
  std::shared_ptr<const CachedResponse> response;
  size_t bytes = 0;
};

struct Shard {
  std::mutex mu;
  std::list<Entry> lru;  // front: most recently used
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;
  std::unordered_map<std::string_view, std::unique_ptr<VarySpec>> vary;
  std::unordered_map<std::string, std::vector<std::function<void()>>> inflight;
  uint64_t bytes = 0;
  CacheStats stats;

  void remove(std::list<Entry>::iterator it) {
    index.erase(it->key);
    bytes -= it->bytes;
    if (auto v = vary.find(it->primary); v != vary.end() && --v->second->variants == 0) {
      vary.erase(v);
    }
    lru.erase(it);
  }
};

struct CacheState {
  snapshot::Cache config;
  uint64_t shard_bytes = 0;
  std::vector<std::unique_ptr<Shard>> shards;

  size_t shard_of(std::string_view primary) const {
    const size_t h = std::hash<std::string_view>{}(primary);
    return (h ^ (h >> 17)) % shards.size();
  }
};

}  // namespace detail

// ---------------------------------------------------------------- FillTicket

FillTicket::FillTicket(FillTicket&& o) noexcept
    : state_(std::move(o.state_)), shard_(o.shard_), key_(std::move(o.key_)) {
  o.state_.reset();
}

FillTicket& FillTicket::operator=(FillTicket&& o) noexcept {
  if (this != &o) {
    finish();
    state_ = std::move(o.state_);
    shard_ = o.shard_;
    key_ = std::move(o.key_);
    o.state_.reset();
  }
  return *this;
}

FillTicket::~FillTicket() { finish(); }

void FillTicket::finish() {
  if (!state_) return;
  std::vector<std::function<void()>> waiters;
  {
    detail::Shard& s = *state_->shards[shard_];
    std::lock_guard lock(s.mu);
    if (auto it = s.inflight.find(key_); it != s.inflight.end()) {
      waiters = std::move(it->second);
      s.inflight.erase(it);
    }
  }
  state_.reset();
  for (auto& w : waiters) {
    if (w) w();
  }
}

// ---------------------------------------------------------------- ResponseCache

Result<std::unique_ptr<ResponseCache>> ResponseCache::create(const snapshot::Cache& config,
                                                             size_t shards) {
  if (config.max_bytes == 0) return Error{"cache: maxBytes must be > 0"};
  if (config.max_object_bytes > config.max_bytes) {
    return Error{"cache: maxObjectBytes must not exceed maxBytes"};
  }
  if (config.ttl.count() < 0) return Error{"cache: ttl must not be negative"};
  if (shards == 0) shards = 1;
  auto state = std::make_shared<detail::CacheState>();
  state->config = config;
  state->shard_bytes = std::max<uint64_t>(1, config.max_bytes / shards);
  for (size_t i = 0; i < shards; ++i) state->shards.push_back(std::make_unique<detail::Shard>());
  return std::unique_ptr<ResponseCache>(new ResponseCache(std::move(state)));
}

ResponseCache::~ResponseCache() = default;

CacheLookup ResponseCache::lookup(std::string_view key,
                                  std::span<const http::Header> request_headers, SteadyTime now,
                                  std::function<void()> on_fill_done) {
  CacheLookup out;
  const size_t si = state_->shard_of(key);
  detail::Shard& s = *state_->shards[si];
  std::unique_lock lock(s.mu);
  std::string varied;
  std::string_view full = key;
  if (auto v = s.vary.find(key); v != s.vary.end() && !v->second->names.empty()) {
    varied = full_key(key, v->second->names, request_headers);
    full = varied;
  }
  if (auto it = s.index.find(full); it != s.index.end()) {
    if (now < it->second->response->expires_at) {
      s.lru.splice(s.lru.begin(), s.lru, it->second);
      ++s.stats.hits;
      out.kind = CacheLookupKind::kHit;
      out.response = it->second->response;
      return out;
    }
    ++s.stats.expirations;
    s.remove(it->second);
  }
  ++s.stats.misses;
  out.kind = CacheLookupKind::kMiss;
  if (!on_fill_done) return out;
  if (auto f = s.inflight.find(std::string(key)); f != s.inflight.end()) {
    f->second.push_back(std::move(on_fill_done));
    ++s.stats.coalesced;
    out.kind = CacheLookupKind::kWait;
    return out;
  }
  s.inflight.emplace(std::string(key), std::vector<std::function<void()>>{});
  out.ticket.state_ = state_;
  out.ticket.shard_ = si;
  out.ticket.key_ = std::string(key);
  return out;
}

bool ResponseCache::store(std::string_view key, std::span<const http::Header> request_headers,
                          int status, std::vector<std::pair<std::string, std::string>> headers,
                          std::string body, std::chrono::milliseconds ttl, SteadyTime now) {
  std::vector<std::string> names;
  if (!vary_names(headers, names) || ttl.count() <= 0) return false;
  auto resp = std::make_shared<CachedResponse>();
  resp->status = status;
  for (auto it = headers.begin(); it != headers.end();) {
    if (http::iequals(it->first, "Age")) {
      uint64_t age = 0;
      bool digits = !it->second.empty();
      for (char c : it->second) {
        if (c < '0' || c > '9') digits = false;
        if (digits && age < (1u << 31)) age = age * 10 + static_cast<uint64_t>(c - '0');
      }
      if (digits) resp->initial_age = static_cast<uint32_t>(std::min<uint64_t>(age, 1u << 31));
      it = headers.erase(it);
    } else {
      ++it;
    }
  }
  const auto lifetime = ttl - std::chrono::seconds(resp->initial_age);
  if (lifetime.count() <= 0) return false;
  resp->stored_at = now;
  resp->expires_at = now + lifetime;
  std::string full = full_key(key, names, request_headers);
  size_t object_bytes = body.size();  // what max_object_bytes bounds: headers + body
  for (const auto& [n, v] : headers) object_bytes += n.size() + v.size() + 4;
  const size_t bytes = kEntryOverhead + full.size() + key.size() + object_bytes;
  if (object_bytes > state_->config.max_object_bytes || bytes > state_->shard_bytes) return false;
  resp->headers = std::move(headers);
  resp->body = std::move(body);

  detail::Shard& s = *state_->shards[state_->shard_of(key)];
  std::lock_guard lock(s.mu);
  if (auto old = s.index.find(full); old != s.index.end()) s.remove(old->second);
  auto v = s.vary.find(key);
  if (v == s.vary.end()) {
    auto spec = std::make_unique<detail::VarySpec>();
    spec->primary = std::string(key);
    std::string_view view = spec->primary;
    v = s.vary.emplace(view, std::move(spec)).first;
  }
  v->second->names = std::move(names);
  ++v->second->variants;
  s.lru.push_front(detail::Entry{std::move(full), std::string(key), std::move(resp), bytes});
  s.index.emplace(s.lru.front().key, s.lru.begin());
  s.bytes += bytes;
  ++s.stats.stores;
  while (s.bytes > state_->shard_bytes && s.lru.size() > 1) {
    s.remove(std::prev(s.lru.end()));
    ++s.stats.evictions;
  }
  return true;
}

CacheStats ResponseCache::stats() const {
  CacheStats total;
  for (const auto& sp : state_->shards) {
    std::lock_guard lock(sp->mu);
    const CacheStats& s = sp->stats;
    total.hits += s.hits;
    total.misses += s.misses;
    total.stores += s.stores;
    total.evictions += s.evictions;
    total.expirations += s.expirations;
    total.coalesced += s.coalesced;
    total.bytes += sp->bytes;
    total.entries += sp->lru.size();
  }
  return total;
}

}  // namespace gantry::filters
