// TimerQueue (scheduler/internal/timer_queue.h) against a plain reference model: every
// add, cancel, re-insert, lone take, batch fill and batch pick must give exactly what an
// ordered set of (due time, sequence) pairs gives. The firing order of a simulation (and
// so every seed's run) rests on this order.
#include "scheduler/internal/timer_queue.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "scheduler/random.h"

namespace dsim::internal {
namespace {

void Nothing(void*, uint64_t) {}

// What the queue should hold: pending timers by (due, sequence), the batch in its order
// (picks move the last entry into the hole, as the queue does), and the timers taken
// out but not released (deferred ones wait to be re-inserted).
struct Model {
  std::map<std::pair<int64_t, uint64_t>, TimerSlotId> pending;
  std::vector<TimerSlotId> batch;
  std::vector<uint64_t> batch_sequences;
};

class TimerQueueModelTest : public ::testing::Test {
 protected:
  void Check() {
    ASSERT_EQ(queue_.size(), model_.pending.size() + model_.batch.size());
    ASSERT_EQ(queue_.empty(), queue_.size() == 0);
    const std::vector<uint64_t> sequences(queue_.batch_sequences().begin(),
                                          queue_.batch_sequences().end());
    ASSERT_EQ(sequences, model_.batch_sequences);
    if (!queue_.empty()) {
      const int64_t earliest = !model_.batch.empty()
                                   ? queue_.slot(model_.batch[0]).when_ns
                                   : model_.pending.begin()->first.first;
      ASSERT_EQ(queue_.EarliestNs(), earliest);
    }
  }

  void Add(int64_t when_ns) {
    const TimerSlotId slot = queue_.AddCall(when_ns, 0, &Nothing, nullptr, 0);
    const uint64_t sequence = queue_.slot(slot).sequence;
    model_.pending.emplace(std::make_pair(when_ns, sequence), slot);
    live_.push_back(queue_.IdOf(slot));
  }

  // The timers due at the earliest instant, if it is due.
  std::vector<TimerSlotId> EarliestDue(int64_t now_ns) const {
    std::vector<TimerSlotId> due;
    if (model_.pending.empty()) return due;
    const int64_t when = model_.pending.begin()->first.first;
    if (when > now_ns) return due;
    for (const auto& [key, slot] : model_.pending) {
      if (key.first != when) break;
      due.push_back(slot);
    }
    return due;
  }

  // FillBatch on both sides: the model's batch is its earliest due instant's timers
  // (when its batch is empty), and the queue must report that many.
  void FillBatchOnBoth(int64_t now_ns) {
    if (model_.batch.empty()) {
      for (TimerSlotId slot : EarliestDue(now_ns)) {
        model_.batch.push_back(slot);
        model_.batch_sequences.push_back(queue_.slot(slot).sequence);
        model_.pending.erase(model_.pending.begin());
      }
    }
    ASSERT_EQ(queue_.FillBatch(now_ns), model_.batch.size());
  }

  void EraseFromModel(TimerSlotId slot) {
    for (auto it = model_.pending.begin(); it != model_.pending.end(); ++it) {
      if (it->second == slot) {
        model_.pending.erase(it);
        return;
      }
    }
    for (size_t i = 0; i < model_.batch.size(); ++i) {
      if (model_.batch[i] == slot) {
        RemoveFromModelBatch(i);
        return;
      }
    }
  }

  void RemoveFromModelBatch(size_t index) {
    model_.batch[index] = model_.batch.back();
    model_.batch_sequences[index] = model_.batch_sequences.back();
    model_.batch.pop_back();
    model_.batch_sequences.pop_back();
  }

  void ForgetLive(TimerSlotId slot) {
    const uint64_t id = queue_.IdOf(slot);
    live_.erase(std::remove(live_.begin(), live_.end(), id), live_.end());
  }

  TimerQueue queue_;
  Model model_;
  std::vector<uint64_t> live_;  // Ids of timers pending or in the batch.
};

// Many timers share few due instants, so rings fill up, lose timers at the start, the
// middle and the end, empty out, and come back; deferred timers return with their old
// sequence to instants that hold newer ones.
TEST_F(TimerQueueModelTest, EveryOperationMatchesAnOrderedSetOfDueAndSequence) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    queue_ = TimerQueue();
    model_ = Model();
    live_.clear();
    Random rng(seed);
    int64_t now_ns = 0;
    std::vector<TimerSlotId> deferred;  // Taken, neither released nor pending.
    std::vector<uint64_t> stale;
    for (int step = 0; step < 3000; ++step) {
      const uint64_t op = rng.Below(100);
      if (op < 35) {
        // Few distinct instants (ties), sometimes a far one.
        const int64_t when = rng.Below(8) == 0 ? now_ns + static_cast<int64_t>(rng.Below(100000))
                                               : now_ns + 10 * static_cast<int64_t>(rng.Below(5));
        Add(when);
      } else if (op < 50 && !live_.empty()) {
        const size_t pick = rng.Below(live_.size());
        const uint64_t id = live_[pick];
        const TimerSlotId slot = queue_.SlotOf(id);
        ASSERT_NE(slot, TimerQueue::kNowhere);
        EraseFromModel(slot);
        live_.erase(live_.begin() + static_cast<ptrdiff_t>(pick));
        ASSERT_TRUE(queue_.Cancel(id));
        stale.push_back(id);
      } else if (op < 53 && !stale.empty()) {
        ASSERT_FALSE(queue_.Cancel(stale[rng.Below(stale.size())]));
      } else if (op < 65) {
        const std::vector<TimerSlotId> due = EarliestDue(now_ns);
        const TimerSlotId expected =
            model_.batch.empty() && due.size() == 1 ? due[0] : TimerQueue::kNowhere;
        const TimerSlotId taken = queue_.TakeLoneDue(now_ns);
        ASSERT_EQ(taken, expected);
        if (taken != TimerQueue::kNowhere) {
          model_.pending.erase(model_.pending.begin());
          ForgetLive(taken);
          queue_.Release(taken);
        }
      } else if (op < 75) {
        ASSERT_NO_FATAL_FAILURE(FillBatchOnBoth(now_ns));
      } else if (op < 88 && !model_.batch.empty()) {
        const size_t index = rng.Below(model_.batch.size());
        const TimerSlotId expected = model_.batch[index];
        RemoveFromModelBatch(index);
        const TimerSlotId taken = queue_.TakeFromBatch(index);
        ASSERT_EQ(taken, expected);
        ForgetLive(taken);
        if (rng.Below(4) == 0) {
          deferred.push_back(taken);  // A paused group's timer: put back later.
        } else {
          queue_.Release(taken);
        }
      } else if (op < 92 && !deferred.empty()) {
        const size_t pick = rng.Below(deferred.size());
        const TimerSlotId slot = deferred[pick];
        deferred.erase(deferred.begin() + static_cast<ptrdiff_t>(pick));
        const int64_t when = std::max(queue_.slot(slot).when_ns, now_ns);
        queue_.Reinsert(slot, when);
        model_.pending.emplace(std::make_pair(when, queue_.slot(slot).sequence), slot);
        live_.push_back(queue_.IdOf(slot));
      } else {
        now_ns += 10 * static_cast<int64_t>(rng.Below(3));
      }
      ASSERT_NO_FATAL_FAILURE(Check()) << "seed " << seed << " step " << step;
    }
    // Drain: the queue gives everything back in (due, sequence) order.
    for (TimerSlotId slot : deferred) queue_.Release(slot);
    while (!queue_.empty()) {
      if (model_.batch.empty()) {
        for (TimerSlotId slot : EarliestDue(INT64_MAX)) {
          model_.batch.push_back(slot);
          model_.batch_sequences.push_back(queue_.slot(slot).sequence);
          model_.pending.erase(model_.pending.begin());
        }
      }
      ASSERT_EQ(queue_.FillBatch(INT64_MAX), model_.batch.size()) << "seed " << seed;
      ASSERT_NO_FATAL_FAILURE(Check());
      const TimerSlotId taken = queue_.TakeFromBatch(0);
      ASSERT_EQ(taken, model_.batch[0]);
      RemoveFromModelBatch(0);
      queue_.Release(taken);
    }
    ASSERT_TRUE(model_.pending.empty());
  }
}

// An instant that keeps receiving timers while its older ones are cancelled (a deadline
// shared by many waits that end early): cancels from the middle of its ring, and of its
// first timer, keep the survivors in sequence order.
TEST_F(TimerQueueModelTest, ManyCancelsAtOneInstantKeepSequenceOrder) {
  std::vector<uint64_t> ids;
  for (int i = 0; i < 100000; ++i) {
    ids.push_back(queue_.IdOf(queue_.AddCall(1000, 0, &Nothing, nullptr, 0)));
    if (ids.size() > 3) {
      // Cancel one from the middle: a tombstone, not a shift.
      ASSERT_TRUE(queue_.Cancel(ids[ids.size() - 3]));
      ids.erase(ids.end() - 3);
    }
  }
  EXPECT_EQ(queue_.size(), 3u);
  ASSERT_TRUE(queue_.Cancel(ids[0]));  // The first: the next one takes its place.
  EXPECT_EQ(queue_.TakeLoneDue(1000), TimerQueue::kNowhere);  // Two are due.
  ASSERT_EQ(queue_.FillBatch(1000), 2u);
  EXPECT_EQ(queue_.batch_sequences()[0], 99999u);
  EXPECT_EQ(queue_.batch_sequences()[1], 100000u);
}

// The front entry (a lone timer due no later than every pending one, kept out of the
// heap): a ping-pong with long timers pending takes and adds there; an earlier add moves
// it into the heap; a re-insert at its instant ties with it; cancelling it (lone, or the
// first of its ring) hands the place on; every step matches the ordered set.
TEST_F(TimerQueueModelTest, TheFrontEntryKeepsTheOrderOfAnOrderedSet) {
  Add(1000000);  // Long timers (retransmission, keepalive) behind the traffic.
  Add(2000000);
  int64_t now_ns = 0;
  for (int round = 0; round < 50; ++round) {
    Add(now_ns + 100);  // The packet in flight: the front.
    ASSERT_NO_FATAL_FAILURE(Check());
    EXPECT_EQ(queue_.TakeLoneDue(now_ns + 99), TimerQueue::kNowhere);  // Not due yet.
    now_ns += 100;
    const TimerSlotId taken = queue_.TakeLoneDue(now_ns);
    ASSERT_EQ(taken, model_.pending.begin()->second);
    model_.pending.erase(model_.pending.begin());
    ForgetLive(taken);
    queue_.Release(taken);
    ASSERT_NO_FATAL_FAILURE(Check());
  }
  // An add earlier than the front: the front goes to the heap, both come out in order.
  Add(now_ns + 50);
  Add(now_ns + 20);
  ASSERT_NO_FATAL_FAILURE(Check());
  // A re-insert of a taken timer at the front's instant, with an older sequence: a tie
  // with the front, gathered by the batch in sequence order.
  now_ns += 20;
  const TimerSlotId first = queue_.TakeLoneDue(now_ns);
  ASSERT_EQ(first, model_.pending.begin()->second);
  model_.pending.erase(model_.pending.begin());
  ForgetLive(first);
  Add(now_ns + 30);  // The front now (earlier than the heap's root? equal: now + 50 is 30 on).
  queue_.Reinsert(first, now_ns + 30);
  model_.pending.emplace(std::make_pair(now_ns + 30, queue_.slot(first).sequence), first);
  live_.push_back(queue_.IdOf(first));
  ASSERT_NO_FATAL_FAILURE(Check());
  EXPECT_EQ(queue_.TakeLoneDue(now_ns + 30), TimerQueue::kNowhere);  // A tie: three due.
  // Cancel the front's first timer, then the whole front ring.
  Add(now_ns + 5);
  Add(now_ns + 5);
  Add(now_ns + 5);
  ASSERT_NO_FATAL_FAILURE(Check());
  for (int i = 0; i < 3; ++i) {
    const TimerSlotId front = model_.pending.begin()->second;
    const uint64_t id = queue_.IdOf(front);
    EraseFromModel(front);
    ForgetLive(front);
    ASSERT_TRUE(queue_.Cancel(id));
    ASSERT_NO_FATAL_FAILURE(Check());
  }
  // Drain in order.
  while (!queue_.empty()) {
    ASSERT_NO_FATAL_FAILURE(FillBatchOnBoth(INT64_MAX));
    ASSERT_NO_FATAL_FAILURE(Check());
    const TimerSlotId taken = queue_.TakeFromBatch(0);
    ASSERT_EQ(taken, model_.batch[0]);
    RemoveFromModelBatch(0);
    queue_.Release(taken);
  }
}

}  // namespace
}  // namespace dsim::internal
