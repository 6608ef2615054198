#include "proxy/base/thread_cache.h"

#include <malloc.h>

#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define GANTRY_THREAD_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define GANTRY_THREAD_CACHE 0
#endif
#endif
#ifndef GANTRY_THREAD_CACHE
#define GANTRY_THREAD_CACHE 1
#endif

namespace gantry::thread_cache {

namespace {

void* malloc_or_throw(size_t n) {
  void* p = std::malloc(n);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

#if GANTRY_THREAD_CACHE

struct FreeBlock {
  FreeBlock* next;
};

// Trivially destructible, so that it stays usable while other thread_local
// objects are destroyed at thread exit (their destructors free memory too);
// Flusher empties it then and marks it off.
struct Lists {
  FreeBlock* head[kMaxClass + 1];
  unsigned count[kMaxClass + 1];
  unsigned low_water[kMaxClass + 1];  // the fewest blocks since the last trim()
  size_t bytes;
  bool on;   // attach() was called
  bool off;  // the thread is exiting: everything goes to free()
};

thread_local Lists tl_lists;  // zero-initialised (constant initialisation: no guard)

void release_all(Lists& l) noexcept {
  for (size_t c = 1; c <= kMaxClass; ++c) {
    while (FreeBlock* b = l.head[c]) {
      l.head[c] = b->next;
      std::free(b);
    }
    l.count[c] = l.low_water[c] = 0;
  }
  l.bytes = 0;
}

struct Flusher {
  bool armed = false;
  ~Flusher() {
    tl_lists.off = true;
    release_all(tl_lists);
  }
};
thread_local Flusher tl_flusher;

#endif

}  // namespace

bool enabled() noexcept { return GANTRY_THREAD_CACHE != 0; }

#if GANTRY_THREAD_CACHE

void attach() noexcept {
  tl_lists.on = true;
  tl_flusher.armed = true;  // registers the thread's exit flush
}

void* allocate(size_t n) {
  Lists& l = tl_lists;
  if (n > kMaxBytes || !l.on) return malloc_or_throw(n == 0 ? 1 : n);
  const size_t c = class_of_request(n);
  if (FreeBlock* b = l.head[c]) {
    l.head[c] = b->next;
    if (--l.count[c] < l.low_water[c]) l.low_water[c] = l.count[c];
    l.bytes -= class_bytes(c);
    return b;
  }
  l.low_water[c] = 0;
  return malloc_or_throw(class_bytes(c));
}

void deallocate(void* p) noexcept {
  if (p == nullptr) return;
  Lists& l = tl_lists;
  if (!l.on || l.off) {
    std::free(p);
    return;
  }
  const size_t c = class_of_block(malloc_usable_size(p));
  if (c == 0 || l.bytes + class_bytes(c) > kMaxCachedBytes) {
    std::free(p);
    return;
  }
  auto* b = static_cast<FreeBlock*>(p);
  b->next = l.head[c];
  l.head[c] = b;
  ++l.count[c];
  l.bytes += class_bytes(c);
}

size_t trim() noexcept {
  Lists& l = tl_lists;
  size_t freed = 0;
  for (size_t c = 1; c <= kMaxClass; ++c) {
    for (unsigned i = 0; i < l.low_water[c] && l.head[c] != nullptr; ++i) {
      FreeBlock* b = l.head[c];
      l.head[c] = b->next;
      std::free(b);
      --l.count[c];
      l.bytes -= class_bytes(c);
      freed += class_bytes(c);
    }
    l.low_water[c] = l.count[c];
  }
  return freed;
}

size_t cached_bytes() noexcept { return tl_lists.bytes; }

#else

void attach() noexcept {}
void* allocate(size_t n) { return malloc_or_throw(n == 0 ? 1 : n); }
void deallocate(void* p) noexcept { std::free(p); }
size_t trim() noexcept { return 0; }
size_t cached_bytes() noexcept { return 0; }

#endif

}  // namespace gantry::thread_cache
