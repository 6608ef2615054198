// Buffer: a growable byte buffer with a read and a write end, reused for the
// whole life of a connection so the request path does not allocate once it
// has warmed up. Bytes are appended at the back (prepare/commit) and consumed
// from the front; the live region moves to the start when it is cheap to do so.
//
// Storage of exactly 16 KiB (the read chunk of connections) comes from
// base/block_pool.h, not from malloc, so release() really gives an idle
// connection's pages back; other sizes (a buffer grown for a large head) use
// malloc.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <utility>

#include "proxy/base/block_pool.h"

namespace gantry::net {

class Buffer {
 public:
  explicit Buffer(size_t initial = block_pool::kBlockSize) { allocate(initial); }
  ~Buffer() { free_storage(false); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), cap_(std::exchange(o.cap_, 0)),
        begin_(std::exchange(o.begin_, 0)), end_(std::exchange(o.end_, 0)) {}
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      free_storage(false);
      data_ = std::exchange(o.data_, nullptr);
      cap_ = std::exchange(o.cap_, 0);
      begin_ = std::exchange(o.begin_, 0);
      end_ = std::exchange(o.end_, 0);
    }
    return *this;
  }

  std::string_view view() const { return {data_ + begin_, end_ - begin_}; }
  const char* data() const { return data_ + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  bool holds_storage() const { return data_ != nullptr; }

  // Returns a writable region of at least `min` bytes at the back.
  char* prepare(size_t min) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (cap_ - end_ < min) {
      if (begin_ > 0) {
        std::memmove(data_, data_ + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (cap_ - end_ < min) grow(std::max(cap_ * 2, std::max(end_ + min, block_pool::kBlockSize)));
    }
    return data_ + end_;
  }
  size_t writable() const { return cap_ - end_; }
  void commit(size_t n) { end_ += n; }
  // Frees the storage (the buffer must be empty), its pages back to the
  // kernel at once; the next prepare() allocates again.
  void release() {
    free_storage(true);
    begin_ = end_ = 0;
  }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ >= end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }
  void append(std::string_view s) {
    std::memcpy(prepare(s.size()), s.data(), s.size());
    commit(s.size());
  }

 private:
  void allocate(size_t n) {
    if (n == 0) return;
    if (n == block_pool::kBlockSize) {
      data_ = block_pool::acquire();
    } else {
      data_ = static_cast<char*>(std::malloc(n));
      if (data_ == nullptr) throw std::bad_alloc();
    }
    cap_ = n;
  }
  void grow(size_t n) {
    char* old = data_;
    const size_t old_cap = cap_;
    data_ = nullptr;
    allocate(n);
    if (end_ > 0) std::memcpy(data_, old, end_);
    free_block(old, old_cap, false);
  }
  void free_storage(bool drop_pages) {
    free_block(data_, cap_, drop_pages);
    data_ = nullptr;
    cap_ = 0;
  }
  static void free_block(char* p, size_t cap, bool drop_pages) {
    if (p == nullptr) return;
    if (cap == block_pool::kBlockSize) block_pool::release(p, drop_pages);
    else std::free(p);
  }

  char* data_ = nullptr;
  size_t cap_ = 0;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace gantry::net
