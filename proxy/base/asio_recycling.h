// Asio's recycling of coroutine frames and posted functions, with a cache per
// thread by size instead of one block per purpose.
//
// Asio 1.74 keeps, per thread, one freed block for each purpose (an
// awaitable's frame, a type-erased function, the rest). A proxy worker has
// many exchanges in flight, each suspended in its own coroutines, so the one
// cached block was nearly always taken or too small: per h2 request, the
// `use_awaitable` frames of its socket operations (~190 bytes), the stream's
// coroutine frame (~800) and smaller ones went to malloc and free instead
// (docs/BENCHMARKS.md, "Profile-guided build"). Here those purposes keep up to
// kDepth freed blocks per 16-byte size class, up to 1 KiB, per thread;
// larger ones go to operator new and delete as before.
//
// How it is wired: explicit specializations of thread_info_base::allocate and
// deallocate for awaitable_frame_tag and executor_function_tag (default_tag
// cannot be specialised: thread_info_base.hpp instantiates it itself). An
// explicit specialization must precede every use, so CMake includes this
// header ahead of every C++ translation unit (-include). A block keeps Asio's
// layout (the chunk count in the byte after the object), so a block made
// here may be freed by Asio's own code and the other way round (a library
// compiled without this header, such as cpprestsdk, keeps Asio's one-slot
// cache for its own blocks).
//
// Tied to Boost 1.74's thread_info_base (the io_uring experiment's 1.81
// headers get Asio's own recycling).
#pragma once

#include <boost/version.hpp>

#if BOOST_VERSION == 107400 && !defined(BOOST_ASIO_HAS_IO_URING)
#include <boost/asio/detail/thread_info_base.hpp>

#include <climits>
#include <cstddef>
#include <new>

namespace gantry::aio::recycling {

inline constexpr std::size_t kClassBytes = 16;
inline constexpr std::size_t kClasses = 64;  // classes 1..63: up to 1,008 bytes
inline constexpr unsigned kDepth = 128;      // freed blocks kept per class and thread

struct Cache {
  struct Bin {
    void* blocks[kDepth];
    unsigned n = 0;
  };
  Bin bins[kClasses];
  Cache() = default;
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;
  ~Cache() {
    for (Bin& b : bins)
      for (unsigned i = 0; i < b.n; ++i) ::operator delete(b.blocks[i]);
  }
};
inline thread_local Cache cache;

// Asio's layout: a block for `size` bytes is followed by one byte holding its
// capacity in 4-byte chunks (0: too large to recycle).
inline void* allocate(std::size_t size) {
  const std::size_t cls = (size + kClassBytes - 1) / kClassBytes;
  if (cls == 0 || cls >= kClasses) {
    const std::size_t chunks = (size + 3) / 4;
    void* p = ::operator new(chunks * 4 + 1);
    static_cast<unsigned char*>(p)[size] = chunks <= UCHAR_MAX ? static_cast<unsigned char>(chunks) : 0;
    return p;
  }
  Cache::Bin& b = cache.bins[cls];
  void* p = b.n > 0 ? b.blocks[--b.n] : ::operator new(cls * kClassBytes + 1);
  static_cast<unsigned char*>(p)[size] = static_cast<unsigned char>(cls * kClassBytes / 4);
  return p;
}

inline void deallocate(void* p, std::size_t size) {
  const std::size_t chunks = static_cast<unsigned char*>(p)[size];
  const std::size_t cls = chunks * 4 / kClassBytes;  // the class whose size the block holds
  if (cls == 0 || cls >= kClasses || cache.bins[cls].n >= kDepth) {
    ::operator delete(p);
    return;
  }
  Cache::Bin& b = cache.bins[cls];
  b.blocks[b.n++] = p;
}

}  // namespace gantry::aio::recycling

namespace boost::asio::detail {

template <>
inline void* thread_info_base::allocate<thread_info_base::awaitable_frame_tag>(awaitable_frame_tag,
                                                                                thread_info_base*,
                                                                                std::size_t size) {
  return ::gantry::aio::recycling::allocate(size);
}
template <>
inline void thread_info_base::deallocate<thread_info_base::awaitable_frame_tag>(awaitable_frame_tag,
                                                                                 thread_info_base*, void* p,
                                                                                 std::size_t size) {
  ::gantry::aio::recycling::deallocate(p, size);
}
template <>
inline void* thread_info_base::allocate<thread_info_base::executor_function_tag>(executor_function_tag,
                                                                                  thread_info_base*,
                                                                                  std::size_t size) {
  return ::gantry::aio::recycling::allocate(size);
}
template <>
inline void thread_info_base::deallocate<thread_info_base::executor_function_tag>(executor_function_tag,
                                                                                   thread_info_base*, void* p,
                                                                                   std::size_t size) {
  ::gantry::aio::recycling::deallocate(p, size);
}

}  // namespace boost::asio::detail
#endif
