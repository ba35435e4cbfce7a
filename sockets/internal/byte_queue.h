// ByteQueue: a FIFO of bytes for socket buffers. Appends at the back, consumes from the
// front, and compacts lazily so both are amortized O(1) per byte. An empty queue owns no
// memory once shrunk, which keeps 100,000 idle connections cheap.
#ifndef DSIM_SOCKETS_INTERNAL_BYTE_QUEUE_H_
#define DSIM_SOCKETS_INTERNAL_BYTE_QUEUE_H_

#include <cstddef>
#include <cstring>
#include <string>

namespace dsim::internal {

class ByteQueue {
 public:
  size_t size() const { return data_.size() - head_; }
  bool empty() const { return size() == 0; }

  void Append(const char* bytes, size_t length) { data_.append(bytes, length); }

  // Copies up to `length` bytes starting `offset` bytes from the front; returns the count.
  size_t Peek(size_t offset, char* out, size_t length) const {
    if (offset >= size()) return 0;
    const size_t n = length < size() - offset ? length : size() - offset;
    std::memcpy(out, data_.data() + head_ + offset, n);
    return n;
  }
  const char* At(size_t offset) const { return data_.data() + head_ + offset; }

  void Consume(size_t length) {
    head_ += length < size() ? length : size();
    if (head_ == data_.size()) {
      data_.clear();
      head_ = 0;
    } else if (head_ >= kCompactBytes && head_ * 2 >= data_.size()) {
      data_.erase(0, head_);
      head_ = 0;
    }
  }

  void Clear() {
    std::string().swap(data_);
    head_ = 0;
  }

 private:
  static constexpr size_t kCompactBytes = 4096;
  std::string data_;
  size_t head_ = 0;
};

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_BYTE_QUEUE_H_
