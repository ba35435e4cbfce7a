// Strategy: who decides every choice a simulation makes.
//
// A simulation is deterministic because every choice that would be nondeterministic in
// a real system goes through one Strategy:
//   - which runnable task runs next (kNextTask),
//   - the order of timers due at the same instant (kTimerOrder),
//   - which of several blocked waiters a Signal or Unlock wakes (kWakeOne),
//   - and every random value a model draws: packet latency, loss, faults (kValue).
// Record, replay, PCT and shrinking are all strategies (or wrappers around one), so they
// see every decision point, the set of candidates, and a stable identity for each.
//
// Example: a strategy that always runs the lowest task id (a readable baseline).
//
//   class LowestIdFirst : public dsim::Strategy {
//    public:
//     uint64_t Choose(const dsim::Decision& d) override {
//       if (d.kind == dsim::DecisionKind::kValue) return rng_.Below(d.num_options);
//       return std::min_element(d.candidates.begin(), d.candidates.end()) -
//              d.candidates.begin();
//     }
//    private:
//     dsim::Random rng_{1};
//   };
#ifndef DSIM_SCHEDULER_STRATEGY_H_
#define DSIM_SCHEDULER_STRATEGY_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "scheduler/random.h"

namespace dsim {

// Stable identity of a task within one simulation: its spawn order, from 1. The same
// program under the same schedule gives every task the same id.
using TaskId = uint64_t;
inline constexpr TaskId kNoTask = 0;

enum class DecisionKind : uint8_t {
  kNextTask = 0,     // candidates: ids of the runnable tasks.
  kTimerOrder = 1,   // candidates: sequence numbers of timers due at the same instant.
  kWakeOne = 2,      // candidates: ids of blocked waiters, in wait order (FIFO first).
  kValue = 3,        // no candidates: a value in [0, num_options); 0 means all 2^64.
};

const char* DecisionKindName(DecisionKind kind);

// One decision point. Decisions with a single option are not asked.
struct Decision {
  DecisionKind kind;
  // Index of this decision in the run (0, 1, 2, ...). Identical runs number identically.
  uint64_t index;
  // Scheduling steps taken so far (task dispatches, including ones with one candidate).
  uint64_t step;
  absl::Time now;
  // The task running when the decision is made, or kNoTask (run loop, timer callback).
  TaskId current;
  // Number of options; the answer must be below it. For kValue, 0 means 2^64.
  uint64_t num_options;
  // Identities of the options, in a canonical order; empty for kValue.
  absl::Span<const uint64_t> candidates;
  // A short label for kValue decisions ("net.latency", "fault.drop"), for schedules and
  // traces that people read. Never null.
  const char* label = "";
  // kNextTask: the running task (`current`) called Yield, so it is not among the
  // candidates: it asked to let another task run. (Strategies that also want yields
  // with a single other candidate, which ask no decision, use OnYield.)
  bool from_yield = false;
};

class Strategy {
 public:
  virtual ~Strategy() = default;

  // Returns an index in [0, num_options) (any 64-bit value when num_options is 0).
  virtual uint64_t Choose(const Decision& decision) = 0;

  // A short description, e.g. "random(seed=7)", "pct(d=3,k=1200,seed=7)". Printed in
  // failure reports next to the seed.
  virtual std::string Describe() const = 0;

  // Called when a run of the scheduler ends, with the number of steps it took. Adaptive
  // strategies (PCT's step estimate) learn from it. Not called for a run that stopped at
  // SchedulerOptions::max_steps: a livelock would teach them a length far too large.
  // Default: nothing.
  virtual void OnRunEnd(uint64_t /*steps*/) {}

  // Called at every Yield of a task (before the decision, if any), when ObservesYields()
  // was true at the scheduler's construction. PCT lowers the yielding task's priority
  // here, as the published PCT evaluation does, so spin-and-yield loops make progress.
  virtual bool ObservesYields() const { return false; }
  virtual void OnYield(TaskId) {}
};

// The default: every choice is a uniform draw from a seeded PRNG.
class RandomStrategy final : public Strategy {
 public:
  explicit RandomStrategy(uint64_t seed) : seed_(seed), rng_(seed) {}

  uint64_t Choose(const Decision& decision) override;
  std::string Describe() const override;

  // Choose for a decision of `num_options` > 0 options, inline (the scheduler's hot path).
  uint64_t ChooseBelow(uint64_t num_options) { return rng_.BelowInline(num_options); }

 private:
  uint64_t seed_;
  Random rng_;
};

}  // namespace dsim

#endif  // DSIM_SCHEDULER_STRATEGY_H_
