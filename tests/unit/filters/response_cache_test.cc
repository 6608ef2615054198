// Tests of the response cache store (proxy/filters/response_cache.h) on a
// fake clock: hits, TTL expiry, Age, Vary variants, LRU eviction by bytes,
// object size limit, and request coalescing.
#include "proxy/filters/response_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace gantry::filters {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Fields = std::vector<std::pair<std::string, std::string>>;

SteadyTime at(int64_t ms) { return SteadyTime{} + std::chrono::hours(1) + milliseconds(ms); }

std::unique_ptr<ResponseCache> make(uint64_t max_bytes = 1 << 20, uint64_t max_object = 1 << 16,
                                    size_t shards = 1) {
  snapshot::Cache c;
  c.max_bytes = max_bytes;
  c.max_object_bytes = max_object;
  auto r = ResponseCache::create(c, shards);
  EXPECT_TRUE(r.ok());
  return r.ok() ? std::move(r.value()) : nullptr;
}

const std::vector<http::Header> kNoHeaders;

TEST(ResponseCache, StoreThenHitUntilTtl) {
  auto cache = make();
  EXPECT_EQ(cache->lookup("h/a", kNoHeaders, at(0)).kind, CacheLookupKind::kMiss);
  ASSERT_TRUE(cache->store("h/a", kNoHeaders, 200, {{"Content-Type", "text/plain"}}, "hello",
                           seconds(10), at(0)));
  auto hit = cache->lookup("h/a", kNoHeaders, at(9999));
  ASSERT_EQ(hit.kind, CacheLookupKind::kHit);
  EXPECT_EQ(hit.response->status, 200);
  EXPECT_EQ(hit.response->body, "hello");
  EXPECT_EQ(hit.response->headers, (Fields{{"Content-Type", "text/plain"}}));
  EXPECT_EQ(hit.response->age_seconds(at(9999)), 9u);
  EXPECT_EQ(cache->lookup("h/a", kNoHeaders, at(10000)).kind, CacheLookupKind::kMiss);
  CacheStats s = cache->stats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 2u);
  EXPECT_EQ(s.expirations, 1u);
  EXPECT_EQ(s.entries, 0u);
  EXPECT_EQ(s.bytes, 0u);
}

TEST(ResponseCache, UpstreamAgeShortensLifetimeAndIsNotStored) {
  auto cache = make();
  ASSERT_TRUE(
      cache->store("k", kNoHeaders, 200, {{"Age", "10"}, {"X", "1"}}, "b", seconds(60), at(0)));
  auto hit = cache->lookup("k", kNoHeaders, at(5000));
  ASSERT_EQ(hit.kind, CacheLookupKind::kHit);
  EXPECT_EQ(hit.response->age_seconds(at(5000)), 15u);
  EXPECT_EQ(hit.response->headers, (Fields{{"X", "1"}}));
  EXPECT_EQ(cache->lookup("k", kNoHeaders, at(49999)).kind, CacheLookupKind::kHit);
  EXPECT_EQ(cache->lookup("k", kNoHeaders, at(50000)).kind, CacheLookupKind::kMiss);
  // Already older than its ttl: not stored.
  EXPECT_FALSE(cache->store("old", kNoHeaders, 200, {{"Age", "60"}}, "b", seconds(60), at(0)));
}

TEST(ResponseCache, VaryKeepsOneEntryPerVariant) {
  auto cache = make();
  const std::vector<http::Header> gzip = {{"Accept-Encoding", "gzip"}, {"User-Agent", "a"}};
  const std::vector<http::Header> br = {{"accept-encoding", "br"}, {"User-Agent", "a"}};
  const std::vector<http::Header> gzip_other_agent = {{"Accept-Encoding", "gzip"},
                                                      {"User-Agent", "b"}};
  ASSERT_TRUE(
      cache->store("k", gzip, 200, {{"Vary", "Accept-Encoding"}}, "gz", seconds(60), at(0)));
  EXPECT_EQ(cache->lookup("k", gzip, at(1)).kind, CacheLookupKind::kHit);
  EXPECT_EQ(cache->lookup("k", gzip_other_agent, at(1)).kind, CacheLookupKind::kHit);
  EXPECT_EQ(cache->lookup("k", br, at(1)).kind, CacheLookupKind::kMiss);
  EXPECT_EQ(cache->lookup("k", kNoHeaders, at(1)).kind, CacheLookupKind::kMiss);
  ASSERT_TRUE(
      cache->store("k", br, 200, {{"Vary", "accept-encoding"}}, "brotli", seconds(60), at(2)));
  auto a = cache->lookup("k", gzip, at(3));
  auto b = cache->lookup("k", br, at(3));
  ASSERT_EQ(a.kind, CacheLookupKind::kHit);
  ASSERT_EQ(b.kind, CacheLookupKind::kHit);
  EXPECT_EQ(a.response->body, "gz");
  EXPECT_EQ(b.response->body, "brotli");
  EXPECT_EQ(cache->stats().entries, 2u);
}

TEST(ResponseCache, VaryOnSeveralHeadersAndRepeatedFields) {
  auto cache = make();
  const std::vector<http::Header> req = {{"Accept", "a"}, {"Accept", "b"}, {"X-Tenant", "t1"}};
  const std::vector<http::Header> joined = {{"Accept", "a, b"}, {"X-Tenant", "t1"}};
  const std::vector<http::Header> other = {{"Accept", "a, b"}, {"X-Tenant", "t2"}};
  ASSERT_TRUE(cache->store("k", req, 200, {{"Vary", "X-Tenant"}, {"Vary", "Accept"}}, "v",
                           seconds(60), at(0)));
  EXPECT_EQ(cache->lookup("k", joined, at(1)).kind, CacheLookupKind::kHit);
  EXPECT_EQ(cache->lookup("k", other, at(1)).kind, CacheLookupKind::kMiss);
}

TEST(ResponseCache, RefusesVaryStarOversizedAndZeroTtl) {
  auto cache = make(1 << 20, 100);
  EXPECT_FALSE(cache->store("k", kNoHeaders, 200, {{"Vary", "*"}}, "x", seconds(60), at(0)));
  EXPECT_FALSE(cache->store("k", kNoHeaders, 200, {}, std::string(101, 'x'), seconds(60), at(0)));
  EXPECT_FALSE(cache->store("k", kNoHeaders, 200, {{"X-Big", std::string(90, 'h')}}, "0123456789",
                            seconds(60), at(0)));
  EXPECT_FALSE(cache->store("k", kNoHeaders, 200, {}, "x", milliseconds(0), at(0)));
  EXPECT_TRUE(cache->store("k", kNoHeaders, 200, {}, std::string(100, 'x'), seconds(60), at(0)));
  EXPECT_EQ(cache->stats().stores, 1u);
}

TEST(ResponseCache, EvictsLeastRecentlyUsedByBytes) {
  // Each entry: 256 overhead + key (2 x 2 bytes) + 1000 body = 1260 bytes.
  auto cache = make(3 * 1260, 2000);
  const std::string body(1000, 'b');
  for (const char* k : {"k1", "k2", "k3"}) {
    ASSERT_TRUE(cache->store(k, kNoHeaders, 200, {}, body, seconds(60), at(0)));
  }
  EXPECT_EQ(cache->stats().bytes, 3u * 1260);
  EXPECT_EQ(cache->lookup("k1", kNoHeaders, at(1)).kind, CacheLookupKind::kHit);  // k2 is LRU
  auto held = cache->lookup("k2", kNoHeaders, at(1));                             // now k3 is LRU
  ASSERT_EQ(held.kind, CacheLookupKind::kHit);
  ASSERT_TRUE(cache->store("k4", kNoHeaders, 200, {}, body, seconds(60), at(2)));
  EXPECT_EQ(cache->lookup("k3", kNoHeaders, at(3)).kind, CacheLookupKind::kMiss);
  for (const char* k : {"k1", "k2", "k4"}) {
    EXPECT_EQ(cache->lookup(k, kNoHeaders, at(3)).kind, CacheLookupKind::kHit) << k;
  }
  // A bigger object pushes out as many as it needs (LRU first: k1, k2).
  ASSERT_TRUE(cache->store("k5", kNoHeaders, 200, {}, std::string(2000, 'c'), seconds(60), at(4)));
  CacheStats s = cache->stats();
  EXPECT_EQ(s.evictions, 3u);
  EXPECT_LE(s.bytes, 3u * 1260);
  EXPECT_EQ(cache->lookup("k1", kNoHeaders, at(5)).kind, CacheLookupKind::kMiss);
  EXPECT_EQ(cache->lookup("k2", kNoHeaders, at(5)).kind, CacheLookupKind::kMiss);
  EXPECT_EQ(cache->lookup("k4", kNoHeaders, at(5)).kind, CacheLookupKind::kHit);
  EXPECT_EQ(cache->lookup("k5", kNoHeaders, at(5)).kind, CacheLookupKind::kHit);
  // A response held by a request outlives its eviction.
  EXPECT_EQ(held.response->body, body);
}

TEST(ResponseCache, ReplacingAnEntryKeepsTheByteCountExact) {
  auto cache = make();
  ASSERT_TRUE(cache->store("k", kNoHeaders, 200, {}, "aaaa", seconds(60), at(0)));
  const uint64_t one = cache->stats().bytes;
  ASSERT_TRUE(cache->store("k", kNoHeaders, 200, {}, "bbbbbbbb", seconds(60), at(1)));
  EXPECT_EQ(cache->stats().bytes, one + 4);
  EXPECT_EQ(cache->stats().entries, 1u);
  EXPECT_EQ(cache->lookup("k", kNoHeaders, at(2)).response->body, "bbbbbbbb");
}

TEST(ResponseCache, CoalescesConcurrentMisses) {
  auto cache = make();
  int woken_a = 0, woken_b = 0;
  CacheLookup leader = cache->lookup("k", kNoHeaders, at(0), [] { FAIL() << "leader woken"; });
  ASSERT_EQ(leader.kind, CacheLookupKind::kMiss);
  ASSERT_TRUE(leader.ticket);
  EXPECT_EQ(cache->lookup("k", kNoHeaders, at(1), [&] { ++woken_a; }).kind, CacheLookupKind::kWait);
  EXPECT_EQ(cache->lookup("k", kNoHeaders, at(1), [&] { ++woken_b; }).kind, CacheLookupKind::kWait);
  // Without a callback nobody waits or leads.
  CacheLookup plain = cache->lookup("k", kNoHeaders, at(1));
  EXPECT_EQ(plain.kind, CacheLookupKind::kMiss);
  EXPECT_FALSE(plain.ticket);
  // Another key is independent.
  CacheLookup other = cache->lookup("other", kNoHeaders, at(1), [] {});
  EXPECT_TRUE(other.ticket);
  EXPECT_EQ(woken_a + woken_b, 0);
  ASSERT_TRUE(cache->store("k", kNoHeaders, 200, {}, "filled", seconds(60), at(2)));
  leader.ticket.finish();
  EXPECT_EQ(woken_a, 1);
  EXPECT_EQ(woken_b, 1);
  leader.ticket.finish();  // idempotent
  EXPECT_EQ(woken_a, 1);
  EXPECT_EQ(cache->lookup("k", kNoHeaders, at(3)).kind, CacheLookupKind::kHit);
  EXPECT_EQ(cache->stats().coalesced, 2u);
}

TEST(ResponseCache, AbandonedFillWakesWaitersAndFreesTheKey) {
  auto cache = make();
  int woken = 0;
  {
    CacheLookup leader = cache->lookup("k", kNoHeaders, at(0), [] {});
    ASSERT_TRUE(leader.ticket);
    ASSERT_EQ(cache->lookup("k", kNoHeaders, at(0), [&] { ++woken; }).kind, CacheLookupKind::kWait);
    FillTicket moved = std::move(leader.ticket);  // moving does not finish
    EXPECT_EQ(woken, 0);
  }  // destroyed without a store: the fill failed
  EXPECT_EQ(woken, 1);
  // The woken waiter retries without a callback: a plain miss.
  EXPECT_EQ(cache->lookup("k", kNoHeaders, at(1)).kind, CacheLookupKind::kMiss);
  // A new coalescing lookup leads a new fill.
  CacheLookup again = cache->lookup("k", kNoHeaders, at(1), [] {});
  EXPECT_TRUE(again.ticket);
}

TEST(ResponseCache, ShardedConcurrentUseStaysWithinBytes) {
  auto cache = make(64 * 1024, 4096, 8);
  std::atomic<int> wakes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 2000; ++i) {
        // Appended, not "k" + std::string&&: GCC 12 at -O3 reports a false -Wrestrict (GCC PR 105329).
        const std::string key = std::string("k").append(std::to_string((i * 7 + t) % 300));
        CacheLookup l = cache->lookup(key, kNoHeaders, at(i), [&] { wakes.fetch_add(1); });
        if (l.kind == CacheLookupKind::kMiss) {
          cache->store(key, kNoHeaders, 200, {},
                       std::string(static_cast<size_t>(100 + i % 900), 'x'), seconds(1), at(i));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CacheStats s = cache->stats();
  EXPECT_LE(s.bytes, 64u * 1024);
  EXPECT_GT(s.hits, 0u);
  EXPECT_GT(s.evictions + s.expirations, 0u);
  EXPECT_EQ(static_cast<uint64_t>(wakes.load()), s.coalesced);  // every waiter woken once
}

TEST(ResponseCache, CreateValidates) {
  snapshot::Cache c;
  c.max_bytes = 0;
  EXPECT_FALSE(ResponseCache::create(c).ok());
  c.max_bytes = 10;
  c.max_object_bytes = 11;
  EXPECT_FALSE(ResponseCache::create(c).ok());
  c.max_object_bytes = 10;
  EXPECT_TRUE(ResponseCache::create(c).ok());
}

}  // namespace
}  // namespace gantry::filters
