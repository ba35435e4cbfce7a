// Task: the scheduler's record of one fiber-backed task.
#ifndef DSIM_SCHEDULER_INTERNAL_TASK_H_
#define DSIM_SCHEDULER_INTERNAL_TASK_H_

#include <cstdint>
#include <functional>
#include <string>

#include "scheduler/internal/fiber.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/scheduler.h"

namespace dsim::internal {

// Thrown into a killed task (crash, scheduler destruction) so its destructors run; the
// public name is dsim::TaskUnwind (scheduler.h), which documents it.
using TaskUnwind = ::dsim::TaskUnwind;

// The Itanium C++ ABI's per-thread exception state (__cxa_eh_globals): the stack of
// caught exceptions and the count of uncaught ones. It is per OS thread, so the
// scheduler keeps it per task (see Scheduler::SwitchAway).
struct ExceptionState {
  void* caught_exceptions = nullptr;
  unsigned int uncaught_exceptions = 0;

  bool empty() const { return caught_exceptions == nullptr && uncaught_exceptions == 0; }
};

enum class TaskState : uint8_t {
  kCreated,   // Spawned, runnable, never run.
  kRunnable,  // In the run queue (or parked in a paused group).
  kRunning,
  kBlocked,
  kFinished,
};

struct Task {
  Fiber fiber;
  TaskBody body;
  std::string name;
  TaskId id = kNoTask;
  GroupId group = kNoGroup;
  TaskState state = TaskState::kCreated;
  bool daemon = false;
  bool started = false;
  bool kill_requested = false;
  bool unwind_thrown = false;  // A TaskUnwind was thrown into it (see DeliverKill).
  bool swallow_reported = false;  // It swallowed one, and that was reported.
  // The task that spawned it (kNoTask from outside a task), and how many tasks it
  // spawned are still alive: a dying task unwinds only after its dying children.
  TaskId parent = kNoTask;
  uint32_t live_children = 0;
  bool waiting_for_children = false;
  // While positive, a kill is not delivered at scheduling points (see NoUnwindScope).
  uint16_t no_unwind_depth = 0;
  WakeReason wake_reason = WakeReason::kWoken;
  // Where the task is blocked, for reports.
  const char* blocked_in = nullptr;
  SourceLocation blocked_at;
  TimerId wake_timer = kNoTimer;  // Deadline of the current block, if any.
  // The last absolute CLOCK_REALTIME deadline the task converted
  // (Scheduler::TrueTimeOfRealtimeDeadline): a block whose true deadline is
  // `realtime_key_ns` follows steps of the host's clock to `realtime_wall`.
  int64_t realtime_key_ns = -1;
  absl::Time realtime_wall;
  bool realtime_blocked = false;  // The current block follows `realtime_wall`.
  uint32_t runnable_index = UINT32_MAX;
  Task* live_prev = nullptr;
  Task* live_next = nullptr;
  WaitQueue joiners;
  // This task's exception state while it is switched out, when it had one (rare: it
  // blocked in a destructor during unwinding, or inside a catch block).
  ExceptionState saved_exceptions;
  bool has_saved_exceptions = false;
};

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_TASK_H_
