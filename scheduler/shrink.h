// Shrink: turns a failing schedule into a smaller one that fails the same way, and
// writes it out as an interleaving a person can follow.
//
// A random walk that finds a race typically switches tasks at dozens of points that
// have nothing to do with the bug. Shrinking keeps the failure and drops the noise:
// fewer preemptions, fewer context switches, fewer injected faults, a shorter run.
//
// Example:
//
//   // Runs the program once; true if it failed the way we are shrinking.
//   dsim::FailingRun still_fails = [](std::shared_ptr<dsim::Strategy> strategy,
//                                     dsim::SchedulerListener* observer) {
//     Account account;                                  // state before the scheduler
//     dsim::Scheduler scheduler(dsim::SchedulerOptions{.strategy = strategy,
//                                                      .shared_access_points = true});
//     if (observer != nullptr) scheduler.AddListener(observer);
//     SpawnWorkers(scheduler, account);
//     dsim::RunResult result = scheduler.Run();
//     return result.outcome == dsim::RunOutcome::kTaskFailed &&
//            absl::StrContains(result.failure, "overdrawn");
//   };
//   absl::StatusOr<dsim::ShrinkResult> shrunk = dsim::ShrinkSchedule(failing, still_fails);
//   shrunk->shrunk.Save("min.dsched").IgnoreError();
//   std::cout << shrunk->before.preemptions << " -> " << shrunk->after.preemptions << "\n"
//             << shrunk->interleaving;
//
// Definitions (on ScheduleEntry, schedule.h):
//   - a preemption is a kNextTask decision that switches away from a task that could
//     have gone on running (the current task is among the runnable candidates);
//   - a context switch is a kNextTask decision that runs a task other than the current
//     one, preemptive or not (the current task blocked or finished);
//   - a fault is an Annotation whose category starts with "fault": the network and fault
//     models annotate every fault they apply, and only those. (A "fault.*" value drawn
//     and found below its probability applied nothing and is not counted.) Models of
//     your own should annotate the faults they apply the same way.
//
// Method. Each candidate schedule is tried by running the program under a guided
// strategy that follows the base schedule (by identity: the same task, timer or value)
// unless an edit says otherwise or the recorded choice no longer fits. Decisions find
// their base entry either by index, or by (kind, running task, how many such decisions
// that task made before), which survives edits to other tasks' decisions; every edit is
// tried under both. Where the base has nothing to say, a default policy decides: keep
// running the current task if it can run, else the lowest task id; the oldest waiter;
// the oldest timer; value 0 for a bounded choice, seeded random bits for a 64-bit draw.
// Each run is re-recorded, so the new base is what really happened. A candidate
// replaces the base when the program still fails and the cost (preemptions, faults,
// context switches, steps, decisions, non-zero values, compared in that order) is
// strictly lower, so the search always ends. Passes, repeated until none helps or the
// run budget is spent:
//   1. truncate: binary search for the shortest prefix of the base to follow;
//   2. drop preemptions: all, then halves and their complements, down to single ones
//      (delta debugging);
//   3. replace the remaining non-preemptive choices by the default one, likewise;
//   4. reset bounded values to 0, and 64-bit draws to all-zero or all-one bits.
//
// Values and faults. A schedule cannot know what a value means. So bounded choices
// shrink toward 0, and models should encode "no fault" / "the usual case" as 0 when they
// call Scheduler::ChooseValue(n, "fault.<what>"). 64-bit draws feed distributions (for
// example Bernoulli fires for small bits), so for them neither direction is simpler; the
// shrinker tries both and keeps a change only if the observed cost drops.
#ifndef DSIM_SCHEDULER_SHRINK_H_
#define DSIM_SCHEDULER_SHRINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler/schedule.h"
#include "scheduler/scheduler.h"
#include "scheduler/strategy.h"

namespace dsim {

// Runs the program under test once, on a fresh Scheduler whose strategy is `strategy`,
// with `observer` added as a listener when it is not null, and returns true if the run
// failed the way being shrunk (the same assertion, the same deadlock). It must build
// everything anew each call: the same strategy must give the same run.
using FailingRun =
    std::function<bool(std::shared_ptr<Strategy> strategy, SchedulerListener* observer)>;

struct ShrinkOptions {
  // Program runs the search may spend, the first (reproducing the failure) included.
  int max_runs = 1000;
  // Asked before every program run; true stops the search there, and the result is the
  // best schedule found so far (a wall-clock deadline, such as Bazel's TEST_TIMEOUT).
  std::function<bool(int runs)> should_stop;
  // Called each time a smaller failing schedule replaces the best one, with it, its
  // applied faults and the runs spent: save it, print progress.
  std::function<void(const Schedule& best, uint64_t faults, int runs)> on_improvement;
  // Seed of the random bits drawn for 64-bit values past the kept prefix.
  uint64_t tail_seed = 1;
};

struct ShrinkResult {
  Schedule original;  // The failing schedule as re-recorded by the first run.
  Schedule shrunk;
  ScheduleStats before;
  ScheduleStats after;
  uint64_t faults_before = 0;  // Applied (annotated) faults.
  uint64_t faults_after = 0;
  int runs = 0;               // Program runs spent.
  bool stopped = false;       // ShrinkOptions::should_stop ended the search early.
  std::string interleaving;   // The shrunk run, readable (DescribeInterleaving).
};

// Searches for a smaller schedule that still fails (see the method above). Error when
// the failing schedule does not reproduce its failure in the first place.
absl::StatusOr<ShrinkResult> ShrinkSchedule(const Schedule& failing, const FailingRun& still_fails,
                                            const ShrinkOptions& options = {});

// Replays `schedule` once under `run` and writes what happened as numbered segments:
// which task ran, for how many steps, which marked accesses and events it went through
// (with source locations), and how the segment ended (blocked in what at where,
// preempted at which access, finished). Error when the replay diverges.
absl::StatusOr<std::string> DescribeInterleaving(const Schedule& schedule, const FailingRun& run);

}  // namespace dsim

#endif  // DSIM_SCHEDULER_SHRINK_H_
