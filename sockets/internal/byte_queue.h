// ByteQueue: a FIFO of bytes for socket buffers. Appends at the back, consumes from the
// front; the bytes live in one buffer, [head, tail). An append that does not fit first
// moves the bytes to the front when at least half the buffer was consumed, else doubles
// it, so both are amortized O(1) per byte, and an append that fits is a bounds check
// and a memcpy (every segment sent or received appends). An empty queue owns no memory
// once cleared, which keeps 100,000 idle connections cheap.
//
// Example:
//
//   ByteQueue q;
//   q.Append("hello", 5);
//   char out[3];
//   q.Peek(0, out, 3);   // "hel"
//   q.Consume(2);        // "llo" remains
#ifndef DSIM_SOCKETS_INTERNAL_BYTE_QUEUE_H_
#define DSIM_SOCKETS_INTERNAL_BYTE_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "absl/base/optimization.h"

namespace dsim::internal {

// memcpy of `n` bytes, inline up to 32 (a segment of a request/response protocol is
// often that small, and the call into libc costs more than such a copy): one or two
// overlapping loads and stores of the widest size that fits. Ranges must not overlap.
inline void CopyBytes(char* to, const char* from, size_t n) {
  if (ABSL_PREDICT_FALSE(n > 32)) {
    std::memcpy(to, from, n);
  } else if (n >= 16) {
    char head[16], tail[16];
    std::memcpy(head, from, 16);
    std::memcpy(tail, from + n - 16, 16);
    std::memcpy(to, head, 16);
    std::memcpy(to + n - 16, tail, 16);
  } else if (n >= 4) {
    if (n >= 8) {
      uint64_t head, tail;
      std::memcpy(&head, from, 8);
      std::memcpy(&tail, from + n - 8, 8);
      std::memcpy(to, &head, 8);
      std::memcpy(to + n - 8, &tail, 8);
    } else {
      uint32_t head, tail;
      std::memcpy(&head, from, 4);
      std::memcpy(&tail, from + n - 4, 4);
      std::memcpy(to, &head, 4);
      std::memcpy(to + n - 4, &tail, 4);
    }
  } else if (n > 0) {
    const char first = from[0], middle = from[n / 2], last = from[n - 1];
    to[0] = first;
    to[n / 2] = middle;
    to[n - 1] = last;
  }
}

class ByteQueue {
 public:
  ByteQueue() = default;
  ByteQueue(const ByteQueue&) = delete;
  ByteQueue& operator=(const ByteQueue&) = delete;

  size_t size() const { return tail_ - head_; }
  bool empty() const { return tail_ == head_; }

  void Append(const char* bytes, size_t length) {
    if (ABSL_PREDICT_FALSE(length > capacity_ - tail_)) MakeRoom(length);
    CopyBytes(data_.get() + tail_, bytes, length);
    tail_ += length;
  }

  // Copies up to `length` bytes starting `offset` bytes from the front; returns the count.
  size_t Peek(size_t offset, char* out, size_t length) const {
    if (offset >= size()) return 0;
    const size_t n = length < size() - offset ? length : size() - offset;
    std::memcpy(out, data_.get() + head_ + offset, n);
    return n;
  }
  const char* At(size_t offset) const { return data_.get() + head_ + offset; }

  void Consume(size_t length) {
    head_ += length < size() ? length : size();
    if (head_ == tail_) head_ = tail_ = 0;  // Empty: the next append starts at the front.
  }

  void Clear() {
    data_.reset();
    capacity_ = head_ = tail_ = 0;
  }

 private:
  // Makes room for `length` more bytes at the back.
  void MakeRoom(size_t length) {
    const size_t used = size();
    if (head_ >= used && used + length <= capacity_) {
      // At least half of what the buffer holds is consumed: move the rest to the front.
      std::memmove(data_.get(), data_.get() + head_, used);
    } else {
      size_t capacity = capacity_ < kMinCapacity ? kMinCapacity : 2 * capacity_;
      while (capacity < used + length) capacity *= 2;
      std::unique_ptr<char[]> bigger(new char[capacity]);
      if (used > 0) std::memcpy(bigger.get(), data_.get() + head_, used);
      data_ = std::move(bigger);
      capacity_ = capacity;
    }
    head_ = 0;
    tail_ = used;
  }

  static constexpr size_t kMinCapacity = 64;
  std::unique_ptr<char[]> data_;
  size_t capacity_ = 0;
  size_t head_ = 0;
  size_t tail_ = 0;
};

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_BYTE_QUEUE_H_
