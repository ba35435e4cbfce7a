#include "scheduler/internal/timer_queue.h"

#include <algorithm>
#include <utility>

#include "scheduler/internal/check.h"

namespace dsim::internal {

// ---- The due-time index ------------------------------------------------------------

TimerQueue::DueIndex::DueIndex() : cells_(16, Cell{-1, 0}), mask_(15), shift_(64 - 4) {}

void TimerQueue::DueIndex::Insert(int64_t when_ns, uint32_t bucket) {
  DSIM_DCHECK(when_ns >= 0);
  if (2 * (size_ + 1) > cells_.size()) Grow();
  size_t i = Home(when_ns);
  while (cells_[i].when_ns >= 0) {
    DSIM_DCHECK(cells_[i].when_ns != when_ns);
    i = (i + 1) & mask_;
  }
  cells_[i] = Cell{when_ns, bucket};
  ++size_;
}

void TimerQueue::DueIndex::Erase(int64_t when_ns) {
  size_t hole = Home(when_ns);
  while (cells_[hole].when_ns != when_ns) {
    DSIM_DCHECK(cells_[hole].when_ns >= 0, "erasing a due time that is not indexed");
    hole = (hole + 1) & mask_;
  }
  // Backward shift: a later cell of the probe run moves into the hole when the hole lies
  // between its home and where it is, so every key stays reachable from its home.
  for (size_t j = (hole + 1) & mask_; cells_[j].when_ns >= 0; j = (j + 1) & mask_) {
    const size_t home = Home(cells_[j].when_ns);
    if (((j - home) & mask_) >= ((j - hole) & mask_)) {
      cells_[hole] = cells_[j];
      hole = j;
    }
  }
  cells_[hole].when_ns = -1;
  --size_;
}

void TimerQueue::DueIndex::Grow() {
  std::vector<Cell> old = std::move(cells_);
  cells_.assign(old.size() * 2, Cell{-1, 0});
  mask_ = cells_.size() - 1;
  --shift_;
  size_ = 0;
  for (const Cell& cell : old) {
    if (cell.when_ns >= 0) Insert(cell.when_ns, cell.bucket);
  }
}

// ---- The heap of buckets ---------------------------------------------------------------

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

// ---- Buckets ---------------------------------------------------------------------------

inline uint32_t TimerQueue::BucketFor(int64_t when_ns) {
  if (when_ns == last_when_ns_) return last_bucket_;
  uint32_t b = index_.Find(when_ns);
  if (b == kNowhere) {
    if (!free_buckets_.empty()) {
      b = free_buckets_.back();
      free_buckets_.pop_back();
    } else {
      b = static_cast<uint32_t>(buckets_.size());
      buckets_.emplace_back();
    }
    Bucket& bucket = buckets_[b];
    DSIM_DCHECK(bucket.when_ns < 0 && bucket.entries.empty());
    bucket.when_ns = when_ns;
    bucket.live = 0;
    index_.Insert(when_ns, b);
    const uint32_t at = static_cast<uint32_t>(heap_.size());
    heap_.push_back(HeapEntry{when_ns, b});
    SiftUp(at);
  }
  last_when_ns_ = when_ns;
  last_bucket_ = b;
  return b;
}

inline void TimerQueue::InsertIntoBucket(TimerSlotId slot, int64_t when_ns) {
  DSIM_DCHECK(when_ns >= 0);
  const uint32_t b = BucketFor(when_ns);
  Bucket& bucket = buckets_[b];
  TimerSlot& s = slots_[slot];
  s.when_ns = when_ns;
  s.bucket = b;
  std::vector<Entry>& entries = bucket.entries;
  if (ABSL_PREDICT_TRUE(entries.empty() || entries.back().sequence < s.sequence)) {
    // A new timer has the highest sequence so far: it goes last.
    s.position = static_cast<uint32_t>(entries.size());
    entries.push_back(Entry{s.sequence, slot});
  } else {
    // A deferred timer put back keeps its old sequence: its place in sequence order.
    const auto at = std::lower_bound(
        entries.begin(), entries.end(), s.sequence,
        [](const Entry& entry, uint64_t sequence) { return entry.sequence < sequence; });
    const size_t first = static_cast<size_t>(at - entries.begin());
    entries.insert(at, Entry{s.sequence, slot});
    for (size_t i = first; i < entries.size(); ++i) {
      if (entries[i].slot != kNowhere) slots_[entries[i].slot].position = static_cast<uint32_t>(i);
    }
  }
  ++bucket.live;
  ++pending_;
  RefreshEarliest();
}

void TimerQueue::FreeBucket(uint32_t b) {
  Bucket& bucket = buckets_[b];
  const uint32_t index = bucket.heap_index;
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  if (index != heap_.size()) {
    Place(index, last);
    SiftDown(index);
    if (index > 0) SiftUp(buckets_[last.bucket].heap_index);
  }
  index_.Erase(bucket.when_ns);
  if (last_when_ns_ == bucket.when_ns) last_when_ns_ = -1;
  bucket.when_ns = -1;
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

void TimerQueue::Reinsert(TimerSlotId slot, int64_t when_ns) { InsertIntoBucket(slot, when_ns); }

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
  InsertIntoBucket(id, when_ns);
  return id;
}

TimerSlotId TimerQueue::AddCall(int64_t when_ns, uint32_t group, TimerFunction call,
                                void* context, uint64_t argument) {
  const TimerSlotId id = NewSlot(group);
  TimerSlot& s = slots_[id];
  s.call = call;
  s.context = context;
  s.argument = argument;
  InsertIntoBucket(id, when_ns);
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
    RemoveFromBucket(slot);
  }
  Release(slot);
  return true;
}

size_t TimerQueue::FillBatch(int64_t now_ns) {
  if (!batch_.empty() || heap_.empty()) return batch_.size();
  if (heap_[0].when_ns > now_ns) return 0;
  const uint32_t b = heap_[0].bucket;
  const Bucket& bucket = buckets_[b];
  // The bucket lists its timers by sequence: the batch starts in (due, sequence) order.
  for (const Entry& entry : bucket.entries) {
    if (entry.slot == kNowhere) continue;
    slots_[entry.slot].position = kBatchBit | static_cast<uint32_t>(batch_.size());
    batch_.push_back(entry.slot);
    batch_sequences_.push_back(entry.sequence);
  }
  pending_ -= bucket.live;
  FreeBucket(b);
  RefreshEarliest();
  return batch_.size();
}

TimerSlotId TimerQueue::TakeLoneDue(int64_t now_ns) {
  if (!batch_.empty() || heap_.empty()) return kNowhere;
  if (heap_[0].when_ns > now_ns) return kNowhere;
  const uint32_t b = heap_[0].bucket;
  const Bucket& bucket = buckets_[b];
  if (bucket.live != 1) return kNowhere;
  TimerSlotId slot = kNowhere;
  for (const Entry& entry : bucket.entries) {
    if (entry.slot != kNowhere) {
      slot = entry.slot;
      break;
    }
  }
  slots_[slot].position = kNowhere;
  --pending_;
  FreeBucket(b);
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
