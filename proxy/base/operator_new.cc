// gantry-proxy's global operator new and delete: base/thread_cache.h. Linked
// into the proxy binary only (the controller and the tests keep the
// library's own). The other forms (array, nothrow, sized) are libstdc++'s,
// which call these; the aligned forms stay libstdc++'s, on aligned_alloc and
// free.
#include <cstddef>
#include <new>

#include "proxy/base/thread_cache.h"

void* operator new(std::size_t n) { return gantry::thread_cache::allocate(n); }
void operator delete(void* p) noexcept { gantry::thread_cache::deallocate(p); }
void operator delete(void* p, std::size_t) noexcept { gantry::thread_cache::deallocate(p); }
