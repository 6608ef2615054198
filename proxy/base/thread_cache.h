// A per-thread cache of freed medium-sized blocks, in front of malloc, for
// the proxy's `operator new` (base/operator_new.cc).
//
// Why: an HTTP/2 stream allocates and frees about twenty objects, most of
// them in bursts of one per stream in flight: coroutine frames (Asio's
// recycler keeps one block per purpose, none above 1 KiB), the stream, its
// exchange adaptor, Asio's operation objects. glibc's tcache takes chunks up
// to 1,032 bytes, 128 of a size here (GLIBC_TUNABLES, docs/ARCHITECTURE.md
// "Memory"); past that, and for every larger block (an exchange's coroutine
// frame is 5.7 KiB), malloc and free take the arena's slow path; even the
// tcache's fast path with free's checks cost ~150 instructions a pair. Here
// a block of up to 16 KiB is taken from and given back to a list of its size
// class on the calling thread: a few instructions, and the block given back
// last (still in cache) goes out first.
//
// Size classes are glibc's own chunk sizes (usable 8, 24, 40, ... 1,016
// bytes: 16-byte steps), then 512-byte steps up to 16 KiB, so a block costs
// what malloc would have given. A block is allocated from malloc at its
// class's size; its class is found again from malloc_usable_size() (the
// largest class it can serve), so no header is needed and a block may be
// freed on another thread than the one that allocated it (it joins that
// thread's lists). Larger blocks, and blocks beyond the bound below, go
// straight to malloc and free.
//
// Bounds: only threads that attach() cache (the workers); a thread keeps at
// most kMaxCachedBytes in its lists; trim() (the worker's sweep, once a
// second) frees, per class, as many blocks as the list
// never went below since the last trim: a burst's blocks go back to malloc
// once the load falls, a steady load keeps what it uses. A thread's lists
// are freed when it exits. Built without the cache (plain malloc) under the
// sanitizers, which must see every allocation.
#pragma once

#include <cstddef>

namespace gantry::thread_cache {

constexpr size_t kMaxBytes = 16 * 1024 - 8;  // larger: malloc
constexpr size_t kMaxCachedBytes = 8 << 20;  // per thread

// The size class of a request of n bytes (n <= kMaxBytes), the usable size
// of a class's blocks, and the class of a block whose usable size is u (the
// largest class whose blocks are no larger; 0: none, not cached).
constexpr size_t class_of_request(size_t n) {
  // glibc's smallest chunk holds 24 bytes: class 2.
  return n <= 24 ? 2 : n <= 1016 ? (n + 23) / 16 : 64 + (n + 8 - 1024 + 511) / 512;
}
constexpr size_t class_bytes(size_t c) { return c <= 64 ? 16 * c - 8 : 1024 + (c - 64) * 512 - 8; }
constexpr size_t kMaxClass = class_of_request(kMaxBytes);
constexpr size_t class_of_block(size_t u) {
  // malloc's usable size exceeds the request by at most 24 bytes: a block
  // larger than that was not made here (kept by free, not by a list).
  if (u > class_bytes(kMaxClass) + 24) return 0;
  return u < 1016 ? (u + 8) / 16 : 64 + (u + 8 - 1024) / 512;
}

// Turns the cache on for the calling thread. Only threads that call trim()
// regularly attach (the proxy's workers); on the others allocate() and
// deallocate() are malloc and free, so that no thread keeps a burst's
// blocks (a snapshot's parse on the control thread) for good.
void attach() noexcept;
// Never null: throws std::bad_alloc as operator new does.
void* allocate(size_t n);
// p from allocate() (or from malloc), on any thread; null is ignored.
void deallocate(void* p) noexcept;
// Gives back to malloc what the calling thread's lists did not need since
// the last call (see above). Returns the bytes freed.
size_t trim() noexcept;
// Bytes in the calling thread's lists (for tests).
size_t cached_bytes() noexcept;
// Whether the cache is built in (false under the sanitizers).
bool enabled() noexcept;

}  // namespace gantry::thread_cache
