// Misuse detected while a simulation runs fails that run, not the process.
//
//   if (!DSIM_RUN_MISUSE(holder_ == self, holder_, self, "task \"", name, "\" unlocked ...")) {
//     return;  // The run has failed; skip the operation.
//   }
//
// Inside a run (a task, a timer callback or the run loop of an active Run on this thread)
// the run stops with RunOutcome::kMisuse, naming the message and the involved tasks (up
// to two task ids, kNoTask for none), and the macro yields false so the caller skips
// the operation. If the caller is a task, it is parked first: it gives up the CPU and
// runs again only to be unwound when the scheduler shuts down, so it does not go on
// past the misuse. Outside a run (no simulation on this thread, or between runs) it is
// DSIM_MISUSE: a clear message and an abort. While the scheduler unwinds its tasks at
// shutdown the run has already ended and returned its result, so a misuse there is
// printed to stderr (`dsim: misuse during teardown (ignored): ...`) and the operation is
// skipped.
#ifndef DSIM_SCHEDULER_INTERNAL_MISUSE_H_
#define DSIM_SCHEDULER_INTERNAL_MISUSE_H_

#include <string>

#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"
#include "scheduler/strategy.h"

namespace dsim::internal {

// Returns false (the run has failed) or does not return (outside a run).
bool RunMisuseFailed(const char* file, int line, TaskId first, TaskId second,
                     const std::string& message);

}  // namespace dsim::internal

#define DSIM_RUN_MISUSE(cond, first_task, second_task, ...)                                \
  (ABSL_PREDICT_TRUE(cond) ||                                                             \
   [&]() __attribute__((noinline, cold)) {                                                \
     return ::dsim::internal::RunMisuseFailed(__FILE__, __LINE__, (first_task), (second_task), \
                                              ::absl::StrCat(__VA_ARGS__));               \
   }())

#endif  // DSIM_SCHEDULER_INTERNAL_MISUSE_H_
