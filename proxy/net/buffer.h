// Buffer: a growable byte buffer with a read and a write end, reused for the
// whole life of a connection so the request path does not allocate once it
// has warmed up. Bytes are appended at the back (prepare/commit) and consumed
// from the front; the live region moves to the start when it is cheap to do so.
#pragma once

#include <cstring>
#include <string_view>
#include <vector>

namespace gantry::net {

class Buffer {
 public:
  explicit Buffer(size_t initial = 16 * 1024) : data_(initial) {}

  std::string_view view() const { return {data_.data() + begin_, end_ - begin_}; }
  const char* data() const { return data_.data() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }

  // Returns a writable region of at least `min` bytes at the back.
  char* prepare(size_t min) {
    if (begin_ == end_) begin_ = end_ = 0;
    if (data_.size() - end_ < min) {
      if (begin_ > 0) {
        std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (data_.size() - end_ < min) data_.resize(std::max(data_.size() * 2, end_ + min));
    }
    return data_.data() + end_;
  }
  size_t writable() const { return data_.size() - end_; }
  void commit(size_t n) { end_ += n; }
  // Frees the storage (the buffer must be empty); the next prepare() allocates again.
  void release() {
    std::vector<char>().swap(data_);
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
  std::vector<char> data_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace gantry::net
