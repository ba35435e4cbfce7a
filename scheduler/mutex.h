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

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/scheduler.h"
#include "scheduler/source_location.h"

namespace dsim {

// A predicate a Mutex waits for (Mutex::Await, Mutex::LockWhen, MutexLock), shaped like
// absl::Condition. It is evaluated with the mutex held, at the wait and after every
// release of the mutex by another task, so it must read only state that mutex guards.
//
//   dsim::MutexLock lock(&mu, dsim::Condition(&ready));       // const bool*
//   mu.Await(dsim::Condition(+[](Queue* q) { return !q->empty(); }, &queue));
//   auto has_work = [&] { return !queue.empty(); };
//   mu.Await(dsim::Condition(&has_work));                     // const F*: any callable
class Condition {
 public:
  explicit Condition(const bool* flag) : eval_([flag] { return *flag; }) {}
  template <typename T>
  Condition(bool (*function)(T*), T* argument)
      : eval_([function, argument] { return function(argument); }) {}
  template <typename T>
  Condition(T* object, bool (T::*method)()) : eval_([object, method] { return (object->*method)(); }) {}
  template <typename T>
  Condition(const T* object, bool (T::*method)() const)
      : eval_([object, method] { return (object->*method)(); }) {}
  // Any callable returning bool; it must outlive the Condition (as in Abseil).
  template <typename F, typename = decltype(bool(std::declval<const F&>()()))>
  explicit Condition(const F* functor) : eval_([functor] { return (*functor)(); }) {}

  bool Eval() const { return eval_(); }

 private:
  std::function<bool()> eval_;
};

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

  // Conditional critical sections, as in absl::Mutex. Await releases the mutex (which
  // the calling task must hold) until `condition` holds, then returns holding it again.
  // The condition is re-evaluated after every release of this mutex by any task.
  void Await(const Condition& condition, SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this);
  // As Await; gives up when `timeout` of the host's clock has passed / when its wall
  // clock reads `deadline` (dsim::Now(); it follows clock steps), still holding the
  // mutex. Returns whether the condition holds. Once the deadline has passed, the mutex
  // is not released again.
  bool AwaitWithTimeout(const Condition& condition, absl::Duration timeout,
                        SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this);
  bool AwaitWithDeadline(const Condition& condition, absl::Time deadline,
                         SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(this);
  // Lock, then Await.
  void LockWhen(const Condition& condition, SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCK_FUNCTION();
  // As absl::Mutex: blocks until both the condition holds or the deadline has passed,
  // and the mutex can be acquired; returns holding it, with the condition's value. The
  // deadline counts from the call (the wait for the lock included), and a call that
  // acquires the mutex after its deadline returns without releasing it again.
  bool LockWhenWithTimeout(const Condition& condition, absl::Duration timeout,
                           SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCK_FUNCTION();
  bool LockWhenWithDeadline(const Condition& condition, absl::Time deadline,
                            SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCK_FUNCTION();
  // The task holding the mutex, or kNoTask.
  TaskId holder() const { return holder_; }

 private:
  friend class CondVar;
  // Release without a scheduling point (CondVar::Wait releases and blocks atomically).
  void ReleaseForWait();
  // Await with a true-time deadline.
  bool AwaitUntilTrue(const Condition& condition, absl::Time true_deadline, SourceLocation where);
  // For CondVar::Wait's relock while its task is being stopped; see mutex.cc.
  bool SkipRelockWhileStopping();

  TaskId holder_ = kNoTask;
  // A task being stopped that left CondVar::Wait without relocking (the mutex was held
  // by another task): its next Unlock of this mutex is skipped.
  TaskId relock_skipped_by_ = kNoTask;
  Scheduler* scheduler_ = nullptr;  // Of the last Lock: names the holder in reports.
  internal::WaitQueue waiters_;
  // Tasks in Await, each waiting on its own queue with its condition. A task that
  // releases the mutex evaluates their conditions (still in its critical section, as
  // absl::Mutex does) and wakes only those that hold, so awaiting tasks whose
  // conditions are false never wake one another.
  struct Awaiter;
  Awaiter* awaiters_ = nullptr;
  void WakeAwaiters();
  void Unlink(Awaiter* awaiter);
};

// Holds a Mutex for the lifetime of a scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu, SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock(where);
  }
  // Locks when `condition` holds (Mutex::LockWhen).
  MutexLock(Mutex* mu, const Condition& condition,
            SourceLocation where = SourceLocation::Current()) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->LockWhen(condition, where);
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }

 private:
  Mutex* const mu_;
};

// A MutexLock that can release early, as absl::ReleasableMutexLock.
class ABSL_SCOPED_LOCKABLE ReleasableMutexLock {
 public:
  explicit ReleasableMutexLock(Mutex* mu, SourceLocation where = SourceLocation::Current())
      ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock(where);
  }
  ReleasableMutexLock(const ReleasableMutexLock&) = delete;
  ReleasableMutexLock& operator=(const ReleasableMutexLock&) = delete;
  ~ReleasableMutexLock() ABSL_UNLOCK_FUNCTION() {
    if (mu_ != nullptr) mu_->Unlock();
  }
  // Unlocks now; the destructor then does nothing. Calling it twice is a misuse error.
  void Release() ABSL_UNLOCK_FUNCTION();

 private:
  Mutex* mu_;
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
  // As WaitWithTimeout with an absolute deadline on the host's wall clock (dsim::Now());
  // a step of the host's clock during the wait moves it, as CLOCK_REALTIME.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline,
                        SourceLocation where = SourceLocation::Current());

  // Wakes one waiting task, if any (the strategy picks which). May also be called from
  // a timer callback.
  void Signal();
  // Wakes every waiting task.
  void SignalAll();

 private:
  // `deadline` is true time, or the host's wall clock when `wall` (converted as the wait
  // starts, and following clock steps).
  bool WaitUntilTrue(Mutex* mu, absl::Time deadline, bool wall, SourceLocation where);

  internal::WaitQueue waiters_;
};

}  // namespace dsim

#endif  // DSIM_SCHEDULER_MUTEX_H_
