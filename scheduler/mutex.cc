#include "scheduler/mutex.h"

#include "scheduler/internal/check.h"
#include "scheduler/internal/misuse.h"

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

namespace {

std::string TaskName(TaskId id, const Scheduler* scheduler) {
  if (id == kNoTask) return "(none)";
  if (scheduler != nullptr) {
    for (const TaskReport& report : scheduler->LiveTaskReports()) {
      if (report.id == id) return absl::StrCat("task \"", report.name, "\"");
    }
  }
  return absl::StrCat("task ", id, " (finished)");
}

std::string Destroyer() {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr || !scheduler->InTask()) return "the main thread";
  return absl::StrCat("task \"", scheduler->CurrentTaskName(), "\"");
}

}  // namespace

Mutex::~Mutex() {
  Scheduler* scheduler = Scheduler::Current();
  const TaskId self = scheduler != nullptr ? scheduler->CurrentTaskId() : kNoTask;
  if (!DSIM_RUN_MISUSE(holder_ == kNoTask, self, holder_, "a Mutex was destroyed by ",
                       Destroyer(), " while ", holder_ == self ? "it" : TaskName(holder_, scheduler_),
                       " holds it. Objects that tasks use must outlive the tasks: declare "
                       "them before the Scheduler, or call Scheduler::Shutdown() before "
                       "destroying them")) {
    holder_ = kNoTask;
  }
  if (!waiters_.empty() &&
      !DSIM_RUN_MISUSE(false, self, waiters_.FirstWaiter(), "a Mutex was destroyed by ",
                       Destroyer(), " while task ", waiters_.FirstWaiter(),
                       " waits to lock it")) {
    waiters_.AbandonWaiters();
  }
  if (!condition_waiters_.empty() &&
      !DSIM_RUN_MISUSE(false, self, condition_waiters_.FirstWaiter(), "a Mutex was destroyed by ",
                       Destroyer(), " while task ", condition_waiters_.FirstWaiter(),
                       " waits in Mutex::Await on it")) {
    condition_waiters_.AbandonWaiters();
  }
}

CondVar::~CondVar() {
  Scheduler* scheduler = Scheduler::Current();
  const TaskId self = scheduler != nullptr ? scheduler->CurrentTaskId() : kNoTask;
  if (!waiters_.empty() &&
      !DSIM_RUN_MISUSE(false, self, waiters_.FirstWaiter(), "a CondVar was destroyed by ",
                       Destroyer(), " while task ", waiters_.FirstWaiter(),
                       " waits on it. Objects that tasks use must outlive the tasks")) {
    waiters_.AbandonWaiters();
  }
}

void Mutex::Lock(SourceLocation where) {
  Scheduler& scheduler = RunningScheduler("Mutex::Lock");
  scheduler.SchedulingPoint();
  const TaskId self = scheduler.CurrentTaskId();
  while (holder_ != kNoTask) waiters_.Wait("Mutex::Lock", where);
  holder_ = self;
  scheduler_ = &scheduler;
}

void Mutex::Unlock() {
  Scheduler& scheduler = RunningScheduler("Mutex::Unlock");
  const TaskId self = scheduler.CurrentTaskId();
  if (!DSIM_RUN_MISUSE(holder_ == self, self, holder_, "task \"", scheduler.CurrentTaskName(),
                       "\" unlocked a Mutex it does not hold (",
                       holder_ == kNoTask ? std::string("it is not locked")
                                          : absl::StrCat("held by task ", holder_),
                       ")")) {
    return;
  }
  ReleaseForWait();
  internal::ReleasePoint();
}

void Mutex::ReleaseForWait() {
  holder_ = kNoTask;
  waiters_.WakeOne();
  // Await conditions may hold now: every awaiting task re-checks its own.
  if (!condition_waiters_.empty()) condition_waiters_.WakeAll();
}

bool Mutex::TryLock() {
  Scheduler& scheduler = RunningScheduler("Mutex::TryLock");
  scheduler.SchedulingPoint();
  if (holder_ != kNoTask) return false;
  holder_ = scheduler.CurrentTaskId();
  scheduler_ = &scheduler;
  return true;
}

void Mutex::AssertHeld() const {
  Scheduler* scheduler = Scheduler::Current();
  const TaskId self = scheduler != nullptr ? scheduler->CurrentTaskId() : kNoTask;
  DSIM_RUN_MISUSE(holder_ != kNoTask && holder_ == self, self, holder_,
                  "Mutex::AssertHeld: the calling task does not hold the mutex (",
                  holder_ == kNoTask ? std::string("it is not locked")
                                     : absl::StrCat("held by task ", holder_),
                  ")");
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
  if (!DSIM_RUN_MISUSE(mu->holder_ == scheduler.CurrentTaskId(), scheduler.CurrentTaskId(),
                       mu->holder_, "task \"", scheduler.CurrentTaskName(),
                       "\" called CondVar::Wait without holding the mutex")) {
    return false;
  }
  scheduler.SchedulingPoint();
  // Releasing and enqueueing happen with no scheduling point in between, so no signal
  // can be lost.
  mu->ReleaseForWait();
  WakeReason reason;
  {
    RelockOnExit relock(mu, where);
    reason = waiters_.Wait("CondVar::Wait", where, deadline);
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
