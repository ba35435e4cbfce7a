#include "scheduler/internal/timer_queue.h"

#include <utility>

#include "scheduler/internal/check.h"

namespace dsim::internal {

inline void TimerQueue::SiftUp(uint32_t index) {
  const HeapEntry moving = heap_[index];
  while (index > 0) {
    const uint32_t parent = (index - 1) / 2;
    if (!Less(moving, heap_[parent])) break;
    Place(index, heap_[parent]);
    index = parent;
  }
  Place(index, moving);
}

inline void TimerQueue::InsertIntoHeap(TimerSlotId slot, int64_t when_ns) {
  DSIM_DCHECK(when_ns >= 0);
  TimerSlot& s = slots_[slot];
  s.when_ns = when_ns;
  const uint32_t index = static_cast<uint32_t>(heap_.size());
  heap_.push_back(HeapEntry{when_ns, s.sequence, slot});
  s.position = index;
  SiftUp(index);
  RefreshEarliest();
}

inline void TimerQueue::SiftDown(uint32_t index) {
  const HeapEntry moving = heap_[index];
  const uint32_t size = static_cast<uint32_t>(heap_.size());
  for (;;) {
    uint32_t child = 2 * index + 1;
    if (child >= size) break;
    if (child + 1 < size && Less(heap_[child + 1], heap_[child])) ++child;
    if (!Less(heap_[child], moving)) break;
    Place(index, heap_[child]);
    index = child;
  }
  Place(index, moving);
}

inline void TimerQueue::RemoveFromHeap(uint32_t index) {
  DSIM_DCHECK(index < heap_.size());
  slots_[heap_[index].slot].position = kNowhere;
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  if (index == 0 && !heap_.empty()) {
    // Popping the earliest timer (the common case), bottom-up (Floyd): the hole at
    // the root follows the smaller child down to a leaf, one comparison per level, and
    // the last entry, usually a late timer, rises from there; the classic sift-down
    // compares twice per level. The resulting heap is the same either way.
    const uint32_t size = static_cast<uint32_t>(heap_.size());
    uint32_t hole = 0;
    for (;;) {
      uint32_t child = 2 * hole + 1;
      if (child >= size) break;
      if (child + 1 < size && Less(heap_[child + 1], heap_[child])) ++child;
      Place(hole, heap_[child]);
      hole = child;
    }
    heap_[hole] = last;
    SiftUp(hole);
    RefreshEarliest();
    return;
  }
  if (index != heap_.size()) {
    Place(index, last);
    SiftDown(index);
    if (index > 0) SiftUp(slots_[last.slot].position);
  }
  RefreshEarliest();
}

inline void TimerQueue::RemoveFromBatch(uint32_t index) {
  DSIM_DCHECK(index < batch_.size());
  slots_[batch_[index]].position = kNowhere;
  const uint32_t last = static_cast<uint32_t>(batch_.size() - 1);
  if (index != last) {
    batch_[index] = batch_[last];
    batch_sequences_[index] = batch_sequences_[last];
    slots_[batch_[index]].position = kBatchBit | index;
  }
  batch_.pop_back();
  batch_sequences_.pop_back();
  RefreshEarliest();
}

void TimerQueue::Reinsert(TimerSlotId slot, int64_t when_ns) { InsertIntoHeap(slot, when_ns); }

// Takes a free slot and gives it the next sequence number.
inline TimerSlotId TimerQueue::NewSlot(uint32_t group) {
  TimerSlotId id;
  if (!free_slots_.empty()) {
    id = free_slots_.back();
    free_slots_.pop_back();
  } else {
    DSIM_CHECK(slots_.size() < kBatchBit, "too many timers");
    id = static_cast<TimerSlotId>(slots_.size());
    slots_.emplace_back();
  }
  TimerSlot& s = slots_[id];
  DSIM_DCHECK(!s.in_use);
  s.group = group;
  s.sequence = next_sequence_++;
  s.in_use = true;
  return id;
}

TimerSlotId TimerQueue::Add(int64_t when_ns, uint32_t group, Task* task,
                            std::function<void()> callback) {
  const TimerSlotId id = NewSlot(group);
  TimerSlot& s = slots_[id];
  if (callback != nullptr) s.callback = std::move(callback);
  s.task = task;
  InsertIntoHeap(id, when_ns);
  return id;
}

TimerSlotId TimerQueue::AddCall(int64_t when_ns, uint32_t group, TimerFunction call,
                                void* context, uint64_t argument) {
  const TimerSlotId id = NewSlot(group);
  TimerSlot& s = slots_[id];
  s.call = call;
  s.context = context;
  s.argument = argument;
  InsertIntoHeap(id, when_ns);
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
  const uint32_t position = slots_[slot].position;
  if (position == kNowhere) {
    // Taken (deferred by a paused group, or firing now): just forget it.
  } else if (position & kBatchBit) {
    RemoveFromBatch(position & ~kBatchBit);
  } else {
    RemoveFromHeap(position);
  }
  Release(slot);
  return true;
}

size_t TimerQueue::FillBatch(int64_t now_ns) {
  if (!batch_.empty() || heap_.empty()) return batch_.size();
  const int64_t when = heap_[0].when_ns;
  if (when > now_ns) return 0;
  while (!heap_.empty() && heap_[0].when_ns == when) {
    const HeapEntry top = heap_[0];
    RemoveFromHeap(0);
    slots_[top.slot].position = kBatchBit | static_cast<uint32_t>(batch_.size());
    batch_.push_back(top.slot);
    batch_sequences_.push_back(top.sequence);
  }
  RefreshEarliest();
  return batch_.size();
}

TimerSlotId TimerQueue::TakeLoneDue(int64_t now_ns) {
  if (!batch_.empty() || heap_.empty()) return kNowhere;
  const HeapEntry top = heap_[0];
  if (top.when_ns > now_ns) return kNowhere;
  // The heap's second-smallest entry is one of the root's children.
  const size_t size = heap_.size();
  if ((size > 1 && heap_[1].when_ns == top.when_ns) ||
      (size > 2 && heap_[2].when_ns == top.when_ns)) {
    return kNowhere;
  }
  RemoveFromHeap(0);
  return top.slot;
}

TimerSlotId TimerQueue::TakeFromBatch(size_t index) {
  DSIM_CHECK(index < batch_.size());
  const TimerSlotId slot = batch_[index];
  RemoveFromBatch(static_cast<uint32_t>(index));
  return slot;
}

}  // namespace dsim::internal
