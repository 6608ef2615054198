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
// Smaller allocations go to malloc, except those made while the session is
// being made (begin_setup() .. end_setup(): its own object and an HPACK
// table's slots, ~4 KiB it holds for its whole life): they are packed into
// one page of their own, so that deleting the session (ServerSession's
// hibernation) gives that page back instead of leaving holes between other
// objects on the heap, which stay resident.
//
// Invariants: one session per SessionMemory, used on one thread; it outlives
// its session (nghttp2_session_del frees through it). release_idle() is called
// only while the session has no open stream and nothing queued to send.
#pragma once

#include <nghttp2/nghttp2.h>

#include <cstddef>
#include <vector>

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
  // Around the making of a session: see the header comment.
  void begin_setup() { setup_open_ = setup_page_ == nullptr; }
  void end_setup() { setup_open_ = false; }

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

  void* allocate_packed(size_t n, bool zero);
  bool packed(const void* p) const;

  nghttp2_mem mem_;
  std::vector<Run> runs_;
  // The setup page: allocations packed at setup, how many are still live.
  struct Packed {
    char* p;
    size_t bytes;
  };
  static constexpr size_t kMaxPacked = 8;
  char* setup_page_ = nullptr;
  size_t setup_used_ = 0;
  size_t setup_live_ = 0;
  Packed packed_[kMaxPacked] = {};
  size_t n_packed_ = 0;
  bool setup_open_ = false;
};

}  // namespace gantry::http2
