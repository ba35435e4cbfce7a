#include "scheduler/mutex.h"

#include <exception>

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

// Reacquires the mutex however a wait ends, a kill included, so the caller's
// MutexLock stays balanced.
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

struct Mutex::Awaiter {
  const Condition* condition = nullptr;
  TaskId task = kNoTask;
  Mutex* mu = nullptr;  // Null once unlinked.
  Awaiter* prev = nullptr;
  Awaiter* next = nullptr;
  internal::WaitQueue queue;
};

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
                       Destroyer(), " while ", TaskName(waiters_.FirstWaiter(), scheduler),
                       " waits to lock it")) {
    waiters_.AbandonWaiters();
  }
  if (awaiters_ != nullptr &&
      !DSIM_RUN_MISUSE(false, self, awaiters_->task, "a Mutex was destroyed by ", Destroyer(),
                       " while ", TaskName(awaiters_->task, scheduler),
                       " waits in Mutex::Await on it")) {
    while (awaiters_ != nullptr) Unlink(awaiters_);
  }
}

CondVar::~CondVar() {
  Scheduler* scheduler = Scheduler::Current();
  const TaskId self = scheduler != nullptr ? scheduler->CurrentTaskId() : kNoTask;
  if (!waiters_.empty() &&
      !DSIM_RUN_MISUSE(false, self, waiters_.FirstWaiter(), "a CondVar was destroyed by ",
                       Destroyer(), " while ", TaskName(waiters_.FirstWaiter(), scheduler),
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

bool Mutex::SkipRelockWhileStopping() {
  // Cheapest tests first: every CondVar wait that returns passes here.
  if (holder_ == kNoTask || relock_skipped_by_ != kNoTask) return false;
  if (std::uncaught_exceptions() == 0) return false;  // Not unwinding: relock as usual.
  Scheduler& scheduler = RunningScheduler("CondVar::Wait");
  if (!scheduler.CurrentTaskIsBeingStopped()) return false;
  relock_skipped_by_ = scheduler.CurrentTaskId();
  return true;
}

void Mutex::Unlock() {
  Scheduler& scheduler = RunningScheduler("Mutex::Unlock");
  const TaskId self = scheduler.CurrentTaskId();
  if (relock_skipped_by_ == self && holder_ != self) {
    relock_skipped_by_ = kNoTask;  // The unlock that balances a skipped relock.
    return;
  }
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
  if (awaiters_ != nullptr) WakeAwaiters();
}

void Mutex::WakeAwaiters() {
  for (Awaiter* a = awaiters_; a != nullptr; a = a->next) {
    if (a->condition->Eval()) a->queue.WakeAll();
  }
}

void Mutex::Unlink(Awaiter* awaiter) {
  if (awaiter->mu == nullptr) return;
  (awaiter->prev ? awaiter->prev->next : awaiters_) = awaiter->next;
  if (awaiter->next) awaiter->next->prev = awaiter->prev;
  awaiter->mu = nullptr;
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

bool Mutex::AwaitWithDeadline(const Condition& condition, absl::Time deadline,
                              SourceLocation where) {
  Scheduler& scheduler = RunningScheduler("Mutex::Await");
  // `deadline` is on the host's wall clock; the wait queue takes true time.
  return AwaitUntilTrue(condition, scheduler.TrueTimeOfRealtimeDeadline(deadline), where);
}

bool Mutex::AwaitUntilTrue(const Condition& condition, absl::Time true_deadline,
                           SourceLocation where) {
  Scheduler& scheduler = RunningScheduler("Mutex::Await");
  if (!DSIM_RUN_MISUSE(holder_ == scheduler.CurrentTaskId(), scheduler.CurrentTaskId(),
                       holder_, "task \"", scheduler.CurrentTaskName(),
                       "\" called Mutex::Await without holding the mutex")) {
    return false;
  }
  while (!condition.Eval()) {
    // Past the deadline: give up holding the mutex, as absl::Mutex does, rather than
    // release it for a wait that would time out at once.
    if (scheduler.DeadlinePassed(true_deadline)) return false;
    // Enqueued and released with no scheduling point in between: no release is missed.
    Awaiter awaiter;
    awaiter.condition = &condition;
    awaiter.task = scheduler.CurrentTaskId();
    awaiter.mu = this;
    awaiter.next = awaiters_;
    if (awaiters_ != nullptr) awaiters_->prev = &awaiter;
    awaiters_ = &awaiter;
    ReleaseForWait();  // May wake the others, never this one: it is not blocked yet.
    WakeReason reason;
    {
      struct UnlinkOnExit {
        Mutex* mu;
        Awaiter* awaiter;
        ~UnlinkOnExit() {
          if (awaiter->mu != nullptr) mu->Unlink(awaiter);
        }
      } unlink{this, &awaiter};
      RelockOnExit relock(this, where);
      reason = awaiter.queue.Wait("Mutex::Await", where, true_deadline);
    }
    if (reason == WakeReason::kTimedOut) return condition.Eval();
  }
  return true;
}

void Mutex::Await(const Condition& condition, SourceLocation where) {
  AwaitWithDeadline(condition, absl::InfiniteFuture(), where);
}

bool Mutex::AwaitWithTimeout(const Condition& condition, absl::Duration timeout,
                             SourceLocation where) {
  return AwaitUntilTrue(condition, RunningScheduler("Mutex::Await").TrueDeadlineAfterLocal(timeout),
                        where);
}

void Mutex::LockWhen(const Condition& condition, SourceLocation where) {
  Lock(where);
  Await(condition, where);
}

bool Mutex::LockWhenWithTimeout(const Condition& condition, absl::Duration timeout,
                                SourceLocation where) {
  // The timeout runs from the call, the wait for the lock included.
  const absl::Time true_deadline =
      RunningScheduler("Mutex::LockWhen").TrueDeadlineAfterLocal(timeout);
  Lock(where);
  return AwaitUntilTrue(condition, true_deadline, where);
}

bool Mutex::LockWhenWithDeadline(const Condition& condition, absl::Time deadline,
                                 SourceLocation where) {
  const absl::Time true_deadline =
      RunningScheduler("Mutex::LockWhen").TrueTimeOfRealtimeDeadline(deadline);
  Lock(where);
  return AwaitUntilTrue(condition, true_deadline, where);
}

void ReleasableMutexLock::Release() {
  Scheduler* scheduler = Scheduler::Current();
  if (!DSIM_RUN_MISUSE(mu_ != nullptr, scheduler ? scheduler->CurrentTaskId() : kNoTask,
                       kNoTask, "ReleasableMutexLock::Release called twice")) {
    return;
  }
  Mutex* mu = mu_;
  mu_ = nullptr;
  mu->Unlock();
}

void CondVar::Wait(Mutex* mu, SourceLocation where) {
  WaitWithDeadline(mu, absl::InfiniteFuture(), where);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout, SourceLocation where) {
  Scheduler& scheduler = RunningScheduler("CondVar::WaitWithTimeout");
  return WaitUntilTrue(mu, scheduler.TrueDeadlineAfterLocal(timeout), false, where);
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline, SourceLocation where) {
  return WaitUntilTrue(mu, deadline, true, where);
}

bool CondVar::WaitUntilTrue(Mutex* mu, absl::Time deadline, bool wall, SourceLocation where) {
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
  // CondVar::Wait always returns holding the mutex, a kill included. One exception: a
  // task being stopped whose mutex another task holds does not wait for it. The holder
  // may be its parent, which unwinds only after its children (teardown order), so the
  // wait would never end; the stopping task's own Unlock of that mutex is then skipped.
  struct Relock {
    Mutex* mu;
    SourceLocation where;
    ~Relock() {
      Scheduler::NoUnwindScope no_unwind;
      if (mu->SkipRelockWhileStopping()) return;
      mu->Lock(where);
    }
  };
  WakeReason reason;
  {
    Relock relock{mu, where};
    // A wall-clock deadline is converted after the scheduling point, as the wait starts.
    const absl::Time true_deadline =
        wall ? scheduler.TrueTimeOfRealtimeDeadline(deadline) : deadline;
    reason = waiters_.Wait("CondVar::Wait", where, true_deadline);
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
