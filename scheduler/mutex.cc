#include "scheduler/mutex.h"

#include "scheduler/internal/check.h"

namespace dsim {
namespace {

Scheduler& RunningScheduler(const char* operation) {
  Scheduler* scheduler = Scheduler::Current();
  DSIM_MISUSE(scheduler != nullptr && scheduler->InTask(), operation,
              " was called outside a task; dsim primitives are only usable inside tasks "
              "spawned on a dsim::Scheduler");
  return *scheduler;
}

// A scheduling point when called from a task; nothing from a timer callback.
void YieldIfInTask() {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler != nullptr && scheduler->InTask()) scheduler->SchedulingPoint();
}

}  // namespace

Mutex::~Mutex() {
  DSIM_MISUSE(holder_ == kNoTask, "a Mutex was destroyed while task ", holder_,
              " holds it. Objects that tasks use must outlive the tasks: declare them before "
              "the Scheduler, or call Scheduler::Shutdown() before destroying them");
}

void Mutex::Lock(SourceLocation where) {
  Scheduler& scheduler = RunningScheduler("Mutex::Lock");
  scheduler.SchedulingPoint();
  const TaskId self = scheduler.CurrentTaskId();
  while (holder_ != kNoTask) waiters_.Wait("Mutex::Lock", where);
  holder_ = self;
}

void Mutex::Unlock() {
  Scheduler& scheduler = RunningScheduler("Mutex::Unlock");
  DSIM_MISUSE(holder_ == scheduler.CurrentTaskId(), "task \"", scheduler.CurrentTaskName(),
              "\" unlocked a Mutex it does not hold (",
              holder_ == kNoTask ? std::string("it is not locked")
                                 : absl::StrCat("held by task ", holder_),
              ")");
  ReleaseForWait();
  scheduler.SchedulingPoint();
}

void Mutex::ReleaseForWait() {
  holder_ = kNoTask;
  waiters_.WakeOne();
}

bool Mutex::TryLock() {
  Scheduler& scheduler = RunningScheduler("Mutex::TryLock");
  scheduler.SchedulingPoint();
  if (holder_ != kNoTask) return false;
  holder_ = scheduler.CurrentTaskId();
  return true;
}

void Mutex::AssertHeld() const {
  Scheduler* scheduler = Scheduler::Current();
  DSIM_MISUSE(scheduler != nullptr && holder_ != kNoTask && holder_ == scheduler->CurrentTaskId(),
              "Mutex::AssertHeld: the calling task does not hold the mutex");
}

void CondVar::Wait(Mutex* mu, SourceLocation where) {
  WaitWithDeadline(mu, absl::InfiniteFuture(), where);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout, SourceLocation where) {
  Scheduler& scheduler = RunningScheduler("CondVar::WaitWithTimeout");
  return WaitWithDeadline(mu, scheduler.Now() + timeout, where);
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline, SourceLocation where) {
  Scheduler& scheduler = RunningScheduler("CondVar::Wait");
  DSIM_MISUSE(mu->holder_ == scheduler.CurrentTaskId(), "task \"", scheduler.CurrentTaskName(),
              "\" called CondVar::Wait without holding the mutex");
  scheduler.SchedulingPoint();
  // Releasing and enqueueing happen with no scheduling point in between, so no signal
  // can be lost.
  mu->ReleaseForWait();
  const WakeReason reason = waiters_.Wait("CondVar::Wait", where, deadline);
  mu->Lock(where);
  return reason == WakeReason::kTimedOut;
}

void CondVar::Signal() {
  waiters_.WakeOne();
  YieldIfInTask();
}

void CondVar::SignalAll() {
  waiters_.WakeAll();
  YieldIfInTask();
}

}  // namespace dsim
