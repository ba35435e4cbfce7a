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

// Thrown into a killed task (crash, scheduler destruction) so its destructors run.
// Deliberately not derived from std::exception: `catch (const std::exception&)` in user
// code does not swallow it. Code that catches (...) and does not rethrow is unwound
// again at its next scheduling point.
struct TaskUnwind {};

enum class TaskState : uint8_t {
  kCreated,   // Spawned, runnable, never run.
  kRunnable,  // In the run queue (or parked in a paused group).
  kRunning,
  kBlocked,
  kFinished,
};

struct Task {
  Fiber fiber;
  std::function<void()> body;
  std::string name;
  TaskId id = kNoTask;
  GroupId group = kNoGroup;
  TaskState state = TaskState::kCreated;
  bool daemon = false;
  bool started = false;
  bool kill_requested = false;
  // While positive, a kill is not delivered at scheduling points (see NoUnwindScope).
  uint16_t no_unwind_depth = 0;
  WakeReason wake_reason = WakeReason::kWoken;
  // Where the task is blocked, for reports.
  const char* blocked_in = nullptr;
  SourceLocation blocked_at;
  TimerId wake_timer = kNoTimer;  // Deadline of the current block, if any.
  uint32_t runnable_index = UINT32_MAX;
  Task* live_prev = nullptr;
  Task* live_next = nullptr;
  WaitQueue joiners;
};

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_TASK_H_
