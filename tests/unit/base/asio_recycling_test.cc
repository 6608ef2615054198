// Asio's frame recycling with a per-thread cache by size
// (proxy/base/asio_recycling.h, included ahead of every translation unit):
// a freed block comes back for the next frame of its size class, sizes past
// the classes bypass the cache, and blocks keep Asio's layout, so a block
// made by Asio's own one-slot recycling (default_tag, not specialised) can
// be freed into the cache and one from the cache into Asio's slot.
#include "proxy/base/asio_recycling.h"

#include <gtest/gtest.h>

#include <boost/asio/detail/thread_info_base.hpp>
#include <cstring>
#include <vector>

namespace {

using boost::asio::detail::thread_info_base;
using Frame = thread_info_base::awaitable_frame_tag;
using Function = thread_info_base::executor_function_tag;

void* frame(size_t n) {
  void* p = thread_info_base::allocate(Frame(), nullptr, n);
  std::memset(p, 0xab, n);  // the whole object is usable
  return p;
}
void free_frame(void* p, size_t n) { thread_info_base::deallocate(Frame(), nullptr, p, n); }

TEST(AsioRecycling, AFreedBlockServesTheNextAllocationOfItsClass) {
  struct Case {
    size_t first, second;  // sizes; the same 16-byte class
  } cases[] = {{193, 200}, {145, 150}, {801, 810}, {57, 60}, {1, 16}, {993, 1008}};
  for (const Case& c : cases) {
    void* a = frame(c.first);
    free_frame(a, c.first);
    void* b = frame(c.second);
    EXPECT_EQ(a, b) << c.first << " then " << c.second;
    free_frame(b, c.second);
  }
}

TEST(AsioRecycling, BothSpecialisedPurposesShareTheCache) {
  void* a = thread_info_base::allocate(Function(), nullptr, 100);
  thread_info_base::deallocate(Function(), nullptr, a, 100);
  void* b = frame(100);
  EXPECT_EQ(a, b);
  free_frame(b, 100);
}

TEST(AsioRecycling, ManyInFlightAllComeBack) {
  std::vector<void*> live;
  for (int i = 0; i < 100; ++i) live.push_back(frame(193));
  std::vector<void*> freed(live.rbegin(), live.rend());
  for (void* p : live) free_frame(p, 193);
  for (void* p : freed) {  // last freed, first served
    void* q = frame(200);
    EXPECT_EQ(q, p);
  }
  for (void* p : freed) free_frame(p, 200);
}

TEST(AsioRecycling, LargeSizesBypassTheCache) {
  for (size_t n : {1009u, 2000u, 70000u}) {
    void* p = frame(n);
    EXPECT_NE(p, nullptr);
    free_frame(p, n);
  }
}

TEST(AsioRecycling, BlocksMoveBetweenTheCacheAndAsiosOwnSlot) {
  thread_info_base slot;  // Asio's own recycling, one block per purpose
  // Asio's block (default_tag is not specialised: 300 bytes and its count
  // byte) freed into the cache serves frames of the largest class it holds
  // (18: 288 bytes).
  void* asio_block = thread_info_base::allocate(&slot, 300);
  free_frame(asio_block, 300);
  void* g = frame(288);
  EXPECT_EQ(g, asio_block);
  std::memset(g, 0xee, 288);
  free_frame(g, 288);
  void* f = frame(300);
  // A cache block freed into Asio's slot serves Asio's next allocation of that size.
  thread_info_base::deallocate(&slot, f, 300);
  void* again = thread_info_base::allocate(&slot, 290);
  EXPECT_EQ(again, f);
  std::memset(again, 0xcd, 290);
  thread_info_base::deallocate(&slot, again, 290);
}

}  // namespace
