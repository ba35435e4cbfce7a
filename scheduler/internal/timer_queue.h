// TimerQueue: pending timers, ordered by (due time, creation sequence).
//
// A binary heap ordered by due time, and in front of it one entry not later than any in
// the heap (the "front"). Each entry is one timer (the common case) or the first of
// several timers due at the same instant, linked in a ring through their slots in
// sequence order. A new lone timer due no later than every pending one takes the empty
// front instead of a heap slot, and the next lone take finds it there: a ping-pong
// (one packet in flight at a time, long timers pending behind it) never touches the
// heap. Simulations add many timers at the same instants (lockstep
// clients send at once, a link's latency is fixed): an add due when one of the last two
// adds was due joins that entry's ring, so moving every timer due at the earliest
// instant into the "due batch" takes a few heap entries instead of one pop per timer,
// and adding one is a few stores. Several entries may share a due time (the recent
// adds are a cache, not an index); the batch gathers all of them and lists its timers
// by sequence, so the order is exactly what one heap of (due time, sequence) pairs would
// give. The scheduler's strategy picks the batch's firing order one timer at a time
// (O(1) per pick). Adding and cancelling are O(log entries); nothing allocates once the
// slots, the heap and the batch have grown to the run's high-water mark.
#ifndef DSIM_SCHEDULER_INTERNAL_TIMER_QUEUE_H_
#define DSIM_SCHEDULER_INTERNAL_TIMER_QUEUE_H_

#include <cstdint>
#include <functional>
#include <utility>
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
  // Where it is: TimerQueue::kNowhere (taken), kBatchBit | its index in the batch,
  // kInRing (in an entry's ring, not first), kFront (the front entry's lone or first
  // timer), or its heap index (lone or first).
  uint32_t position = 0;
  // Its ring of timers due at the same instant (itself when alone): previous and next
  // by sequence; the first's previous is the last.
  uint32_t prev = 0;
  uint32_t next = 0;
  uint32_t group = 0;
  bool in_use = false;
};

class TimerQueue {
 public:
  static constexpr uint32_t kNowhere = UINT32_MAX;     // Not in heap or batch.
  static constexpr uint32_t kBatchBit = 1u << 31;      // Position is in the batch.
  static constexpr uint32_t kInRing = kBatchBit - 1;   // In a ring, not its first.
  static constexpr uint32_t kFront = kInRing - 1;      // Heads the front entry.

  TimerSlotId Add(int64_t when_ns, uint32_t group, Task* task, std::function<void()> callback);
  // Inline: every packet in flight is one (Scheduler::AddTimerCall).
  TimerSlotId AddCall(int64_t when_ns, uint32_t group, TimerFunction call, void* context,
                      uint64_t argument) {
    const TimerSlotId id = NewSlot(group);
    TimerSlot& s = slots_[id];
    s.call = call;
    s.context = context;
    s.argument = argument;
    InsertNew(id, when_ns);
    return id;
  }
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

  // Timers in the heap or the batch.
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
  // removes it from the queue and returns its slot; otherwise kNowhere. Inline for a
  // lone front entry (the idle step of a ping-pong); the heap's case out of line.
  TimerSlotId TakeLoneDue(int64_t now_ns) {
    if (!has_front_ || !batch_.empty()) return TakeLoneDueSlow(now_ns);
    const TimerSlotId first = front_.first;
    const int64_t when = front_.when_ns;
    // The front is not later than any heap entry: a tie would be the heap's root.
    if (when > now_ns || slots_[first].next != first ||
        (!heap_.empty() && heap_[0].when_ns == when)) {
      return kNowhere;
    }
    has_front_ = false;
    ForgetRecent(first);
    slots_[first].position = kNowhere;
    --pending_;
    earliest_ns_ = heap_.empty() ? INT64_MAX : heap_[0].when_ns;
    return first;
  }
  // Sequence numbers of the batch's timers, in batch order.
  absl::Span<const uint64_t> batch_sequences() const { return batch_sequences_; }
  // Removes the batch's `index`-th timer and returns its slot (still allocated).
  // Inline: the strategy's pick from a batch of ties is the hot path of lockstep runs.
  TimerSlotId TakeFromBatch(size_t index) {
    DSIM_CHECK(index < batch_.size());
    const TimerSlotId slot = batch_[index];
    RemoveFromBatch(static_cast<uint32_t>(index));
    return slot;
  }
  bool batch_empty() const { return batch_.empty(); }

 private:
  // A heap entry: a due time and the first timer of the ring due then.
  struct HeapEntry {
    int64_t when_ns;
    TimerSlotId first;
  };
  // An entry the last adds went to: its due time and its first timer.
  struct Recent {
    int64_t when_ns = -1;  // -1: none.
    TimerSlotId first = 0;
  };

  // A new timer (the highest sequence so far): joins the ring of a recent entry due at
  // the same instant, or becomes a lone entry.
  void InsertNew(TimerSlotId slot, int64_t when_ns) {
    TimerSlotId first;
    if (when_ns == recent_[0].when_ns) {
      first = recent_[0].first;
    } else if (when_ns == recent_[1].when_ns) {
      std::swap(recent_[0], recent_[1]);
      first = recent_[0].first;
    } else {
      return InsertLoneRecent(slot, when_ns);
    }
    // Last in the ring: its sequence is the highest so far. The earliest due time does
    // not change (the entry is already in the heap or the front).
    TimerSlot& head = slots_[first];
    const TimerSlotId last = head.prev;
    TimerSlot& s = slots_[slot];
    DSIM_DCHECK(slots_[last].sequence < s.sequence);
    s.when_ns = when_ns;
    s.position = kInRing;
    s.prev = last;
    s.next = first;
    slots_[last].next = slot;
    head.prev = slot;
    ++pending_;
  }
  // A lone entry that later adds due at the same instant may join.
  void InsertLoneRecent(TimerSlotId slot, int64_t when_ns);
  void InsertLone(TimerSlotId slot, int64_t when_ns);
  void InsertLoneOutOfLine(TimerSlotId slot, int64_t when_ns);
  void PushHeap(const HeapEntry& entry);
  TimerSlotId TakeLoneDueSlow(int64_t now_ns);
  // Removes the heap entry at `index`; its timers are the caller's business.
  void RemoveHeapEntry(uint32_t index);
  void AppendToBatch(TimerSlotId slot) {
    slots_[slot].position = kBatchBit | static_cast<uint32_t>(batch_.size());
    batch_.push_back(slot);
    batch_sequences_.push_back(slots_[slot].sequence);
  }
  void RemoveFromBatch(uint32_t index) {
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
  void SortBatch();
  // Forgets `first` as a recent add target (it left the heap or its ring).
  void ForgetRecent(TimerSlotId first) {
    if (recent_[0].first == first) recent_[0].when_ns = -1;
    if (recent_[1].first == first) recent_[1].when_ns = -1;
  }
  void SiftUp(uint32_t index);
  void SiftDown(uint32_t index);
  void Place(uint32_t index, const HeapEntry& entry) {
    heap_[index] = entry;
    slots_[entry.first].position = index;
  }
  // Takes a free slot and gives it the next sequence number.
  TimerSlotId NewSlot(uint32_t group) {
    if (ABSL_PREDICT_FALSE(free_slots_.empty())) AddFreeSlot();
    const TimerSlotId id = free_slots_.back();
    free_slots_.pop_back();
    TimerSlot& s = slots_[id];
    DSIM_DCHECK(!s.in_use);
    s.group = group;
    s.sequence = next_sequence_++;
    s.in_use = true;
    return id;
  }
  // Grows the slots by one, free.
  void AddFreeSlot();
  // Recomputes earliest_ns_ after the heap or the batch changed.
  void RefreshEarliest() {
    earliest_ns_ = !batch_.empty()  ? slots_[batch_[0]].when_ns
                   : has_front_     ? front_.when_ns
                   : !heap_.empty() ? heap_[0].when_ns
                                    : INT64_MAX;
  }

  std::vector<TimerSlot> slots_;
  std::vector<TimerSlotId> free_slots_;
  std::vector<HeapEntry> heap_;
  // The front entry, when has_front_: due no later than every heap entry (ties allowed;
  // FillBatch gathers them).
  HeapEntry front_{INT64_MAX, 0};
  bool has_front_ = false;
  Recent recent_[2];    // [0] the most recently used.
  size_t pending_ = 0;  // Timers in the heap's entries.
  std::vector<TimerSlotId> batch_;
  std::vector<uint64_t> batch_sequences_;
  std::vector<std::pair<uint64_t, TimerSlotId>> sort_scratch_;
  uint64_t next_sequence_ = 1;
  // Due time of the earliest pending timer, INT64_MAX when none: the run loop asks
  // "is anything due?" at every scheduling point, so it is one comparison.
  int64_t earliest_ns_ = INT64_MAX;
};

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_TIMER_QUEUE_H_
