// A corpus of small concurrent programs with known bugs, each with a fixed twin, for
// testing and benchmarking dsim's schedule exploration.
//
// Example: does PCT with depth 2 find the lock-order deadlock within 100 schedules?
//
//   const dsim::races::RaceProgram& program = *dsim::races::FindProgram("lock_order");
//   auto pct = std::make_shared<dsim::PctStrategy>(/*seed=*/1, dsim::PctOptions{.depth = 2});
//   for (int i = 0; i < 100; ++i) {
//     dsim::races::RaceOutcome outcome = program.run(dsim::races::Variant::kBuggy, {pct});
//     if (outcome.bug) { ... found after i + 1 schedules ... }
//   }
//
// Each program runs one schedule on a fresh Scheduler with the given strategy and says
// whether the bug showed: a failed assertion in a task, a deadlock, a hang (step limit),
// or a final check on the shared state after the run. Plain shared-memory accesses are
// marked with DSIM_SHARED_ACCESS and the programs enable those points, so races between
// lock operations are visible to the scheduler. No program spins: waiting is always
// blocking, so strategies that starve a task (PCT, the shrinker's default policy) cannot
// turn a program into an endless loop.
//
// The fixed twin is the same program with the bug repaired. It must not fail under any
// strategy or schedule.
#ifndef DSIM_TESTS_RACES_RACE_CORPUS_H_
#define DSIM_TESTS_RACES_RACE_CORPUS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scheduler/scheduler.h"
#include "scheduler/shrink.h"
#include "scheduler/strategy.h"

namespace dsim::races {

enum class Variant { kBuggy, kFixed };

struct RaceRunOptions {
  std::shared_ptr<Strategy> strategy;  // Null: RandomStrategy(1).
  SchedulerListener* observer = nullptr;
  // A run longer than this is a hang, which counts as the bug showing.
  uint64_t max_steps = 20000;
};

struct RaceOutcome {
  bool bug = false;
  RunResult result;
  // Set when the run itself succeeded but the check on the final state failed.
  std::string final_check_failure;

  // What went wrong, without run-specific numbers: "deadlock", "task failed: pop from an
  // empty stack", "final check: lost update". Empty when nothing did. Shrinking keeps
  // the signature.
  std::string Signature() const;
};

struct RaceProgram {
  const char* name;     // "lock_order"
  const char* pattern;  // "lock-order deadlock"
  const char* bug;      // One line: what goes wrong.
  int tasks;            // Tasks the program spawns.
  RaceOutcome (*run)(Variant variant, const RaceRunOptions& options);
};

// Every program, in a fixed order.
const std::vector<RaceProgram>& Corpus();
// The program called `name`, or null.
const RaceProgram* FindProgram(const std::string& name);

// The predicate ShrinkSchedule needs: runs the buggy program and returns whether it
// failed with `signature`.
FailingRun SameFailure(const RaceProgram& program, std::string signature,
                       uint64_t max_steps = 20000);

}  // namespace dsim::races

#endif  // DSIM_TESTS_RACES_RACE_CORPUS_H_
