// Strategies beyond the seeded random default, and a factory that builds one from a
// short spec string, as DSIM_STRATEGY and SimulationOptions accept.
//
// Example:
//
//   absl::StatusOr<std::shared_ptr<dsim::Strategy>> strategy =
//       dsim::MakeStrategy("pct:3", /*seed=*/7);
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 7, .strategy = *strategy});
//
// Specs:
//   "random"            RandomStrategy(seed): every choice uniform (the default).
//   "roundrobin"        RoundRobinStrategy: tasks take turns in id order; values from seed.
//   "pct"               PctStrategy, depth 3, step estimate learned from earlier runs.
//   "pct:<d>"           PctStrategy for bugs of depth d (1 <= d <= 16).
//   "pct:<d>:k=<steps>" ... with a fixed estimate of the choice points per run.
//   "replay:<path>"     ReplayStrategy of the schedule file at <path> (schedule.h); the
//                       seed is ignored.
//   "guided:<path>"     GuidedReplayStrategy (schedule.h): the schedule at <path> where
//                       it still fits the program, RandomStrategy(seed) where it does not.
#ifndef DSIM_SCHEDULER_STRATEGIES_H_
#define DSIM_SCHEDULER_STRATEGIES_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/random.h"
#include "scheduler/strategy.h"

namespace dsim {

// Runs the runnable task whose id follows the last one dispatched, cyclically; wakes
// the oldest waiter; fires simultaneous timers in creation order. Values (kValue) come
// from a seeded PRNG, so network models still vary with the seed. A readable baseline.
class RoundRobinStrategy final : public Strategy {
 public:
  explicit RoundRobinStrategy(uint64_t seed) : seed_(seed), rng_(seed) {}

  uint64_t Choose(const Decision& decision) override;
  std::string Describe() const override;

 private:
  uint64_t seed_;
  Random rng_;
  TaskId last_ = kNoTask;
};

struct PctOptions {
  // d: the depth of the bugs aimed at, i.e. how many ordering constraints between tasks
  // must hold for the bug to show. d-1 priority change points are placed per run.
  int depth = 3;
  // k: the number of choice points (kNextTask decisions) a run is expected to make. The
  // change points are spread uniformly over [1, k]. 0 learns it: the largest count seen
  // in earlier runs of this strategy object, or kDefaultSteps before the first run ends.
  uint64_t steps = 0;

  static constexpr uint64_t kDefaultSteps = 64;
  static constexpr int kMaxDepth = 16;
};

// Probabilistic Concurrency Testing (Burckhardt, Kothari, Musuvathi, Nagarakatte,
// ASPLOS 2010). Each task gets a random priority when the strategy first sees it; the
// highest-priority runnable task always runs. At each of d-1 change points, chosen
// uniformly among the first k choice points of the run, the task that just ran drops
// below every initial priority (to priority i for the i-th point drawn). For a program
// with n tasks and at most k choice points per run, one run finds a given bug of depth d
// with probability at least 1/(n * k^(d-1)).
//
// Steps here are choice points: scheduling steps where more than one task is runnable.
// A step with one runnable task cannot order anything, so counting only choice points
// keeps k small and the bound high.
//
// Several runs. One object may drive many simulations in turn. A new simulation is
// recognised by its decision index starting again at 0; it gets fresh priorities and
// change points from the object's stream, and k (when learned) grows to the longest run
// seen. Wakes (kWakeOne) go to the highest-priority waiter; timer order and values
// (kValue) are uniform draws from the seeded stream.
class PctStrategy final : public Strategy {
 public:
  PctStrategy(uint64_t seed, PctOptions options);

  uint64_t Choose(const Decision& decision) override;
  std::string Describe() const override;
  void OnRunEnd(uint64_t steps) override;
  // A yielding task drops below every task that has not yielded or been lowered at a
  // change point (and below earlier yielders): it asked to let others run, and keeping
  // its priority would let a spin-and-yield loop starve the task it waits for.
  bool ObservesYields() const override { return true; }
  void OnYield(TaskId task) override;

  // The k the current (or next) run spreads its change points over.
  uint64_t steps_estimate() const;
  int depth() const { return options_.depth; }
  // The most choice points one simulation of this object made so far (runs that stopped
  // at the step limit excluded); 0 before any.
  uint64_t learned_steps() const { return learned_steps_; }
  // Whether k is fixed (by the spec's k= or by calibration) rather than learned.
  bool steps_fixed() const { return options_.steps != 0; }
  // Fixes k as a sweep calibrated it (CalibratePctSteps); Describe() says "calibrated".
  void SetCalibratedSteps(uint64_t steps);

 private:
  void StartSimulation();
  uint64_t& PriorityOf(TaskId task);
  size_t HighestPriority(absl::Span<const uint64_t> candidates);

  uint64_t seed_;
  PctOptions options_;
  Random rng_;
  uint64_t learned_steps_ = 0;  // Most choice points seen in one simulation so far.
  bool calibrated_ = false;
  uint64_t yield_floor_ = 0;  // The next priority a yielding task gets (decreasing).

  // Per simulation.
  bool started_ = false;
  uint64_t last_index_ = 0;
  uint64_t choice_points_ = 0;
  uint64_t run_steps_estimate_ = 0;
  TaskId last_chosen_ = kNoTask;
  // priorities_[id]: 0 = not seen yet. Task ids are dense (spawn order), so a vector.
  std::vector<uint64_t> priorities_;
  // change_points_[i] is the choice point (1-based) that lowers a task to priority i+1.
  std::vector<uint64_t> change_points_;
};

// PCT's k for a whole seed sweep. Built per seed, a PctStrategy without a fixed k would
// use kDefaultSteps (64) for every program, although real runs make from a handful to
// thousands of choice points, so most change points would fall after the run ended.
// A sweep calibrates k once instead: it runs `runs` calibration simulations (seeds 1 to
// `runs`, whatever seeds the sweep itself runs) under PCT of `depth` with the default k
// and takes the most choice points any of them made; runs that stopped at the step
// limit do not count. Every seed of the sweep then uses that k (SetCalibratedSteps).
// Calibrating from fixed seeds, not from the sweep's earlier seeds, keeps every seed
// reproducible alone: in any shard, with any DSIM_JOBS, and under DSIM_SEED=n.
// `run_one` runs one simulation of the given seed under the given strategy. Returns 0
// when no calibration run counted (the caller keeps the default).
uint64_t CalibratePctSteps(int depth, int runs,
                           const std::function<void(std::shared_ptr<Strategy>, uint64_t seed)>&
                               run_one);

// The calibration runs a sweep makes for a PCT spec without k=.
inline constexpr int kPctCalibrationRuns = 4;

// Builds a strategy from a spec (see the list above). An unknown or malformed spec is
// an InvalidArgument error that lists the valid forms; an unreadable replay file is the
// error that loading it gave.
absl::StatusOr<std::shared_ptr<Strategy>> MakeStrategy(absl::string_view spec, uint64_t seed);

}  // namespace dsim

#endif  // DSIM_SCHEDULER_STRATEGIES_H_
