#include "proxy/base/block_pool.h"

#include <sys/mman.h>

#include <new>
#include <vector>

namespace gantry::block_pool {

namespace {

constexpr size_t kSlabBlocks = 64;  // 1 MiB slabs
constexpr size_t kWarmBlocks = 64;  // free blocks a thread keeps with their pages

// One thread's blocks. Slabs are never unmapped: a free block costs no
// resident memory once its pages were dropped, only address space.
struct Pool {
  std::vector<char*> warm;  // free, pages resident: reused first
  std::vector<char*> cold;  // free, pages dropped
  char* slab = nullptr;     // the slab being carved
  size_t carved = kSlabBlocks;
};

thread_local Pool pool;

}  // namespace

char* acquire() {
  Pool& p = pool;
  if (!p.warm.empty()) {
    char* b = p.warm.back();
    p.warm.pop_back();
    return b;
  }
  if (!p.cold.empty()) {
    char* b = p.cold.back();
    p.cold.pop_back();
    return b;
  }
  if (p.carved == kSlabBlocks) {
    void* m = ::mmap(nullptr, kSlabBlocks * kBlockSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) throw std::bad_alloc();
    p.slab = static_cast<char*>(m);
    p.carved = 0;
  }
  return p.slab + kBlockSize * p.carved++;
}

void release(char* block, bool drop_pages) {
  Pool& p = pool;
  if (!drop_pages && p.warm.size() < kWarmBlocks) {
    p.warm.push_back(block);
    return;
  }
  ::madvise(block, kBlockSize, MADV_DONTNEED);
  p.cold.push_back(block);
}

}  // namespace gantry::block_pool
