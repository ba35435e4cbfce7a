// TimerQueue: pending timers, ordered by (due time, creation sequence).
//
// Timers are grouped by due instant: each distinct due time has a "bucket" holding its
// timers in sequence order, and a binary heap orders the buckets (keys are distinct,
// so the heap orders by due time alone). A small hash index finds a due time's bucket.
// Simulations add many timers at the same instants (lockstep clients send at once, a
// link's latency is fixed), so most adds append to an existing bucket, and moving all
// timers due at the earliest instant into the "due batch" takes one bucket off the heap
// instead of popping every timer. The strategy picks the batch's firing order one timer
// at a time (O(1) per pick, however large the batch). The order is exactly what one
// heap of (due time, sequence) pairs would give: a batch lists its timers by sequence.
//
// Adding and cancelling stay O(log buckets) amortized; a cancelled timer in the middle
// of a bucket leaves a tombstone that is dropped when the bucket is compacted or fired.
#ifndef DSIM_SCHEDULER_INTERNAL_TIMER_QUEUE_H_
#define DSIM_SCHEDULER_INTERNAL_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/types/span.h"
#include "scheduler/internal/check.h"

namespace dsim::internal {

struct Task;
using TimerSlotId = uint32_t;

// A timer callback as a plain function and its two arguments (Scheduler::AddTimerCall).
using TimerFunction = void (*)(void* context, uint64_t argument);

struct TimerSlot {
  std::function<void()> callback;  // Empty for a task wake-up timer and a call timer.
  Task* task = nullptr;            // The task to wake, for wake-up timers.
  // Call timers: call(context, argument); null for the others.
  TimerFunction call = nullptr;
  void* context = nullptr;
  uint64_t argument = 0;
  int64_t when_ns = 0;
  uint64_t sequence = 0;           // Creation order: a timer's stable identity.
  uint32_t generation = 1;         // Bumped on release, so stale TimerIds are rejected.
  uint32_t position = 0;           // Index in its bucket or the batch (see TimerQueue).
  uint32_t bucket = 0;             // Its bucket, while position is in one.
  uint32_t group = 0;
  bool in_use = false;
};

class TimerQueue {
 public:
  static constexpr uint32_t kNowhere = UINT32_MAX;     // Not in heap or batch.
  static constexpr uint32_t kBatchBit = 1u << 31;      // Position is in the batch.

  TimerSlotId Add(int64_t when_ns, uint32_t group, Task* task, std::function<void()> callback);
  TimerSlotId AddCall(int64_t when_ns, uint32_t group, TimerFunction call, void* context,
                      uint64_t argument);
  // Puts a taken (deferred) timer back, due at `when_ns`.
  void Reinsert(TimerSlotId slot, int64_t when_ns);
  // Removes a pending timer and frees its slot. False if `id` is stale.
  bool Cancel(uint64_t id);
  // Ids of the live callback timers (not task wake-ups) of `group`, pending or deferred,
  // in slot order. O(slots): for rare events such as a host crash.
  std::vector<uint64_t> CallbackTimersOf(uint32_t group) const;
  // Frees the slot of a timer that was taken from the batch (or the heap). Inline: every
  // timer that fires ends here.
  void Release(TimerSlotId slot) {
    TimerSlot& s = slots_[slot];
    DSIM_DCHECK(s.in_use);
    s.in_use = false;
    if (s.callback != nullptr) s.callback = nullptr;
    s.task = nullptr;
    s.call = nullptr;
    s.position = kNowhere;
    ++s.generation;
    if (s.generation == 0) s.generation = 1;
    free_slots_.push_back(slot);
  }

  uint64_t IdOf(TimerSlotId slot) const {
    return (static_cast<uint64_t>(slots_[slot].generation) << 32) | slot;
  }
  // The slot `id` names, or kNowhere if it is stale.
  TimerSlotId SlotOf(uint64_t id) const {
    const uint64_t slot = id & 0xffffffffu;
    const uint32_t generation = static_cast<uint32_t>(id >> 32);
    if (slot >= slots_.size()) return kNowhere;
    const TimerSlot& s = slots_[slot];
    if (!s.in_use || s.generation != generation) return kNowhere;
    return static_cast<TimerSlotId>(slot);
  }
  TimerSlot& slot(TimerSlotId slot) { return slots_[slot]; }

  // Timers in the buckets or the batch.
  size_t size() const { return pending_ + batch_.size(); }
  bool empty() const { return size() == 0; }
  // Due time of the earliest pending timer. Requires !empty().
  int64_t EarliestNs() const { return earliest_ns_; }
  // True if a timer is due at or before `now_ns`.
  // (A non-empty batch is always due: FillBatch moves only due timers into it.)
  bool AnyDue(int64_t now_ns) const { return earliest_ns_ <= now_ns; }

  // If the batch is empty and timers are due at or before `now_ns`, moves every timer at
  // the earliest such instant into the batch. Returns the batch size.
  size_t FillBatch(int64_t now_ns);
  // If the batch is empty and exactly one timer is due at the earliest instant (no tie),
  // removes it from the heap and returns its slot; otherwise kNowhere.
  TimerSlotId TakeLoneDue(int64_t now_ns);
  // Sequence numbers of the batch's timers, in batch order.
  absl::Span<const uint64_t> batch_sequences() const { return batch_sequences_; }
  // Removes the batch's `index`-th timer and returns its slot (still allocated).
  TimerSlotId TakeFromBatch(size_t index);

 private:
  // A bucket's entry: a timer's sequence and slot; slot kNowhere marks a cancelled one.
  struct Entry {
    uint64_t sequence;
    TimerSlotId slot;
  };
  // The pending timers due at one instant, by sequence (tombstones included).
  struct Bucket {
    int64_t when_ns = -1;  // -1 while the bucket is free.
    uint32_t live = 0;     // Entries that are not tombstones.
    uint32_t heap_index = 0;
    std::vector<Entry> entries;  // Keeps its capacity while free: no allocation on reuse.
  };
  // A heap entry: a bucket and its due time (distinct among the heap's buckets).
  struct HeapEntry {
    int64_t when_ns;
    uint32_t bucket;
  };
  // Due time -> bucket, open addressing with linear probing (no tombstones: deletion
  // shifts the cluster back). Looked up by value only, never iterated.
  class DueIndex {
   public:
    DueIndex();
    uint32_t Find(int64_t when_ns) const {
      for (size_t i = Home(when_ns);; i = (i + 1) & mask_) {
        if (cells_[i].when_ns == when_ns) return cells_[i].bucket;
        if (cells_[i].when_ns < 0) return kNowhere;
      }
    }
    void Insert(int64_t when_ns, uint32_t bucket);
    void Erase(int64_t when_ns);

   private:
    struct Cell {
      int64_t when_ns;  // -1: empty.
      uint32_t bucket;
    };
    size_t Home(int64_t when_ns) const {
      return static_cast<size_t>((static_cast<uint64_t>(when_ns) * 0x9E3779B97F4A7C15ull) >>
                                 shift_);
    }
    void Grow();
    std::vector<Cell> cells_;
    size_t mask_ = 0;
    int shift_ = 64;
    size_t size_ = 0;
  };

  // The bucket of `when_ns`, created (and put on the heap) if there is none.
  uint32_t BucketFor(int64_t when_ns);
  void InsertIntoBucket(TimerSlotId slot, int64_t when_ns);
  // Takes a bucket off the heap and out of the index, and frees it.
  void FreeBucket(uint32_t bucket);
  void RemoveFromBucket(TimerSlotId slot);
  void Compact(Bucket& bucket);
  void RemoveFromBatch(uint32_t index);
  void SiftUp(uint32_t index);
  void SiftDown(uint32_t index);
  void Place(uint32_t index, const HeapEntry& entry) {
    heap_[index] = entry;
    buckets_[entry.bucket].heap_index = index;
  }
  TimerSlotId NewSlot(uint32_t group);
  // Recomputes earliest_ns_ after the heap or the batch changed.
  void RefreshEarliest() {
    earliest_ns_ = !batch_.empty()  ? slots_[batch_[0]].when_ns
                   : !heap_.empty() ? heap_[0].when_ns
                                    : INT64_MAX;
  }

  std::vector<TimerSlot> slots_;
  std::vector<TimerSlotId> free_slots_;
  std::vector<Bucket> buckets_;
  std::vector<uint32_t> free_buckets_;
  std::vector<HeapEntry> heap_;
  DueIndex index_;
  // The due time and bucket of the last add: the next add is often due then too.
  int64_t last_when_ns_ = -1;
  uint32_t last_bucket_ = 0;
  size_t pending_ = 0;  // Live timers in buckets.
  std::vector<TimerSlotId> batch_;
  std::vector<uint64_t> batch_sequences_;
  uint64_t next_sequence_ = 1;
  // Due time of the earliest pending timer, INT64_MAX when none: the run loop asks
  // "is anything due?" at every scheduling point, so it is one comparison.
  int64_t earliest_ns_ = INT64_MAX;
};

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_TIMER_QUEUE_H_
