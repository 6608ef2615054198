#include "proxy/base/thread_cache.h"

#include <gtest/gtest.h>
#include <malloc.h>

#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace gantry::thread_cache {
namespace {

TEST(ThreadCacheClasses, EveryRequestFitsItsClassAndItsBlockComesBackToIt) {
  for (size_t n = 0; n <= kMaxBytes; ++n) {
    const size_t c = class_of_request(n);
    ASSERT_GE(c, 2u) << n;
    ASSERT_LE(c, kMaxClass) << n;
    ASSERT_GE(class_bytes(c), n) << n;
    if (c > 2) {
      ASSERT_LT(class_bytes(c - 1), n) << n;  // the smallest class that fits
    }
    // malloc's usable size is the class's size, or 16 bytes more (a
    // remainder too small to split off): the block serves its class or the next.
    ASSERT_EQ(class_of_block(class_bytes(c)), c) << n;
    const size_t up = class_of_block(class_bytes(c) + 16);
    ASSERT_TRUE(up == c || up == c + 1 || up == 0) << n;
  }
}

TEST(ThreadCacheClasses, ABlockServesTheClassItIsFiledUnder) {
  struct Case {
    size_t usable;
    size_t want;
  };
  const Case cases[] = {
      {24, 2},           // malloc(1..24)
      {40, 3},
      {1016, 64},        // malloc(1016)
      {1032, 64},        // malloc(1016), 16 bytes not split off
      {1528, 65},
      {16376, kMaxClass},
      {16376 + 16, kMaxClass},
      {16376 + 32, 0},   // above kMaxBytes: not cached
      {16376 + 512, 0},
      {1 << 20, 0},
  };
  for (const Case& c : cases) EXPECT_EQ(class_of_block(c.usable), c.want) << c.usable;
  for (size_t u = 24; u < 20000; u += 8) {
    const size_t c = class_of_block(u);
    if (c != 0) {
      ASSERT_LE(class_bytes(c), u) << u;
    }
  }
  // What glibc really gives, for every request size the cache makes.
  for (size_t c = 2; c <= kMaxClass; ++c) {
    void* p = std::malloc(class_bytes(c));
    ASSERT_EQ(class_of_block(malloc_usable_size(p)), c) << c;
    std::free(p);
  }
}

TEST(ThreadCache, AThreadThatDidNotAttachCachesNothing) {
  std::thread t([] {
    void* p = allocate(500);
    deallocate(p);
    EXPECT_EQ(cached_bytes(), 0u);
    attach();
    p = allocate(500);
    deallocate(p);
    EXPECT_EQ(cached_bytes(), enabled() ? class_bytes(class_of_request(500)) : 0u);
  });
  t.join();
}

TEST(ThreadCache, ABlockGivenBackIsTheNextOfItsClassAndTrimFreesWhatWasNotNeeded) {
  if (!enabled()) GTEST_SKIP() << "built without the cache (sanitizers)";
  attach();
  trim();
  trim();  // twice: the first sets the low-water marks
  ASSERT_EQ(cached_bytes(), 0u);
  void* a = allocate(5000);
  ASSERT_GE(malloc_usable_size(a), 5000u);
  std::memset(a, 0xab, 5000);
  deallocate(a);
  EXPECT_EQ(cached_bytes(), class_bytes(class_of_request(5000)));
  void* b = allocate(4700);  // the same class (4600 < 4700 <= 5112)
  EXPECT_EQ(b, a);
  EXPECT_EQ(cached_bytes(), 0u);
  void* c = allocate(200);
  deallocate(b);
  deallocate(c);
  EXPECT_EQ(cached_bytes(), class_bytes(class_of_request(5000)) + class_bytes(class_of_request(200)));
  // Larger blocks go to malloc.
  void* large = allocate(kMaxBytes + 64);  // (one just above may come back as a top-class block: it serves one)
  deallocate(large);
  EXPECT_EQ(cached_bytes(), class_bytes(class_of_request(5000)) + class_bytes(class_of_request(200)));
  // Both lists were empty at some point since the last trim: nothing goes.
  EXPECT_EQ(trim(), 0u);
  // Untouched for a whole period: both go.
  EXPECT_EQ(trim(), class_bytes(class_of_request(5000)) + class_bytes(class_of_request(200)));
  EXPECT_EQ(cached_bytes(), 0u);
}

TEST(ThreadCache, TrimKeepsWhatASteadyLoadUses) {
  if (!enabled()) GTEST_SKIP() << "built without the cache (sanitizers)";
  attach();
  trim();
  trim();
  std::vector<void*> burst;
  for (int i = 0; i < 100; ++i) burst.push_back(allocate(600));
  for (void* p : burst) deallocate(p);
  trim();  // the list went to 0 in this period (it was empty before the burst)
  ASSERT_EQ(cached_bytes(), 100 * class_bytes(class_of_request(600)));
  // Then a steady 10 in flight: 90 were never needed.
  for (int round = 0; round < 5; ++round) {
    std::vector<void*> v;
    for (int i = 0; i < 10; ++i) v.push_back(allocate(600));
    for (void* p : v) deallocate(p);
  }
  EXPECT_EQ(trim(), 90 * class_bytes(class_of_request(600)));
  EXPECT_EQ(cached_bytes(), 10 * class_bytes(class_of_request(600)));
  trim();
  trim();
  EXPECT_EQ(cached_bytes(), 0u);
}

TEST(ThreadCache, TheCacheIsBounded) {
  if (!enabled()) GTEST_SKIP() << "built without the cache (sanitizers)";
  attach();
  trim();
  trim();
  std::vector<void*> v;
  const size_t n = 2 * kMaxCachedBytes / kMaxBytes;
  for (size_t i = 0; i < n; ++i) v.push_back(allocate(kMaxBytes));
  for (void* p : v) deallocate(p);
  EXPECT_LE(cached_bytes(), kMaxCachedBytes);
  EXPECT_GT(cached_bytes(), kMaxCachedBytes - kMaxBytes - 1);
  trim();
  trim();
  EXPECT_EQ(cached_bytes(), 0u);
}

TEST(ThreadCache, BlocksMayBeFreedOnAnotherThreadAndAThreadsListsGoWithIt) {
  std::vector<void*> made;
  for (int i = 0; i < 50; ++i) made.push_back(allocate(300 + i * 40));
  size_t held_there = 0;
  std::thread t([&] {
    attach();
    for (void* p : made) deallocate(p);
    held_there = cached_bytes();
    // The other thread's blocks serve this thread's requests.
    void* again = allocate(300);
    deallocate(again);
  });
  t.join();
  if (enabled()) {
    EXPECT_GT(held_there, 0u);
  }
  // Freed at the thread's exit: nothing to check here but that it did not crash
  // (ASan and valgrind see the blocks freed).
}

}  // namespace
}  // namespace gantry::thread_cache
