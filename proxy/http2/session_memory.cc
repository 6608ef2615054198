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
  if (setup_page_ != nullptr) block_pool::release_pages(setup_page_, 1, false);
}

bool SessionMemory::packed(const void* p) const {
  const auto* c = static_cast<const char*>(p);
  return setup_page_ != nullptr && c >= setup_page_ && c < setup_page_ + block_pool::kPageSize;
}

void* SessionMemory::allocate_packed(size_t n, bool zero) {
  const size_t at = (setup_used_ + 15) & ~size_t{15};
  if (n_packed_ == kMaxPacked || at + n > block_pool::kPageSize) return nullptr;
  if (setup_page_ == nullptr) {
    try {
      setup_page_ = block_pool::acquire_pages(1);
    } catch (const std::bad_alloc&) {
      return nullptr;
    }
  }
  char* p = setup_page_ + at;
  if (zero) std::memset(p, 0, n);
  setup_used_ = at + n;
  packed_[n_packed_++] = Packed{p, n};
  ++setup_live_;
  return p;
}

SessionMemory::Run* SessionMemory::find(void* p) {
  for (Run& r : runs_)
    if (r.p == p) return &r;
  return nullptr;
}

void* SessionMemory::allocate(size_t n, bool zero) {
  if (setup_open_ && n < kLargeBytes) {
    if (void* p = allocate_packed(n, zero)) return p;
  }
  if (n < kLargeBytes) return zero ? std::calloc(1, n) : std::malloc(n);
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
  if (packed(p)) {
    if (--setup_live_ == 0) {  // everything packed is gone: so is the page
      block_pool::release_pages(setup_page_, 1, false);
      setup_page_ = nullptr;
      setup_used_ = 0;
      n_packed_ = 0;
    }
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
  if (packed(p)) {  // moves out of the page
    size_t old = 0;
    for (size_t i = 0; i < n_packed_; ++i)
      if (packed_[i].p == p) old = packed_[i].bytes;
    void* q = allocate(n, false);
    if (q == nullptr) return nullptr;
    std::memcpy(q, p, std::min(old, n));
    deallocate(p);
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
