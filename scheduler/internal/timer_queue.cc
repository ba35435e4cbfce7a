#include "scheduler/internal/timer_queue.h"

#include <algorithm>
#include <utility>

#include "absl/base/attributes.h"
#include "scheduler/internal/check.h"

namespace dsim::internal {

// ---- The heap --------------------------------------------------------------------------

inline void TimerQueue::SiftUp(uint32_t index) {
  const HeapEntry moving = heap_[index];
  while (index > 0) {
    const uint32_t parent = (index - 1) / 2;
    if (heap_[parent].when_ns <= moving.when_ns) break;
    Place(index, heap_[parent]);
    index = parent;
  }
  Place(index, moving);
}

inline void TimerQueue::SiftDown(uint32_t index) {
  const HeapEntry moving = heap_[index];
  const uint32_t size = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t child = 2 * index + 1;
    if (child >= size) break;
    if (child + 1 < size && heap_[child + 1].when_ns < heap_[child].when_ns) ++child;
    if (moving.when_ns <= heap_[child].when_ns) break;
    Place(index, heap_[child]);
    index = child;
  }
  Place(index, moving);
}

inline void TimerQueue::RemoveHeapEntry(uint32_t index) {
  DSIM_DCHECK(index < heap_.size());
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  const uint32_t size = static_cast<uint32_t>(heap_.size());
  if (index == size) return;
  if (index == 0) {
    // Popping the root (the common case), bottom-up (Floyd): the hole follows the
    // smaller child down to a leaf, one comparison per level, and the last entry,
    // usually a late one, rises from there.
    uint32_t hole = 0;
    for (;;) {
      uint32_t child = 2 * hole + 1;
      if (child >= size) break;
      if (child + 1 < size && heap_[child + 1].when_ns < heap_[child].when_ns) ++child;
      Place(hole, heap_[child]);
      hole = child;
    }
    heap_[hole] = last;
    SiftUp(hole);
    return;
  }
  // An entry from the middle (a cancel): the last entry may belong above or below.
  const uint32_t parent = (index - 1) / 2;
  heap_[index] = last;
  if (last.when_ns < heap_[parent].when_ns) {
    SiftUp(index);
  } else {
    SiftDown(index);
  }
}


// ---- Adding and cancelling -------------------------------------------------------------

inline void TimerQueue::PushHeap(const HeapEntry& entry) {
  const uint32_t index = static_cast<uint32_t>(heap_.size());
  heap_.push_back(entry);
  SiftUp(index);
}

inline void TimerQueue::InsertLone(TimerSlotId slot, int64_t when_ns) {
  DSIM_DCHECK(when_ns >= 0);
  TimerSlot& s = slots_[slot];
  s.when_ns = when_ns;
  s.prev = slot;
  s.next = slot;
  ++pending_;
  // The earliest pending instant; a batch (always due) stays the earliest.
  if (batch_.empty() && when_ns < earliest_ns_) earliest_ns_ = when_ns;
  if (!has_front_) {
    if (heap_.empty() || when_ns <= heap_[0].when_ns) {
      front_ = HeapEntry{when_ns, slot};
      s.position = kFront;
      has_front_ = true;
      return;
    }
  } else if (when_ns < front_.when_ns) {
    // Earlier than the front: the front moves to the heap (where it is the earliest).
    PushHeap(front_);
    front_ = HeapEntry{when_ns, slot};
    s.position = kFront;
    return;
  }
  PushHeap(HeapEntry{when_ns, slot});
}

// The front's case first, as a leaf without a frame (the common case of a ping-pong);
// the heap's case is a tail call.
void TimerQueue::InsertLoneRecent(TimerSlotId slot, int64_t when_ns) {
  recent_[1] = recent_[0];
  recent_[0] = Recent{when_ns, slot};
  if (has_front_ || (!heap_.empty() && when_ns > heap_[0].when_ns)) {
    return InsertLoneOutOfLine(slot, when_ns);
  }
  DSIM_DCHECK(when_ns >= 0);
  TimerSlot& s = slots_[slot];
  s.when_ns = when_ns;
  s.prev = slot;
  s.next = slot;
  s.position = kFront;
  ++pending_;
  if (batch_.empty() && when_ns < earliest_ns_) earliest_ns_ = when_ns;
  front_ = HeapEntry{when_ns, slot};
  has_front_ = true;
}

ABSL_ATTRIBUTE_NOINLINE void TimerQueue::InsertLoneOutOfLine(TimerSlotId slot, int64_t when_ns) {
  InsertLone(slot, when_ns);
}

void TimerQueue::Reinsert(TimerSlotId slot, int64_t when_ns) {
  // Its old sequence may be lower than a ring's: a lone entry of its own (the batch
  // that gathers its instant puts it in sequence order).
  InsertLone(slot, when_ns);
}

void TimerQueue::AddFreeSlot() {
  DSIM_CHECK(slots_.size() < kFront, "too many timers");
  free_slots_.push_back(static_cast<TimerSlotId>(slots_.size()));
  slots_.emplace_back();
}

TimerSlotId TimerQueue::Add(int64_t when_ns, uint32_t group, Task* task,
                            std::function<void()> callback) {
  const TimerSlotId id = NewSlot(group);
  TimerSlot& s = slots_[id];
  if (callback != nullptr) s.callback = std::move(callback);
  s.task = task;
  InsertNew(id, when_ns);
  return id;
}

std::vector<uint64_t> TimerQueue::CallbackTimersOf(uint32_t group) const {
  std::vector<uint64_t> ids;
  for (TimerSlotId slot = 0; slot < slots_.size(); ++slot) {
    const TimerSlot& s = slots_[slot];
    if (s.in_use && s.group == group && s.task == nullptr) ids.push_back(IdOf(slot));
  }
  return ids;
}

bool TimerQueue::Cancel(uint64_t id) {
  const TimerSlotId slot = SlotOf(id);
  if (slot == kNowhere) return false;
  TimerSlot& s = slots_[slot];
  const uint32_t position = s.position;
  if (position == kNowhere) {
    // Taken (deferred by a paused group, or firing now): just forget it.
  } else if (position & kBatchBit) {
    RemoveFromBatch(position & ~kBatchBit);
  } else {
    --pending_;
    if (s.next == slot) {
      // Lone: its entry goes.
      ForgetRecent(slot);
      if (position == kFront) {
        has_front_ = false;
      } else {
        RemoveHeapEntry(position);
      }
      RefreshEarliest();
    } else {
      // Out of its ring; if it was the first, the next one heads the entry.
      slots_[s.prev].next = s.next;
      slots_[s.next].prev = s.prev;
      if (position != kInRing) {
        ForgetRecent(slot);
        (position == kFront ? front_ : heap_[position]).first = s.next;
        slots_[s.next].position = position;
      }
    }
  }
  Release(slot);
  return true;
}

// ---- Firing ----------------------------------------------------------------------------

size_t TimerQueue::FillBatch(int64_t now_ns) {
  if (!batch_.empty()) return batch_.size();
  if (!has_front_ && heap_.empty()) return 0;
  // The front, when there is one, is the earliest entry (the heap may tie with it).
  const int64_t when = has_front_ ? front_.when_ns : heap_[0].when_ns;
  if (when > now_ns) return 0;
  size_t entries = 0;
  const auto take_ring = [this](TimerSlotId first) {
    ForgetRecent(first);
    TimerSlotId slot = first;
    do {
      const TimerSlotId next = slots_[slot].next;
      AppendToBatch(slot);
      slot = next;
    } while (slot != first);
  };
  if (has_front_) {
    has_front_ = false;
    ++entries;
    take_ring(front_.first);
  }
  while (!heap_.empty() && heap_[0].when_ns == when) {
    const TimerSlotId first = heap_[0].first;
    RemoveHeapEntry(0);
    ++entries;
    take_ring(first);
  }
  pending_ -= batch_.size();
  // Each ring lists its timers by sequence, but several entries due at the same instant
  // come off the heap in any order: the batch starts in sequence order, as one heap of
  // (due, sequence) pairs would give it.
  if (entries > 1 && !std::is_sorted(batch_sequences_.begin(), batch_sequences_.end())) {
    SortBatch();
  }
  RefreshEarliest();
  return batch_.size();
}

void TimerQueue::SortBatch() {
  auto& sorted = sort_scratch_;
  sorted.clear();
  for (size_t i = 0; i < batch_.size(); ++i) sorted.emplace_back(batch_sequences_[i], batch_[i]);
  std::sort(sorted.begin(), sorted.end());  // Sequences are distinct.
  for (size_t i = 0; i < sorted.size(); ++i) {
    batch_sequences_[i] = sorted[i].first;
    batch_[i] = sorted[i].second;
    slots_[batch_[i]].position = kBatchBit | static_cast<uint32_t>(i);
  }
}

TimerSlotId TimerQueue::TakeLoneDueSlow(int64_t now_ns) {
  if (!batch_.empty() || heap_.empty()) return kNowhere;
  DSIM_DCHECK(!has_front_);
  const HeapEntry top = heap_[0];
  if (top.when_ns > now_ns) return kNowhere;
  // Another entry due at the same instant would be one of the root's children (its
  // ancestors cannot be later than it).
  const size_t size = heap_.size();
  if ((size > 1 && heap_[1].when_ns == top.when_ns) ||
      (size > 2 && heap_[2].when_ns == top.when_ns) || slots_[top.first].next != top.first) {
    return kNowhere;
  }
  ForgetRecent(top.first);
  RemoveHeapEntry(0);
  slots_[top.first].position = kNowhere;
  --pending_;
  RefreshEarliest();
  return top.first;
}

}  // namespace dsim::internal
