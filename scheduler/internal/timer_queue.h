// TimerQueue: pending timers, ordered by (due time, creation sequence).
//
// A binary heap ordered by due time whose entries are either one timer (the common
// case: a lone timer costs one heap entry) or a "bucket": several timers due at the same
// instant, in sequence order. Simulations add many timers at the same instants (lockstep
// clients send at once, a link's latency is fixed): an add due when one of the last two
// adds was due joins that entry (a lone timer becomes a bucket), so moving every timer
// due at the earliest instant into the "due batch" takes a few heap entries instead of
// one pop per timer. Several entries may share a due time (the cache above is not an
// index); the batch gathers all of them and lists its timers by sequence, so the order is
// exactly what one heap of (due time, sequence) pairs would give. The scheduler's
// strategy picks the batch's firing order one timer at a time (O(1) per pick).
//
// Adding and cancelling are O(log entries) amortized; a timer cancelled in the middle
// of a bucket leaves a tombstone, dropped when the bucket is compacted or fired.
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
  // Where it is (see TimerQueue): kNowhere, kBatchBit | index in the batch, its index
  // in `bucket` when that is not kNowhere, else its index in the heap.
  uint32_t position = 0;
  uint32_t bucket = 0;
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
  // A heap entry's `ref`: a timer's slot, or kBucketTag | a bucket's index.
  static constexpr uint32_t kBucketTag = 1u << 31;
  // A bucket's entry: a timer's sequence and slot; slot kNowhere marks a cancelled one.
  struct Entry {
    uint64_t sequence;
    TimerSlotId slot;
  };
  // Timers due at one instant, by sequence (tombstones included).
  struct Bucket {
    uint32_t live = 0;  // Entries that are not tombstones.
    uint32_t heap_index = 0;
    std::vector<Entry> entries;  // Keeps its capacity while free: no allocation on reuse.
  };
  struct HeapEntry {
    int64_t when_ns;
    uint32_t ref;
  };
  // One of the two entries the last adds went to.
  struct Recent {
    int64_t when_ns = -1;  // -1: none.
    uint32_t ref = 0;
  };

  // A new timer (the highest sequence so far): joins a recent entry due at the same
  // instant, or becomes a lone entry.
  void InsertNew(TimerSlotId slot, int64_t when_ns);
  void InsertLone(TimerSlotId slot, int64_t when_ns);
  // Makes the lone timer `lone` (in the heap) a bucket holding it; returns the bucket.
  uint32_t MakeBucket(TimerSlotId lone);
  void AppendToBucket(uint32_t bucket, TimerSlotId slot);
  // Removes the heap entry at `index`; the entry's timers are the caller's business.
  void RemoveHeapEntry(uint32_t index);
  void FreeBucket(uint32_t bucket);
  void RemoveFromBucket(TimerSlotId slot);
  void Compact(Bucket& bucket);
  void RemoveFromBatch(uint32_t index);
  void SortBatch();
  // Forgets `ref` as a recent add target (it left the heap).
  void ForgetRecent(uint32_t ref) {
    if (recent_[0].ref == ref) recent_[0].when_ns = -1;
    if (recent_[1].ref == ref) recent_[1].when_ns = -1;
  }
  void SiftUp(uint32_t index);
  void SiftDown(uint32_t index);
  void Place(uint32_t index, const HeapEntry& entry) {
    heap_[index] = entry;
    if (entry.ref & kBucketTag) {
      buckets_[entry.ref & ~kBucketTag].heap_index = index;
    } else {
      slots_[entry.ref].position = index;
    }
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
  Recent recent_[2];    // [0] the most recently used.
  size_t pending_ = 0;  // Timers in the heap (lone or in buckets).
  std::vector<TimerSlotId> batch_;
  std::vector<uint64_t> batch_sequences_;
  std::vector<Entry> sort_scratch_;
  uint64_t next_sequence_ = 1;
  // Due time of the earliest pending timer, INT64_MAX when none: the run loop asks
  // "is anything due?" at every scheduling point, so it is one comparison.
  int64_t earliest_ns_ = INT64_MAX;
};

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_TIMER_QUEUE_H_
