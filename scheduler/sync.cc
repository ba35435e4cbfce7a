// Notification, Semaphore and WaitGroup: small primitives on internal::WaitQueue.
#include "scheduler/internal/check.h"
#include "scheduler/internal/misuse.h"
#include "scheduler/notification.h"
#include "scheduler/scheduler.h"
#include "scheduler/semaphore.h"
#include "scheduler/wait_group.h"

namespace dsim {
namespace {

Scheduler& TaskSchedulerOrDie(const char* operation) {
  Scheduler* scheduler = Scheduler::Current();
  DSIM_MISUSE(scheduler != nullptr && scheduler->InTask(), operation,
              " was called outside a task; blocking is only allowed inside tasks spawned on "
              "a dsim::Scheduler");
  return *scheduler;
}

TaskId CurrentTaskIdOrNone() {
  Scheduler* scheduler = Scheduler::Current();
  return scheduler != nullptr ? scheduler->CurrentTaskId() : kNoTask;
}

// How a wait's end is given: an absolute deadline on the host's wall clock (it follows
// clock steps), or a timeout on the host's clock (it does not).
struct WaitEnd {
  absl::Time deadline = absl::InfiniteFuture();
  absl::Duration timeout = absl::InfiniteDuration();

  absl::Time TrueDeadline(Scheduler& scheduler) const {
    if (timeout != absl::InfiniteDuration()) return scheduler.TrueDeadlineAfterLocal(timeout);
    return scheduler.TrueTimeOfRealtimeDeadline(deadline);
  }
};

WaitEnd Until(absl::Time deadline) { return WaitEnd{deadline, absl::InfiniteDuration()}; }
WaitEnd After(absl::Duration timeout) { return WaitEnd{absl::InfiniteFuture(), timeout}; }

// Blocks on `queue` until `ready()` holds or `end` passes. Returns ready().
template <typename Ready>
bool WaitUntilReady(internal::WaitQueue& queue, Ready ready, WaitEnd end, const char* what,
                    SourceLocation where) {
  Scheduler& scheduler = TaskSchedulerOrDie(what);
  // A timeout starts when the call does, before its scheduling point.
  const absl::Time start_deadline =
      end.timeout != absl::InfiniteDuration() ? end.TrueDeadline(scheduler) : absl::Time();
  scheduler.SchedulingPoint();
  // The wait queue takes true time.
  const absl::Time true_deadline =
      end.timeout != absl::InfiniteDuration() ? start_deadline : end.TrueDeadline(scheduler);
  while (!ready()) {
    if (queue.Wait(what, where, true_deadline) == WakeReason::kTimedOut) return ready();
  }
  return true;
}

}  // namespace

// ---- Notification ----------------------------------------------------------------

void Notification::Notify() {
  if (!DSIM_RUN_MISUSE(!notified_, CurrentTaskIdOrNone(), kNoTask,
                       "Notification::Notify called twice")) {
    return;
  }
  notified_ = true;
  waiters_.WakeAll();
  internal::ReleasePoint();
}

void Notification::WaitForNotification(SourceLocation where) {
  WaitUntilReady(
      waiters_, [this] { return notified_; }, Until(absl::InfiniteFuture()),
      "Notification::WaitForNotification", where);
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout, SourceLocation where) {
  return WaitUntilReady(
      waiters_, [this] { return notified_; }, After(timeout), "Notification::WaitForNotification",
      where);
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline, SourceLocation where) {
  return WaitUntilReady(
      waiters_, [this] { return notified_; }, Until(deadline), "Notification::WaitForNotification",
      where);
}

// ---- Semaphore -------------------------------------------------------------------

Semaphore::Semaphore(int64_t initial) : count_(initial) {
  if (!DSIM_RUN_MISUSE(initial >= 0, CurrentTaskIdOrNone(), kNoTask,
                       "Semaphore created with a negative count (", initial, ")")) {
    count_ = 0;
  }
}

bool Semaphore::AcquireUntil(absl::Time deadline, absl::Duration timeout,
                             SourceLocation where) {
  if (!WaitUntilReady(
          waiters_, [this] { return count_ > 0; }, WaitEnd{deadline, timeout},
          "Semaphore::Acquire", where)) {
    return false;
  }
  --count_;
  return true;
}

void Semaphore::Acquire(SourceLocation where) {
  AcquireWithDeadline(absl::InfiniteFuture(), where);
}

bool Semaphore::TryAcquire() {
  TaskSchedulerOrDie("Semaphore::TryAcquire").SchedulingPoint();
  if (count_ == 0) return false;
  --count_;
  return true;
}

bool Semaphore::AcquireWithTimeout(absl::Duration timeout, SourceLocation where) {
  return AcquireUntil(absl::InfiniteFuture(), timeout, where);
}

bool Semaphore::AcquireWithDeadline(absl::Time deadline, SourceLocation where) {
  return AcquireUntil(deadline, absl::InfiniteDuration(), where);
}

void Semaphore::Release(int64_t count) {
  if (!DSIM_RUN_MISUSE(count > 0, CurrentTaskIdOrNone(), kNoTask, "Semaphore::Release(", count,
                       "): the count must be positive")) {
    return;
  }
  count_ += count;
  for (int64_t i = 0; i < count && waiters_.WakeOne(); ++i) {
  }
  internal::ReleasePoint();
}

// ---- WaitGroup -------------------------------------------------------------------

void WaitGroup::Add(int64_t delta) {
  if (!DSIM_RUN_MISUSE(count_ + delta >= 0, CurrentTaskIdOrNone(), kNoTask,
                       "WaitGroup counter went negative (", count_, " + ", delta,
                       "): more Done() than Add()")) {
    return;
  }
  count_ += delta;
  if (count_ == 0) waiters_.WakeAll();
  internal::ReleasePoint();
}

void WaitGroup::Wait(SourceLocation where) {
  WaitUntilReady(
      waiters_, [this] { return count_ == 0; }, Until(absl::InfiniteFuture()), "WaitGroup::Wait",
      where);
}

bool WaitGroup::WaitWithTimeout(absl::Duration timeout, SourceLocation where) {
  return WaitUntilReady(
      waiters_, [this] { return count_ == 0; }, After(timeout), "WaitGroup::Wait", where);
}

}  // namespace dsim
