// Fixed-size 16 KiB blocks for connection read buffers, from a per-thread
// pool of blocks carved out of mmap'd 1 MiB slabs instead of malloc.
//
// Why: an idle connection gives its read buffer back (docs/ARCHITECTURE.md).
// From malloc, the freed 16 KiB sat between the connection's small objects on
// the heap, and each idle connection kept about a page resident around that
// hole. Blocks from slabs never interleave with small objects, and a block
// given back idle has its pages returned to the kernel (MADV_DONTNEED).
//
// Invariants: a thread keeps at most 64 free blocks with their pages (warm,
// reused first); beyond that, and for every release with `drop_pages`, the
// pages go back at once. Slabs are never unmapped (a dropped block costs
// address space only). acquire() and release() may run on different threads.
#pragma once

#include <cstddef>

namespace gantry::block_pool {

constexpr size_t kBlockSize = 16 * 1024;

char* acquire();  // a kBlockSize block; its bytes are undefined (zero when fresh)
void release(char* block, bool drop_pages);

}  // namespace gantry::block_pool
