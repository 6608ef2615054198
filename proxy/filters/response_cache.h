// The response cache of one rule: an LRU store bounded in bytes, keyed by the
// request's cache key plus the values of the request headers the response
// varies on, with request coalescing.
//
// Keys: the runtime passes a primary key (e.g. host + normalised target) and
// the request's headers. The first stored response of a primary key fixes its
// Vary header names (a later store replaces them); the full key appends the
// request's values of those headers (lower-cased names, values as sent, all
// occurrences joined by ", "). Only GET responses should be stored; a HEAD
// may be answered from a GET entry without the body.
// Bytes: each entry counts key + headers + body + a fixed overhead; entries
// larger than max_object_bytes (or than one shard's share of max_bytes) are
// not stored. Shards (by primary key hash) each hold max_bytes / shards and
// evict their least recently used entries; expired entries are dropped when
// met. Stored responses are shared and immutable: a hit stays valid after it
// is evicted.
// Coalescing: lookup() with an on_fill_done callback makes the first miss of a
// primary key the leader (it gets a FillTicket) and later misses waiters
// (kWait). The leader fetches, store()s if response_ttl() allows, and then
// finishes (or destroys) its ticket; that runs every waiter's callback once,
// on the leader's thread and outside any lock — a callback must only post to
// its own worker. A woken waiter calls lookup() again without a callback: a
// hit, or a plain miss it fetches itself (so an uncacheable response never
// serialises requests).
// Thread-safe: one mutex per shard; callbacks never run under a lock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/base/result.h"
#include "proxy/http/message.h"
#include "proxy/snapshot/model.h"

namespace gantry::filters {

using SteadyTime = std::chrono::steady_clock::time_point;

struct CachedResponse {
  int status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // as stored, without Age
  std::string body;
  SteadyTime stored_at{};
  SteadyTime expires_at{};
  uint32_t initial_age = 0;  // the upstream's Age when stored, seconds

  // The value of the Age header to send: initial age + whole seconds stored.
  uint64_t age_seconds(SteadyTime now) const;
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t stores = 0;
  uint64_t evictions = 0;    // for room (LRU)
  uint64_t expirations = 0;  // stale entries dropped
  uint64_t coalesced = 0;    // lookups that waited for a leader
  uint64_t bytes = 0;
  uint64_t entries = 0;
};

namespace detail {
struct CacheState;
}

// A leader's claim on a fill. Finishing (or destroying) it wakes the waiters.
class FillTicket {
 public:
  FillTicket() = default;
  FillTicket(FillTicket&& o) noexcept;
  FillTicket& operator=(FillTicket&& o) noexcept;
  ~FillTicket();
  explicit operator bool() const { return state_ != nullptr; }
  void finish();

 private:
  friend class ResponseCache;
  std::shared_ptr<detail::CacheState> state_;
  size_t shard_ = 0;
  std::string key_;
};

enum class CacheLookupKind : uint8_t { kHit, kMiss, kWait };

struct CacheLookup {
  CacheLookupKind kind = CacheLookupKind::kMiss;
  std::shared_ptr<const CachedResponse> response;  // kHit
  FillTicket ticket;                               // kMiss with a callback: the leader's
};

class ResponseCache {
 public:
  static Result<std::unique_ptr<ResponseCache>> create(const snapshot::Cache& config,
                                                       size_t shards = 16);
  ~ResponseCache();

  CacheLookup lookup(std::string_view key, std::span<const http::Header> request_headers,
                     SteadyTime now, std::function<void()> on_fill_done = {});

  // Stores a response for `ttl` (from response_ttl()). False when it is too
  // large, says Vary: *, or is already older than its ttl.
  bool store(std::string_view key, std::span<const http::Header> request_headers, int status,
             std::vector<std::pair<std::string, std::string>> headers, std::string body,
             std::chrono::milliseconds ttl, SteadyTime now);

  CacheStats stats() const;

 private:
  explicit ResponseCache(std::shared_ptr<detail::CacheState> state) : state_(std::move(state)) {}
  std::shared_ptr<detail::CacheState> state_;
};

}  // namespace gantry::filters
