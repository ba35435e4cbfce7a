#include "scheduler/internal/timer_queue.h"

#include <algorithm>
#include <utility>

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

inline void TimerQueue::InsertLone(TimerSlotId slot, int64_t when_ns) {
  DSIM_DCHECK(when_ns >= 0);
  TimerSlot& s = slots_[slot];
  s.when_ns = when_ns;
  s.bucket = kNowhere;
  const uint32_t index = static_cast<uint32_t>(heap_.size());
  heap_.push_back(HeapEntry{when_ns, slot});
  SiftUp(index);
  ++pending_;
  RefreshEarliest();
}

// ---- Buckets ---------------------------------------------------------------------------

inline uint32_t TimerQueue::MakeBucket(TimerSlotId lone) {
  uint32_t b;
  if (!free_buckets_.empty()) {
    b = free_buckets_.back();
    free_buckets_.pop_back();
  } else {
    DSIM_CHECK(buckets_.size() < kBucketTag, "too many timer buckets");
    b = static_cast<uint32_t>(buckets_.size());
    buckets_.emplace_back();
  }
  Bucket& bucket = buckets_[b];
  TimerSlot& s = slots_[lone];
  DSIM_DCHECK(bucket.entries.empty() && s.bucket == kNowhere);
  bucket.heap_index = s.position;
  heap_[s.position].ref = kBucketTag | b;
  bucket.entries.push_back(Entry{s.sequence, lone});
  bucket.live = 1;
  s.bucket = b;
  s.position = 0;
  return b;
}

inline void TimerQueue::AppendToBucket(uint32_t b, TimerSlotId slot) {
  Bucket& bucket = buckets_[b];
  TimerSlot& s = slots_[slot];
  std::vector<Entry>& entries = bucket.entries;
  // Only new timers are appended: theirs is the highest sequence so far.
  DSIM_DCHECK(entries.empty() || entries.back().sequence < s.sequence);
  s.when_ns = heap_[bucket.heap_index].when_ns;
  s.bucket = b;
  s.position = static_cast<uint32_t>(entries.size());
  entries.push_back(Entry{s.sequence, slot});
  ++bucket.live;
  ++pending_;
}

inline void TimerQueue::FreeBucket(uint32_t b) {
  ForgetRecent(kBucketTag | b);
  Bucket& bucket = buckets_[b];
  bucket.live = 0;
  bucket.entries.clear();
  free_buckets_.push_back(b);
}

// Drops a bucket's tombstones.
void TimerQueue::Compact(Bucket& bucket) {
  std::vector<Entry>& entries = bucket.entries;
  size_t kept = 0;
  for (const Entry& entry : entries) {
    if (entry.slot == kNowhere) continue;
    slots_[entry.slot].position = static_cast<uint32_t>(kept);
    entries[kept++] = entry;
  }
  entries.resize(kept);
  DSIM_DCHECK(kept == bucket.live);
}

inline void TimerQueue::RemoveFromBucket(TimerSlotId slot) {
  TimerSlot& s = slots_[slot];
  const uint32_t b = s.bucket;
  Bucket& bucket = buckets_[b];
  const uint32_t position = s.position;
  std::vector<Entry>& entries = bucket.entries;
  DSIM_DCHECK(position < entries.size() && entries[position].slot == slot);
  s.position = kNowhere;
  --pending_;
  if (--bucket.live == 0) {
    RemoveHeapEntry(bucket.heap_index);
    FreeBucket(b);
    RefreshEarliest();
    return;
  }
  if (position + 1 == entries.size()) {
    // The newest entry (a timer cancelled soon after it was added): no tombstone.
    entries.pop_back();
    while (entries.back().slot == kNowhere) entries.pop_back();  // live > 0: stops.
  } else {
    entries[position].slot = kNowhere;
    // Tombstones at most about as many as live timers: compaction is amortized O(1).
    if (entries.size() >= 2 * size_t{bucket.live} + 16) Compact(bucket);
  }
}

// ---- Adding and cancelling -------------------------------------------------------------

inline void TimerQueue::InsertNew(TimerSlotId slot, int64_t when_ns) {
  uint32_t ref;
  if (when_ns == recent_[0].when_ns) {
    ref = recent_[0].ref;
  } else if (when_ns == recent_[1].when_ns) {
    std::swap(recent_[0], recent_[1]);
    ref = recent_[0].ref;
  } else {
    InsertLone(slot, when_ns);
    recent_[1] = recent_[0];
    recent_[0] = Recent{when_ns, slot};
    return;
  }
  if (!(ref & kBucketTag)) {
    ref = kBucketTag | MakeBucket(ref);
    recent_[0].ref = ref;
  }
  AppendToBucket(ref & ~kBucketTag, slot);
}

void TimerQueue::Reinsert(TimerSlotId slot, int64_t when_ns) {
  // Its old sequence may be lower than a bucket's: a lone entry of its own (the batch
  // that gathers its instant puts it in sequence order).
  InsertLone(slot, when_ns);
}

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
  InsertNew(id, when_ns);
  return id;
}

TimerSlotId TimerQueue::AddCall(int64_t when_ns, uint32_t group, TimerFunction call,
                                void* context, uint64_t argument) {
  const TimerSlotId id = NewSlot(group);
  TimerSlot& s = slots_[id];
  s.call = call;
  s.context = context;
  s.argument = argument;
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
  } else if (s.bucket != kNowhere) {
    RemoveFromBucket(slot);
  } else {
    ForgetRecent(slot);
    RemoveHeapEntry(position);
    --pending_;
    RefreshEarliest();
  }
  Release(slot);
  return true;
}

// ---- Firing ----------------------------------------------------------------------------

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

size_t TimerQueue::FillBatch(int64_t now_ns) {
  if (!batch_.empty() || heap_.empty()) return batch_.size();
  const int64_t when = heap_[0].when_ns;
  if (when > now_ns) return 0;
  size_t entries = 0;
  do {
    const uint32_t ref = heap_[0].ref;
    RemoveHeapEntry(0);
    ++entries;
    if (ref & kBucketTag) {
      const uint32_t b = ref & ~kBucketTag;
      for (const Entry& entry : buckets_[b].entries) {
        if (entry.slot == kNowhere) continue;
        slots_[entry.slot].position = kBatchBit | static_cast<uint32_t>(batch_.size());
        batch_.push_back(entry.slot);
        batch_sequences_.push_back(entry.sequence);
      }
      FreeBucket(b);
    } else {
      ForgetRecent(ref);
      slots_[ref].position = kBatchBit | static_cast<uint32_t>(batch_.size());
      batch_.push_back(ref);
      batch_sequences_.push_back(slots_[ref].sequence);
    }
  } while (!heap_.empty() && heap_[0].when_ns == when);
  pending_ -= batch_.size();
  // Each entry lists its timers by sequence, but several entries due at the same instant
  // come off the heap in any order: the batch starts in sequence order, as one heap of
  // (due, sequence) pairs would give it.
  if (entries > 1 && !std::is_sorted(batch_sequences_.begin(), batch_sequences_.end())) {
    SortBatch();
  }
  RefreshEarliest();
  return batch_.size();
}

void TimerQueue::SortBatch() {
  std::vector<Entry>& sorted = sort_scratch_;
  sorted.clear();
  for (size_t i = 0; i < batch_.size(); ++i) sorted.push_back(Entry{batch_sequences_[i], batch_[i]});
  std::sort(sorted.begin(), sorted.end(),
            [](const Entry& a, const Entry& b) { return a.sequence < b.sequence; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    batch_[i] = sorted[i].slot;
    batch_sequences_[i] = sorted[i].sequence;
    slots_[sorted[i].slot].position = kBatchBit | static_cast<uint32_t>(i);
  }
}

TimerSlotId TimerQueue::TakeLoneDue(int64_t now_ns) {
  if (!batch_.empty() || heap_.empty()) return kNowhere;
  const HeapEntry top = heap_[0];
  if (top.when_ns > now_ns) return kNowhere;
  // Another entry due at the same instant would be one of the root's children (its
  // ancestors cannot be later than it).
  const size_t size = heap_.size();
  if ((size > 1 && heap_[1].when_ns == top.when_ns) ||
      (size > 2 && heap_[2].when_ns == top.when_ns)) {
    return kNowhere;
  }
  TimerSlotId slot = top.ref;
  if (top.ref & kBucketTag) {
    const uint32_t b = top.ref & ~kBucketTag;
    if (buckets_[b].live != 1) return kNowhere;
    for (const Entry& entry : buckets_[b].entries) {
      if (entry.slot != kNowhere) {
        slot = entry.slot;
        break;
      }
    }
    RemoveHeapEntry(0);
    FreeBucket(b);
  } else {
    ForgetRecent(slot);
    RemoveHeapEntry(0);
  }
  slots_[slot].position = kNowhere;
  --pending_;
  RefreshEarliest();
  return slot;
}

TimerSlotId TimerQueue::TakeFromBatch(size_t index) {
  DSIM_CHECK(index < batch_.size());
  const TimerSlotId slot = batch_[index];
  RemoveFromBatch(static_cast<uint32_t>(index));
  return slot;
}

}  // namespace dsim::internal
