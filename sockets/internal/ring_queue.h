// RingQueue: a FIFO over a growable ring of reused slots. Unlike std::deque, which
// allocates and frees a block every few elements as a queue cycles, it allocates only
// when it grows past its largest size so far.
//
// Example:
//
//   dsim::internal::RingQueue<Packet*> queue;
//   queue.push_back(packet);
//   Packet* first = queue.front();
//   queue.pop_front();   // The slot keeps its (moved-from) value for reuse.
#ifndef DSIM_SOCKETS_INTERNAL_RING_QUEUE_H_
#define DSIM_SOCKETS_INTERNAL_RING_QUEUE_H_

#include <cstddef>
#include <utility>
#include <vector>

namespace dsim::internal {

template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& front() { return slots_[head_]; }
  const T& front() const { return slots_[head_]; }

  void push_back(T value) {
    if (size_ == slots_.size()) Grow();
    size_t tail = head_ + size_;
    if (tail >= slots_.size()) tail -= slots_.size();
    slots_[tail] = std::move(value);
    ++size_;
  }
  void pop_front() {
    head_ = head_ + 1 == slots_.size() ? 0 : head_ + 1;
    --size_;
  }

 private:
  void Grow() {
    std::vector<T> grown(slots_.empty() ? 4 : slots_.size() * 2);
    for (size_t i = 0; i < size_; ++i) {
      size_t from = head_ + i;
      if (from >= slots_.size()) from -= slots_.size();
      grown[i] = std::move(slots_[from]);
    }
    slots_.swap(grown);
    head_ = 0;
  }

  std::vector<T> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_RING_QUEUE_H_
