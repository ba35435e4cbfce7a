// SharedAccess: an opt-in scheduling point at a plain shared-memory access.
//
// Blocking calls and synchronization operations are scheduling points already. Many
// real races (atomicity violations, order violations, check-then-act) happen between
// two plain reads and writes with no lock in sight, and a scheduler that switches only
// at lock operations never shows them. Mark those accesses:
//
// Example:
//
//   int balance = 100;                        // shared by two tasks, no lock
//   // in each task:
//   DSIM_SHARED_ACCESS("balance");            // the strategy may switch tasks here
//   const int seen = balance;
//   DSIM_SHARED_ACCESS("balance");
//   balance = seen - 10;                      // a lost update when the tasks interleave
//
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.shared_access_points = true});
//
// Off by default (SchedulerOptions::shared_access_points): then a marker costs one
// thread-local read and a branch, and it is nothing at all outside a simulation, so
// markers can stay in production code. When on, a marker in a task is a
// Scheduler::SchedulingPoint (the strategy may switch, or let the task go on), and
// listeners get an Annotation {category "sched.access", detail "balance at kv.cc:88"}
// so traces and shrunk schedules can say where each task was switched out. A marker
// outside a task (the main thread, a timer callback) is never a scheduling point.
#ifndef DSIM_SCHEDULER_SHARED_ACCESS_H_
#define DSIM_SCHEDULER_SHARED_ACCESS_H_

#include "scheduler/scheduler.h"
#include "scheduler/source_location.h"

namespace dsim {

namespace internal {
// The slow path: an enabled marker. Annotates for listeners, then yields.
void SharedAccessPoint(Scheduler& scheduler, const char* what, SourceLocation where);
}  // namespace internal

// A possible switch point before a plain access to memory other tasks use. `what`
// names the data ("balance", "queue.head"); it must outlive the call (a literal).
inline void SharedAccess(const char* what = "shared access",
                         SourceLocation where = SourceLocation::Current()) {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler != nullptr && scheduler->shared_access_points()) {
    internal::SharedAccessPoint(*scheduler, what, where);
  }
}

}  // namespace dsim

// The same as dsim::SharedAccess(what), as a statement that reads as a marker.
#define DSIM_SHARED_ACCESS(what) ::dsim::SharedAccess(what)

#endif  // DSIM_SCHEDULER_SHARED_ACCESS_H_
