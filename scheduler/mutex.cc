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

// Reacquires a CondVar's mutex however the wait ends, a kill included: CondVar::Wait
// always returns holding the mutex, so the caller's MutexLock stays balanced.
class RelockOnExit {
 public:
  RelockOnExit(Mutex* mu, SourceLocation where) : mu_(mu), where_(where) {}
  ~RelockOnExit() {
    Scheduler::NoUnwindScope no_unwind;
    mu_->Lock(where_);
  }

 private:
  Mutex* mu_;
  SourceLocation where_;
};

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
  internal::ReleasePoint();
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
  return WaitWithDeadline(mu, scheduler.LocalNow() + timeout, where);
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline, SourceLocation where) {
  Scheduler& scheduler = RunningScheduler("CondVar::Wait");
  DSIM_MISUSE(mu->holder_ == scheduler.CurrentTaskId(), "task \"", scheduler.CurrentTaskName(),
              "\" called CondVar::Wait without holding the mutex");
  scheduler.SchedulingPoint();
  // Releasing and enqueueing happen with no scheduling point in between, so no signal
  // can be lost.
  mu->ReleaseForWait();
  WakeReason reason;
  {
    RelockOnExit relock(mu, where);
    reason = waiters_.Wait("CondVar::Wait", where, scheduler.TrueTimeOfLocal(deadline));
  }
  return reason == WakeReason::kTimedOut;
}

void CondVar::Signal() {
  waiters_.WakeOne();
  internal::ReleasePoint();
}

void CondVar::SignalAll() {
  waiters_.WakeAll();
  internal::ReleasePoint();
}

}  // namespace dsim
