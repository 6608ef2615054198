// Page-aligned memory for connection buffers: fixed-size 16 KiB blocks for
// read buffers, and runs of whole pages for other large buffers (libnghttp2's
// frame buffer and stream map, http2/session_memory.h), from per-thread pools
// carved out of mmap'd slabs instead of malloc.
//
// Why: an idle connection gives its buffers back (docs/ARCHITECTURE.md).
// From malloc, a freed 16 KiB buffer sat between the connection's small
// objects on the heap, and each idle connection kept about a page resident
// around that hole. Runs from slabs never interleave with small objects, and
// a run given back idle, or dropped in place, has its pages returned to the
// kernel (MADV_DONTNEED: the next touch maps a zero page).
//
// Invariants: runs of 1..kMaxPooledPages pages come from that size's pool; a
// thread keeps at most 64 free runs of each size with their pages (warm,
// reused first); beyond that, and for every release with `drop_pages`, the
// pages go back at once. Slabs are never unmapped (a dropped run costs
// address space only). Larger runs are mapped and unmapped one by one.
// acquire and release may run on different threads.
#pragma once

#include <cstddef>

namespace gantry::block_pool {

constexpr size_t kPageSize = 4096;
constexpr size_t kBlockSize = 16 * 1024;
constexpr size_t kMaxPooledPages = 8;

constexpr size_t pages_for(size_t bytes) { return (bytes + kPageSize - 1) / kPageSize; }

char* acquire();  // a kBlockSize block; its bytes are undefined (zero when fresh)
void release(char* block, bool drop_pages);

// A run of `pages` pages (>= 1); its bytes are undefined (zero when fresh).
char* acquire_pages(size_t pages);
void release_pages(char* run, size_t pages, bool drop_pages);
// Returns the run's pages to the kernel; the run stays its owner's and reads
// back as zeros.
void drop_pages(char* run, size_t pages);

}  // namespace gantry::block_pool
