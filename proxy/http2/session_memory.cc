#include "proxy/http2/session_memory.h"

#include <malloc.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "proxy/base/block_pool.h"

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

SessionMemory::~SessionMemory() {
  for (const Run& r : runs_) block_pool::release_pages(r.p, block_pool::pages_for(r.bytes), false);
  if (arena_ != nullptr) block_pool::release_pages(arena_, kArenaPages, false);
}

// ---- the arena (small allocations) ----------------------------------------

void* SessionMemory::arena_allocate(size_t n) {
  const size_t cls = (n + 8 + 15) / 16;  // the chunk's size in 16-byte steps
  char* chunk = arena_ != nullptr && cls < kClasses ? static_cast<char*>(free_lists()[cls]) : nullptr;
  if (chunk != nullptr) {
    free_lists()[cls] = *reinterpret_cast<void**>(chunk + 8);
  } else {
    if (arena_ == nullptr) {
      try {
        arena_ = block_pool::acquire_pages(kArenaPages);
      } catch (const std::bad_alloc&) {
        return nullptr;
      }
      std::fill_n(free_lists(), kClasses, nullptr);
      arena_used_ = kFirstChunk;  // so that every chunk's payload is 16-byte aligned
    }
    if (arena_used_ + cls * 16 > kArenaBytes) return nullptr;
    chunk = arena_ + arena_used_;
    arena_used_ += cls * 16;
    *reinterpret_cast<uint64_t*>(chunk) = cls;
  }
  ++arena_live_;
  arena_live_bytes_ += cls * 16;
  return chunk + 8;
}

size_t SessionMemory::arena_capacity(const void* p) const {
  return *reinterpret_cast<const uint64_t*>(static_cast<const char*>(p) - 8) * 16 - 8;
}

void SessionMemory::arena_free(void* p) {
  char* chunk = static_cast<char*>(p) - 8;
  const size_t cls = *reinterpret_cast<const uint64_t*>(chunk);
  arena_live_bytes_ -= cls * 16;
  if (--arena_live_ == 0) {  // all gone (the session deleted): so is the run
    block_pool::release_pages(arena_, kArenaPages, false);
    arena_ = nullptr;
    arena_used_ = 0;
    return;
  }
  if (cls < kClasses) {
    *reinterpret_cast<void**>(p) = free_lists()[cls];
    free_lists()[cls] = chunk;
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
    const size_t old = arena_capacity(p);
    if (n <= old) return p;
    void* q = allocate(n, false);
    if (q == nullptr) return nullptr;  // p stays valid, as realloc leaves it
    std::memcpy(q, p, old);
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
