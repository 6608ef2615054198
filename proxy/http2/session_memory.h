// The memory of one libnghttp2 session (its nghttp2_mem), arranged so that an
// idle HTTP/2 connection gives back the pages of its large buffers.
//
// libnghttp2 allocates, for a session's whole life, a 16 KiB outbound frame
// buffer and a 4 KiB stream map, most of an idle connection's cost. Here every
// allocation of a page or more is a run of whole pages from the block pool
// (base/block_pool.h), never shared with another object, and release_idle()
// returns to the kernel the pages of
// - the outbound frame buffer: its bytes mean nothing once the session has
//   nothing to send (each frame is written into it from its first byte);
// - any large allocation whose bytes are all zero (an empty stream map): a
//   dropped page reads back as zeros, so nothing changes for its owner.
// Smaller allocations come from the session's arena: one run of kArenaPages
// pages, taken with the session's first allocation, carved from its start,
// and given back whole when the last of them is freed (the session deleted:
// ServerSession's hibernation). Chunks of up to kRecycledBytes are recycled
// through free lists by size (16-byte steps); a larger one (the session's own
// object, made once) keeps its space until the run goes. Before, only the
// allocations made while the session was being made were packed in a page of
// their own; everything it allocated later and kept until it was deleted (an
// HPACK table's entries, the last closed stream, the second table's slots)
// came from malloc, and deleting the session left holes between other
// connections' objects on the heap, which stay resident. What does not fit in
// the arena goes to malloc.
//
// Invariants: one session per SessionMemory, used on one thread; it outlives
// its session (nghttp2_session_del frees through it). release_idle() is called
// only while the session has no open stream and nothing queued to send.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "proxy/base/block_pool.h"

namespace gantry::http2 {

class SessionMemory {
 public:
  // libnghttp2's outbound frame buffer: a frame header, a padding length
  // byte and the largest payload (NGHTTP2_FRAMEBUF_CHUNKLEN).
  static constexpr size_t kFrameBufferBytes = 9 + 1 + 16384;
  // Allocations from this size on are page runs.
  static constexpr size_t kLargeBytes = 4096;

  SessionMemory();
  ~SessionMemory();
  SessionMemory(const SessionMemory&) = delete;
  SessionMemory& operator=(const SessionMemory&) = delete;

  nghttp2_mem* mem() { return &mem_; }
  // Call right after the session is made: the run it allocated of the frame
  // buffer's size is its frame buffer. Returns how many were found (1 with
  // the libnghttp2 this was written for; with 0, only zero runs are dropped).
  size_t mark_frame_buffer();
  // Drops the pages described above; returns how many bytes were dropped.
  size_t release_idle();
  // Bytes currently held in page runs (for tests).
  size_t large_bytes() const;
  // Gives back the bookkeeping's own memory; call when the session is gone.
  void shrink() { std::vector<Run>().swap(runs_); }
  // Bytes of the arena's chunks now allocated, and whether it holds pages
  // (for tests).
  size_t arena_live_bytes() const { return arena_live_bytes_; }
  bool has_arena() const { return arena_ != nullptr; }

  // 8 pages: an h2c connection with 10 streams in flight holds ~12 KiB of
  // libnghttp2's per-stream allocations (its stream, the answer's copied
  // field array, two outbound items); with 2 pages, four allocations per
  // request went to malloc (docs/BENCHMARKS.md, session 20). Pages are
  // resident only once carved, and the run goes with the session (an idle
  // connection's hibernation), so idle connections cost no more.
  static constexpr size_t kArenaPages = 8;
  static constexpr size_t kRecycledBytes = 1024;

 private:
  struct Run {
    char* p;
    size_t bytes;  // as requested
    bool frame_buffer;
  };
  void* allocate(size_t n, bool zero);
  void deallocate(void* p);
  void* reallocate(void* p, size_t n);
  Run* find(void* p);

  static void* on_malloc(size_t n, void* self);
  static void on_free(void* p, void* self);
  static void* on_calloc(size_t count, size_t size, void* self);
  static void* on_realloc(void* p, size_t n, void* self);

  // The arena. Its run starts with the heads of its free lists (kept there,
  // not here: this object lives as long as the connection, hibernated or
  // not). A chunk is a multiple of 16 bytes: an 8-byte header (its size
  // class and the size asked for) then what was asked for, which thus starts
  // 16-byte aligned. A free chunk holds the next free chunk of its class.
  static constexpr size_t kArenaBytes = kArenaPages * block_pool::kPageSize;
  static constexpr size_t kClasses = (kRecycledBytes + 8 + 15) / 16 + 1;  // those with a free list
  static constexpr size_t kFirstChunk = (kClasses * sizeof(void*) + 15) / 16 * 16 + 8;
  void** free_lists() { return reinterpret_cast<void**>(arena_); }
  void* arena_allocate(size_t n);
  void arena_free(void* p);
  size_t arena_bytes(const void* p) const;     // bytes asked for
  bool arena_resize(void* p, size_t n);        // in place, when n fits
  bool in_arena(const void* p) const {
    const auto* c = static_cast<const char*>(p);
    return arena_ != nullptr && c >= arena_ && c < arena_ + kArenaBytes;
  }

  nghttp2_mem mem_;
  std::vector<Run> runs_;
  char* arena_ = nullptr;
  uint32_t arena_used_ = 0;  // bytes of the run carved so far
  uint32_t arena_live_ = 0;  // chunks allocated
  size_t arena_live_bytes_ = 0;
};

}  // namespace gantry::http2
