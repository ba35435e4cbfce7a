// Mutex, MutexLock and CondVar for code running in a dsim simulation.
//
// Shaped like absl::Mutex / absl::MutexLock / absl::CondVar, so code can switch between
// real and simulated synchronization by changing a type (or a using-declaration).
//
// Example:
//
//   dsim::Mutex mu;
//   dsim::CondVar ready_cv;
//   bool ready = false;
//
//   // consumer task
//   {
//     dsim::MutexLock lock(&mu);
//     while (!ready) {
//       if (ready_cv.WaitWithTimeout(&mu, absl::Seconds(1))) break;  // timed out
//     }
//   }
//   // producer task
//   {
//     dsim::MutexLock lock(&mu);
//     ready = true;
//     ready_cv.Signal();
//   }
//
// Every operation is a scheduling point: the strategy may switch tasks just before a
// Lock, TryLock or Wait and just after an Unlock or Signal, which is where real races
// happen. Blocking calls must run inside a task. Unlocking a mutex the calling task
// does not hold is a misuse error that aborts with a clear message.
//
// Wake order: Unlock and Signal wake one waiter chosen by the strategy among the oldest
// few (see internal::WaitQueue), not strictly FIFO, because real implementations do not
// promise FIFO either. A woken Lock competes again with tasks that did not wait.
#ifndef DSIM_SCHEDULER_MUTEX_H_
#define DSIM_SCHEDULER_MUTEX_H_

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/scheduler.h"
#include "scheduler/source_location.h"

namespace dsim {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  // Destroying a held mutex is a misuse error.
  ~Mutex();

  // Blocks until the calling task holds the mutex. Not reentrant: locking a mutex the
  // task already holds blocks forever, and the run reports a deadlock naming it.
  void Lock(SourceLocation where = SourceLocation::Current()) ABSL_EXCLUSIVE_LOCK_FUNCTION();
  // Releases the mutex. The calling task must hold it.
  void Unlock() ABSL_UNLOCK_FUNCTION();
  // Takes the mutex if it is free; never blocks. Returns whether it did.
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true);
  // Misuse error unless the calling task holds the mutex.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK();
  // The task holding the mutex, or kNoTask.
  TaskId holder() const { return holder_; }

 private:
  friend class CondVar;
  // Release without a scheduling point (CondVar::Wait releases and blocks atomically).
  void ReleaseForWait();

  TaskId holder_ = kNoTask;
  Scheduler* scheduler_ = nullptr;  // Of the last Lock: names the holder in reports.
  internal::WaitQueue waiters_;
  internal::WaitQueue condition_waiters_;  // Tasks in Await, woken at every release.
};

// Holds a Mutex for the lifetime of a scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu, SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock(where);
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  Mutex* const mu_;
};

class CondVar {
 public:
  CondVar() = default;
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;
  // Destroying a CondVar that tasks wait on is misuse (see "Misuse" above).
  ~CondVar();

  // Atomically releases `mu` (which the calling task must hold) and blocks until
  // signalled; reacquires `mu` before returning. Like absl::CondVar, callers re-check
  // their condition in a loop.
  void Wait(Mutex* mu, SourceLocation where = SourceLocation::Current());
  // As Wait, but also returns once `timeout` of virtual time has passed. Returns true
  // if the timeout expired without a signal (exactly at Now() + timeout).
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout,
                       SourceLocation where = SourceLocation::Current());
  // As WaitWithTimeout with an absolute deadline.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline,
                        SourceLocation where = SourceLocation::Current());

  // Wakes one waiting task, if any (the strategy picks which). May also be called from
  // a timer callback.
  void Signal();
  // Wakes every waiting task.
  void SignalAll();

 private:
  internal::WaitQueue waiters_;
};

}  // namespace dsim

#endif  // DSIM_SCHEDULER_MUTEX_H_
