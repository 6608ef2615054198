#include "proxy/http2/session_memory.h"

#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "proxy/base/block_pool.h"

#if defined(__SANITIZE_ADDRESS__)
#define GANTRY_ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GANTRY_ARENA_ASAN 1
#endif
#endif
#ifdef GANTRY_ARENA_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace gantry::http2 {

namespace {

bool all_zero(const char* p, size_t n) {
  // Word by word; the runs are page aligned.
  const auto* w = reinterpret_cast<const uint64_t*>(p);
  size_t words = n / sizeof(uint64_t);
  uint64_t acc = 0;
  for (size_t i = 0; i < words; ++i) acc |= w[i];
  for (size_t i = words * sizeof(uint64_t); i < n; ++i) acc |= static_cast<unsigned char>(p[i]);
  return acc == 0;
}

}  // namespace

SessionMemory::SessionMemory() : mem_{this, &on_malloc, &on_free, &on_calloc, &on_realloc} {}

// ---- the arena (small allocations) ----------------------------------------
//
// Under AddressSanitizer the arena poisons what no one may touch (the run not
// yet carved, free chunks, the bytes of a chunk past what was asked for), so
// a use after free or an overflow of libnghttp2's memory, or of ours that
// points into it, is reported as it would be with malloc.

namespace {

#ifdef GANTRY_ARENA_ASAN
void poison(const void* p, size_t n) { __asan_poison_memory_region(p, n); }
void unpoison(const void* p, size_t n) { __asan_unpoison_memory_region(p, n); }
#else
void poison(const void*, size_t) {}
void unpoison(const void*, size_t) {}
#endif

// A chunk's first 8 bytes: its size class and the size asked for.
struct ChunkHeader {
  uint32_t cls;  // the chunk's size in 16-byte steps
  uint32_t bytes;
};
static_assert(sizeof(ChunkHeader) == 8);

ChunkHeader& header_of(void* payload) { return *reinterpret_cast<ChunkHeader*>(static_cast<char*>(payload) - 8); }

}  // namespace

void* SessionMemory::arena_allocate(size_t n) {
  const size_t cls = (n + 8 + 15) / 16;
  char* chunk = arena_ != nullptr && cls < kClasses ? static_cast<char*>(free_lists()[cls]) : nullptr;
  if (chunk != nullptr) {
    unpoison(chunk + 8, sizeof(void*));
    free_lists()[cls] = *reinterpret_cast<void**>(chunk + 8);
    poison(chunk + 8, cls * 16 - 8);
  } else {
    if (arena_ == nullptr) {
      try {
        arena_ = block_pool::acquire_pages(kArenaPages);
      } catch (const std::bad_alloc&) {
        return nullptr;
      }
      std::fill_n(free_lists(), kClasses, nullptr);
      arena_used_ = kFirstChunk;  // so that every chunk's payload is 16-byte aligned
      poison(arena_ + kFirstChunk, kArenaBytes - kFirstChunk);
    }
    if (arena_used_ + cls * 16 > kArenaBytes) return nullptr;
    chunk = arena_ + arena_used_;
    arena_used_ += cls * 16;
    unpoison(chunk, sizeof(ChunkHeader));
  }
  *reinterpret_cast<ChunkHeader*>(chunk) = ChunkHeader{static_cast<uint32_t>(cls), static_cast<uint32_t>(n)};
  unpoison(chunk + 8, n);
  ++arena_live_;
  arena_live_bytes_ += cls * 16;
  return chunk + 8;
}

bool SessionMemory::arena_resize(void* p, size_t n) {
  ChunkHeader& h = header_of(p);
  if (n > h.cls * size_t{16} - 8) return false;
  poison(p, h.cls * size_t{16} - 8);
  unpoison(p, n);
  h.bytes = static_cast<uint32_t>(n);
  return true;
}

size_t SessionMemory::arena_bytes(const void* p) const { return header_of(const_cast<void*>(p)).bytes; }

void SessionMemory::arena_free(void* p) {
  char* chunk = static_cast<char*>(p) - 8;
  const size_t cls = reinterpret_cast<const ChunkHeader*>(chunk)->cls;
  arena_live_bytes_ -= cls * 16;
  if (--arena_live_ == 0) {  // all gone (the session deleted): so is the run
    unpoison(arena_, kArenaBytes);  // the block pool's again
    block_pool::release_pages(arena_, kArenaPages, false);
    arena_ = nullptr;
    arena_used_ = 0;
    return;
  }
  unpoison(p, sizeof(void*));
  if (cls < kClasses) {
    *reinterpret_cast<void**>(p) = free_lists()[cls];
    free_lists()[cls] = chunk;
  }
  poison(p, cls * 16 - 8);
}

SessionMemory::~SessionMemory() {
  for (const Run& r : runs_) block_pool::release_pages(r.p, block_pool::pages_for(r.bytes), false);
  if (arena_ != nullptr) {
    unpoison(arena_, kArenaBytes);
    block_pool::release_pages(arena_, kArenaPages, false);
  }
}

// ---- every allocation -------------------------------------------------------

SessionMemory::Run* SessionMemory::find(void* p) {
  for (Run& r : runs_)
    if (r.p == p) return &r;
  return nullptr;
}

void* SessionMemory::allocate(size_t n, bool zero) {
  if (n < kLargeBytes) {
    void* p = arena_allocate(n);
    if (p != nullptr) {
      if (zero) std::memset(p, 0, n);
      return p;
    }
    return zero ? std::calloc(1, n) : std::malloc(n);
  }
  // libnghttp2 is C: a failed allocation is a null pointer, never a throw.
  char* p = nullptr;
  try {
    runs_.reserve(runs_.size() + 1);
    p = block_pool::acquire_pages(block_pool::pages_for(n));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
  if (zero) std::memset(p, 0, n);
  runs_.push_back(Run{p, n, false});
  return p;
}

void SessionMemory::deallocate(void* p) {
  if (p == nullptr) return;
  if (in_arena(p)) {
    arena_free(p);
    return;
  }
  Run* r = find(p);
  if (r == nullptr) {
    std::free(p);
    return;
  }
  block_pool::release_pages(r->p, block_pool::pages_for(r->bytes), false);
  *r = runs_.back();
  runs_.pop_back();
}

void* SessionMemory::reallocate(void* p, size_t n) {
  if (p == nullptr) return allocate(n, false);
  if (in_arena(p)) {
    if (arena_resize(p, n)) return p;
    void* q = allocate(n, false);
    if (q == nullptr) return nullptr;  // p stays valid, as realloc leaves it
    std::memcpy(q, p, arena_bytes(p));
    arena_free(p);
    return q;
  }
  Run* r = find(p);
  if (r == nullptr && n < kLargeBytes) return std::realloc(p, n);
  if (r != nullptr && block_pool::pages_for(n) == block_pool::pages_for(r->bytes)) {
    r->bytes = n;
    return p;
  }
  const size_t old = r != nullptr ? r->bytes : malloc_usable_size(p);
  void* q = allocate(n, false);
  if (q == nullptr) return nullptr;  // p stays valid, as realloc leaves it
  std::memcpy(q, p, std::min(old, n));
  deallocate(p);
  return q;
}

size_t SessionMemory::mark_frame_buffer() {
  size_t found = 0;
  for (Run& r : runs_) {
    if (r.bytes == kFrameBufferBytes) {
      r.frame_buffer = true;
      ++found;
    }
  }
  return found;
}

size_t SessionMemory::release_idle() {
  size_t dropped = 0;
  for (const Run& r : runs_) {
    if (r.frame_buffer || all_zero(r.p, r.bytes)) {
      block_pool::drop_pages(r.p, block_pool::pages_for(r.bytes));
      dropped += r.bytes;
    }
  }
  return dropped;
}

size_t SessionMemory::large_bytes() const {
  size_t n = 0;
  for (const Run& r : runs_) n += r.bytes;
  return n;
}

void* SessionMemory::on_malloc(size_t n, void* self) { return static_cast<SessionMemory*>(self)->allocate(n, false); }
void SessionMemory::on_free(void* p, void* self) { static_cast<SessionMemory*>(self)->deallocate(p); }
void* SessionMemory::on_calloc(size_t count, size_t size, void* self) {
  if (size != 0 && count > SIZE_MAX / size) return nullptr;
  return static_cast<SessionMemory*>(self)->allocate(count * size, true);
}
void* SessionMemory::on_realloc(void* p, size_t n, void* self) {
  return static_cast<SessionMemory*>(self)->reallocate(p, n);
}

}  // namespace gantry::http2
