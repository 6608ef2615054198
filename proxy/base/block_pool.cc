#include "proxy/base/block_pool.h"

#include <sys/mman.h>

#include <array>
#include <new>
#include <vector>

namespace gantry::block_pool {

namespace {

constexpr size_t kSlabBytes = 1024 * 1024;
constexpr size_t kWarmRuns = 64;  // free runs of one size a thread keeps with their pages

char* map(size_t bytes) {
  void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) throw std::bad_alloc();
  return static_cast<char*>(m);
}

// One thread's runs of one size. Slabs are never unmapped: a free run costs
// no resident memory once its pages were dropped, only address space.
struct SizeClass {
  std::vector<char*> warm;  // free, pages resident: reused first
  std::vector<char*> cold;  // free, pages dropped
  char* slab = nullptr;     // the slab being carved
  size_t carved = 0;        // runs taken from it
  size_t per_slab = 0;      // 0 until the first slab
};

thread_local std::array<SizeClass, kMaxPooledPages + 1> pools;

}  // namespace

char* acquire_pages(size_t pages) {
  if (pages > kMaxPooledPages) return map(pages * kPageSize);
  SizeClass& c = pools[pages];
  if (!c.warm.empty()) {
    char* r = c.warm.back();
    c.warm.pop_back();
    return r;
  }
  if (!c.cold.empty()) {
    char* r = c.cold.back();
    c.cold.pop_back();
    return r;
  }
  const size_t run = pages * kPageSize;
  if (c.carved == c.per_slab) {
    c.per_slab = kSlabBytes / run;
    c.slab = map(c.per_slab * run);
    c.carved = 0;
  }
  return c.slab + run * c.carved++;
}

void release_pages(char* run, size_t pages, bool drop) {
  if (pages > kMaxPooledPages) {
    ::munmap(run, pages * kPageSize);
    return;
  }
  SizeClass& c = pools[pages];
  if (!drop && c.warm.size() < kWarmRuns) {
    c.warm.push_back(run);
    return;
  }
  drop_pages(run, pages);
  c.cold.push_back(run);
}

void drop_pages(char* run, size_t pages) { ::madvise(run, pages * kPageSize, MADV_DONTNEED); }

char* acquire() { return acquire_pages(kBlockSize / kPageSize); }
void release(char* block, bool drop) { release_pages(block, kBlockSize / kPageSize, drop); }

}  // namespace gantry::block_pool
