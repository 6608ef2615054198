// Unit tests of SessionMemory, the allocator a libnghttp2 session runs on:
// small allocations from the session's arena (aligned, recycled by size,
// the run given back with the last of them), malloc when the arena is full
// or the size is above its limit, and page runs for large buffers. The last
// test runs a real libnghttp2 session on it to its deletion.
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "proxy/http2/session_memory.h"

namespace gantry::http2 {
namespace {

void* alloc(SessionMemory& m, size_t n) { return m.mem()->malloc(n, m.mem()->mem_user_data); }
void* zalloc(SessionMemory& m, size_t n) { return m.mem()->calloc(1, n, m.mem()->mem_user_data); }
void* grow(SessionMemory& m, void* p, size_t n) { return m.mem()->realloc(p, n, m.mem()->mem_user_data); }
void release(SessionMemory& m, void* p) { m.mem()->free(p, m.mem()->mem_user_data); }

TEST(SessionMemory, SmallAllocationsComeAlignedFromTheArenaAndItGoesWithTheLast) {
  struct Case {
    size_t bytes;
    size_t chunk;  // what the arena counts for it: the size, an 8-byte header, 16-byte steps
  };
  const Case cases[] = {{1, 16}, {8, 16}, {9, 32}, {24, 32}, {25, 48}, {400, 416}, {1024, 1040}, {3000, 3008}};
  for (const Case& c : cases) {
    SessionMemory m;
    EXPECT_FALSE(m.has_arena());
    void* p = alloc(m, c.bytes);
    ASSERT_NE(p, nullptr);
    EXPECT_TRUE(m.has_arena()) << c.bytes;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u) << c.bytes;
    EXPECT_EQ(m.arena_live_bytes(), c.chunk) << c.bytes;
    std::memset(p, 0xab, c.bytes);  // all of it is the caller's (ASan would tell)
    release(m, p);
    EXPECT_FALSE(m.has_arena()) << c.bytes;
    EXPECT_EQ(m.arena_live_bytes(), 0u);
  }
}

TEST(SessionMemory, AFreedChunkIsReusedBySizeAndCallocZeroes) {
  SessionMemory m;
  void* keep = alloc(m, 100);  // keeps the arena
  void* a = alloc(m, 40);
  std::memset(a, 0xff, 40);
  release(m, a);
  void* b = alloc(m, 200);  // another size: not a's chunk
  EXPECT_NE(b, a);
  void* c = zalloc(m, 36);  // the same size class as 40 (48-byte chunks)
  EXPECT_EQ(c, a);
  for (size_t i = 0; i < 36; ++i) ASSERT_EQ(static_cast<unsigned char*>(c)[i], 0) << i;
  void* big = alloc(m, 2000);  // above kRecycledBytes: its space is not reused
  release(m, big);
  void* big2 = alloc(m, 2000);
  EXPECT_NE(big2, big);
  release(m, b);
  release(m, c);
  release(m, keep);
  EXPECT_TRUE(m.has_arena()) << "big2 is still allocated";
  release(m, big2);
  EXPECT_FALSE(m.has_arena());
}

TEST(SessionMemory, ReallocKeepsTheBytesWhereverTheChunkGoes) {
  SessionMemory m;
  void* keep = alloc(m, 16);
  auto* p = static_cast<char*>(alloc(m, 20));
  std::memcpy(p, "0123456789abcdefghi", 20);
  EXPECT_EQ(grow(m, p, 24), p) << "fits its chunk (a 32-byte one holds 24)";
  auto* q = static_cast<char*>(grow(m, p, 300));
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(std::memcmp(q, "0123456789abcdefghi", 20), 0);
  auto* r = static_cast<char*>(grow(m, q, 5000));  // a large one: a page run
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(std::memcmp(r, "0123456789abcdefghi", 20), 0);
  EXPECT_EQ(m.arena_live_bytes(), 32u) << "only `keep` is left in the arena";
  EXPECT_EQ(m.large_bytes(), 5000u);
  release(m, r);
  release(m, keep);
  EXPECT_FALSE(m.has_arena());
}

TEST(SessionMemory, AFullArenaFallsBackToMallocAndLargeOnesArePageRuns) {
  SessionMemory m;
  std::vector<void*> held;
  const size_t capacity = SessionMemory::kArenaPages * block_pool::kPageSize;
  size_t arena_bytes = 0;
  const int chunks = static_cast<int>(capacity / 240) + 16;  // 240-byte chunks: more than the arena holds
  for (int i = 0; i < chunks; ++i) {
    void* p = alloc(m, 232);
    ASSERT_NE(p, nullptr);
    std::memset(p, i, 232);
    held.push_back(p);
    arena_bytes = std::max(arena_bytes, m.arena_live_bytes());
  }
  EXPECT_LT(arena_bytes, capacity);
  EXPECT_GT(arena_bytes, capacity - 1024) << "as many as fit, the rest from malloc";
  void* big = alloc(m, 5000);
  EXPECT_EQ(m.large_bytes(), 5000u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(big) % 4096, 0u);
  release(m, big);
  EXPECT_EQ(m.large_bytes(), 0u);
  for (size_t i = 0; i < held.size(); ++i) {
    EXPECT_EQ(static_cast<unsigned char*>(held[i])[231], static_cast<unsigned char>(i)) << i;
    release(m, held[i]);
  }
  EXPECT_FALSE(m.has_arena());
}

#if defined(__SANITIZE_ADDRESS__)
#define GANTRY_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GANTRY_TEST_ASAN 1
#endif
#endif

// Under AddressSanitizer (hack/test.sh's build-asan) a freed chunk, the bytes
// past what was asked for and the arena not yet carved are poisoned: misuse
// of memory from the arena is reported as with malloc's.
TEST(SessionMemory, UnderAsanTheArenaReportsUseAfterFreeAndOverflow) {
#ifndef GANTRY_TEST_ASAN
  GTEST_SKIP() << "not an AddressSanitizer build";
#else
  SessionMemory m;
  void* keep = alloc(m, 16);
  auto* freed = static_cast<volatile char*>(alloc(m, 40));
  release(m, const_cast<char*>(freed));
  EXPECT_DEATH(freed[0] = 1, "use-after-poison");
  auto* p = static_cast<volatile char*>(alloc(m, 20));
  p[19] = 1;  // its own last byte: fine
  EXPECT_DEATH(p[20] = 1, "use-after-poison");
  auto* q = static_cast<volatile char*>(grow(m, const_cast<char*>(p), 24));  // in place, now 24 bytes
  q[23] = 1;
  EXPECT_DEATH(q[24] = 1, "use-after-poison");
  release(m, const_cast<char*>(q));
  release(m, keep);
  EXPECT_FALSE(m.has_arena());
#endif
}

// A libnghttp2 server session made, fed a client's preface, SETTINGS and a
// GET, answered, and deleted: while it lives its small allocations are in
// the arena; once deleted, nothing of it is.
TEST(SessionMemory, ALibnghttp2SessionLivesInItsArenaUntilDeleted) {
  SessionMemory m;
  nghttp2_session_callbacks* cb = nullptr;
  ASSERT_EQ(nghttp2_session_callbacks_new(&cb), 0);
  nghttp2_session* server = nullptr;
  ASSERT_EQ(nghttp2_session_server_new3(&server, cb, nullptr, nullptr, m.mem()), 0);
  EXPECT_TRUE(m.has_arena());
  const size_t made = m.arena_live_bytes();
  EXPECT_GT(made, 1000u) << "the session object and its HPACK tables' slots";

  nghttp2_session* client = nullptr;
  ASSERT_EQ(nghttp2_session_client_new(&client, cb, nullptr), 0);
  nghttp2_submit_settings(client, NGHTTP2_FLAG_NONE, nullptr, 0);
  const nghttp2_nv nv[] = {
      {(uint8_t*)":method", (uint8_t*)"GET", 7, 3, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t*)":scheme", (uint8_t*)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t*)":path", (uint8_t*)"/a/fairly/long/path", 5, 19, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t*)":authority", (uint8_t*)"example.test", 10, 12, NGHTTP2_NV_FLAG_NONE},
      {(uint8_t*)"user-agent", (uint8_t*)"session-memory-test/1", 10, 21, NGHTTP2_NV_FLAG_NONE},
  };
  ASSERT_EQ(nghttp2_submit_request(client, nullptr, nv, 5, nullptr, nullptr), 1);
  const uint8_t* out = nullptr;
  std::string wire;
  for (ssize_t n; (n = nghttp2_session_mem_send(client, &out)) > 0;) wire.append(reinterpret_cast<const char*>(out), n);
  ASSERT_EQ(nghttp2_session_mem_recv(server, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()),
            static_cast<ssize_t>(wire.size()));
  const nghttp2_nv answer[] = {{(uint8_t*)":status", (uint8_t*)"204", 7, 3, NGHTTP2_NV_FLAG_NONE}};
  ASSERT_EQ(nghttp2_submit_response(server, 1, answer, 1, nullptr), 0);
  for (ssize_t n; (n = nghttp2_session_mem_send(server, &out)) > 0;) {
    ASSERT_EQ(nghttp2_session_mem_recv(client, out, n), n);
  }
  EXPECT_GT(m.arena_live_bytes(), made) << "the request's header fields indexed in its HPACK table";

  nghttp2_session_del(server);
  EXPECT_EQ(m.arena_live_bytes(), 0u);
  EXPECT_FALSE(m.has_arena());
  EXPECT_EQ(m.large_bytes(), 0u);
  nghttp2_session_del(client);
  nghttp2_session_callbacks_del(cb);
}

}  // namespace
}  // namespace gantry::http2
