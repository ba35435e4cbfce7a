// Synchronization: pthread mutexes (normal, recursive, errorcheck; trylock, timedlock,
// clocklock), condition variables (with their clock attribute), rwlocks, spinlocks,
// barriers, semaphores, and futex through syscall(SYS_futex) (see syscall.cc). Called
// from a task, each is simulated with dsim's wait queues: every acquire is a scheduling
// point, every release is followed by one, and a blocked task shows up in deadlock
// reports as `blocked in pthread_mutex_lock at <caller>`.
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>

#include <atomic>
#include <climits>

#include "absl/strings/str_cat.h"
#include "posix/internal/clock.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"
#include "posix/internal/sync.h"

namespace dsim::posix::internal {
namespace {

// glibc's mutex kind, from the object (set by pthread_mutex_init, 0 for the
// static initializer): PTHREAD_MUTEX_NORMAL, _RECURSIVE or _ERRORCHECK.
int MutexKind(const pthread_mutex_t* mutex) { return mutex->__data.__kind & 3; }

bool ValidAbstime(const timespec* t) {
  return t != nullptr && t->tv_nsec >= 0 && t->tv_nsec < 1000000000;
}

}  // namespace

int MutexLock(Scheduler& scheduler, const void* address, int kind, bool try_only,
              absl::Time deadline, const char* what) {
  PosixState& state = State(scheduler);
  // pthread_mutex_lock is noexcept: a kill (host crash) waits for a later point.
  Scheduler::NoUnwindScope no_unwind;
  scheduler.SchedulingPoint();
  const TaskId self = scheduler.CurrentTaskId();
  SimMutex& mutex = state.mutexes[address];  // Stable: a node of the map.
  if (mutex.owner == kNoTask && mutex.readers == 0) {
    mutex.owner = self;
    mutex.count = 1;
    return 0;
  }
  if (mutex.owner == self) {
    if (kind == PTHREAD_MUTEX_RECURSIVE) {
      if (mutex.count == UINT32_MAX) return EAGAIN;
      ++mutex.count;
      return 0;
    }
    if (try_only) return EBUSY;  // glibc: trylock by the owner is EBUSY unless recursive.
    if (kind == PTHREAD_MUTEX_ERRORCHECK) return EDEADLK;
    // A normal mutex locked twice by its owner deadlocks, as in glibc; the report says so.
  }
  if (try_only) return EBUSY;
  const SourceLocation where = CallerLocation(state);
  for (;;) {
    const WakeReason reason = mutex.waiters.Wait(what, where, deadline);
    if (mutex.owner == kNoTask && mutex.readers == 0) {
      mutex.owner = self;
      mutex.count = 1;
      return 0;
    }
    // Killed (a crash, or the scheduler unwinding a deadlock) while the owner may never
    // release: give up with an error (std::mutex::lock throws it as std::system_error),
    // since a noexcept pthread call cannot unwind. The kill is delivered at the task's
    // next scheduling point.
    if (scheduler.CurrentTaskKilled()) {
      state.EraseMutexIfIdle(address);
      return EDEADLK;
    }
    // DeadlinePassed: a REALTIME deadline follows clock steps.
    if (reason == WakeReason::kTimedOut || scheduler.DeadlinePassed(deadline)) {
      state.EraseMutexIfIdle(address);
      return ETIMEDOUT;
    }
  }
}

int MutexUnlock(Scheduler& scheduler, const void* address, int kind, bool release_point) {
  PosixState& state = State(scheduler);
  auto it = state.mutexes.find(address);
  const TaskId self = scheduler.CurrentTaskId();
  if (it == state.mutexes.end() || it->second.owner != self) {
    // glibc checks ownership for these kinds only; unlocking a normal mutex one does
    // not hold is undefined, and glibc simply releases it.
    if (kind != PTHREAD_MUTEX_NORMAL) return EPERM;
    if (it == state.mutexes.end() || it->second.owner == kNoTask) return 0;
  }
  SimMutex& mutex = it->second;
  if (mutex.owner == self && --mutex.count > 0) return 0;
  mutex.owner = kNoTask;
  mutex.count = 0;
  if (!mutex.waiters.empty()) mutex.waiters.WakeOne();
  if (release_point) ::dsim::internal::ReleasePoint();
  return 0;
}

int CondWait(Scheduler& scheduler, const void* cond, pthread_mutex_t* mutex,
             absl::Time deadline, const char* what) {
  PosixState& state = State(scheduler);
  const int kind = MutexKind(mutex);
  auto held = state.mutexes.find(mutex);
  if (held == state.mutexes.end() || held->second.owner != scheduler.CurrentTaskId()) {
    if (kind != PTHREAD_MUTEX_NORMAL) return EPERM;
  }
  // Release the mutex completely (a recursive one too, as glibc does) and wait.
  const uint32_t depth = held != state.mutexes.end() ? held->second.count : 1;
  const SourceLocation where = CallerLocation(state);
  // Unlocking and starting to wait are one step, with no scheduling point between (a
  // signal sent in between would be lost, and the queue's entry could be erased).
  if (held != state.mutexes.end() && held->second.owner == scheduler.CurrentTaskId()) {
    held->second.count = 1;
    MutexUnlock(scheduler, mutex, PTHREAD_MUTEX_NORMAL, /*release_point=*/false);
  }
  WaitQueue& waiters = state.waits[cond];
  WakeReason reason;
  try {
    reason = waiters.Wait(what, where, deadline);
  } catch (...) {
    // Killed while waiting: return to the caller's cleanup holding the mutex, as a
    // cancelled pthread_cond_wait does.
    Scheduler::NoUnwindScope no_unwind;
    state.EraseWaitIfIdle(cond);
    MutexLock(scheduler, mutex, kind, false, absl::InfiniteFuture(), "pthread_cond_wait");
    throw;
  }
  state.EraseWaitIfIdle(cond);
  {
    Scheduler::NoUnwindScope no_unwind;  // Return holding the mutex, whatever happens.
    MutexLock(scheduler, mutex, PTHREAD_MUTEX_NORMAL, false, absl::InfiniteFuture(), what);
  }
  state.mutexes[mutex].count = depth;
  return reason == WakeReason::kTimedOut ? ETIMEDOUT : 0;
}

int CondWake(Scheduler& scheduler, const void* cond, bool all) {
  PosixState& state = State(scheduler);
  auto it = state.waits.find(cond);
  if (it != state.waits.end()) {
    if (all) {
      it->second.WakeAll();
    } else {
      it->second.WakeOne();
    }
  }
  ::dsim::internal::ReleasePoint();
  return 0;
}

absl::Time CondDeadline(Scheduler& scheduler, clockid_t clock, const timespec* abstime) {
  const ClockKind kind = clock == CLOCK_MONOTONIC ? ClockKind::kMonotonic : ClockKind::kRealtime;
  return InstantOf(scheduler, kind, *abstime);
}

}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(pthread_mutex_lock);
DSIM_DECLARE_REAL(pthread_mutex_trylock);
DSIM_DECLARE_REAL(pthread_mutex_timedlock);
DSIM_DECLARE_REAL(pthread_mutex_clocklock);
DSIM_DECLARE_REAL(pthread_mutex_unlock);
DSIM_DECLARE_REAL(pthread_mutex_destroy);
DSIM_DECLARE_REAL(pthread_cond_wait);
DSIM_DECLARE_REAL(pthread_cond_timedwait);
DSIM_DECLARE_REAL(pthread_cond_clockwait);
DSIM_DECLARE_REAL(pthread_cond_signal);
DSIM_DECLARE_REAL(pthread_cond_broadcast);
DSIM_DECLARE_REAL(pthread_cond_destroy);
DSIM_DECLARE_REAL(pthread_rwlock_rdlock);
DSIM_DECLARE_REAL(pthread_rwlock_tryrdlock);
DSIM_DECLARE_REAL(pthread_rwlock_timedrdlock);
DSIM_DECLARE_REAL(pthread_rwlock_clockrdlock);
DSIM_DECLARE_REAL(pthread_rwlock_wrlock);
DSIM_DECLARE_REAL(pthread_rwlock_trywrlock);
DSIM_DECLARE_REAL(pthread_rwlock_timedwrlock);
DSIM_DECLARE_REAL(pthread_rwlock_clockwrlock);
DSIM_DECLARE_REAL(pthread_rwlock_unlock);
DSIM_DECLARE_REAL(pthread_spin_lock);
DSIM_DECLARE_REAL(pthread_spin_trylock);
DSIM_DECLARE_REAL(pthread_spin_unlock);
DSIM_DECLARE_REAL(sem_wait);
DSIM_DECLARE_REAL(sem_trywait);
DSIM_DECLARE_REAL(sem_timedwait);
DSIM_DECLARE_REAL(sem_clockwait);
DSIM_DECLARE_REAL(sem_post);

// The clock a condition variable was initialized with (pthread_condattr_setclock):
// glibc keeps it in bit 1 of __wrefs.
clockid_t CondClock(const pthread_cond_t* cond) {
  return (cond->__data.__wrefs & 2) ? CLOCK_MONOTONIC : CLOCK_REALTIME;
}

// ---- rwlocks: writers own the SimMutex; readers count in `readers` ----------------

int RwLock(dsim::Scheduler& scheduler, const void* address, bool write, bool try_only,
           absl::Time deadline, const char* what) {
  pi::PosixState& state = pi::State(scheduler);
  dsim::Scheduler::NoUnwindScope no_unwind;  // The rwlock calls are noexcept.
  scheduler.SchedulingPoint();
  const dsim::TaskId self = scheduler.CurrentTaskId();
  pi::SimMutex& lock = state.mutexes[address];
  auto free_for = [&] { return lock.owner == dsim::kNoTask && (!write || lock.readers == 0); };
  if (lock.owner == self) return EDEADLK;
  dsim::SourceLocation where;
  bool located = false;
  // A realtime deadline may move with clock steps (Scheduler::TrueTimeOfRealtimeDeadline):
  // the wait's own timeout, not the first conversion, says when it has passed.
  bool timed_out = false;
  for (;;) {
    if (free_for()) {
      if (write) {
        lock.owner = self;
        lock.count = 1;
      } else {
        ++lock.readers;
      }
      return 0;
    }
    if (try_only) return EBUSY;
    if (timed_out || scheduler.DeadlinePassed(deadline)) {
      state.EraseMutexIfIdle(address);
      return ETIMEDOUT;
    }
    if (scheduler.CurrentTaskKilled()) return EDEADLK;  // See MutexLock.
    if (!located) {
      where = pi::CallerLocation(state);
      located = true;
    }
    timed_out = lock.waiters.Wait(what, where, deadline) == dsim::WakeReason::kTimedOut;
  }
}

int RwUnlock(dsim::Scheduler& scheduler, const void* address) {
  pi::PosixState& state = pi::State(scheduler);
  auto it = state.mutexes.find(address);
  if (it == state.mutexes.end()) return EPERM;
  pi::SimMutex& lock = it->second;
  if (lock.owner == scheduler.CurrentTaskId()) {
    lock.owner = dsim::kNoTask;
    lock.count = 0;
  } else if (lock.readers > 0) {
    --lock.readers;
  } else {
    return EPERM;
  }
  if (!lock.waiters.empty()) {
    lock.waiters.WakeAll();  // Readers and writers re-compete; the strategy orders them.
  } else {
    state.EraseMutexIfIdle(address);
  }
  dsim::internal::ReleasePoint();
  return 0;
}

absl::Time Deadline(dsim::Scheduler& scheduler, clockid_t clock, const timespec* abstime) {
  return pi::CondDeadline(scheduler, clock, abstime);
}

}  // namespace

extern "C" {

// ---- Mutexes ------------------------------------------------------------------------

int pthread_mutex_lock(pthread_mutex_t* mutex) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(pthread_mutex_lock)(mutex);
  DSIM_CALL_SITE(*scheduler);
  return pi::MutexLock(*scheduler, mutex, pi::MutexKind(mutex), false, absl::InfiniteFuture(),
                       "pthread_mutex_lock");
}

int pthread_mutex_trylock(pthread_mutex_t* mutex) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(pthread_mutex_trylock)(mutex);
  return pi::MutexLock(*scheduler, mutex, pi::MutexKind(mutex), true, absl::InfiniteFuture(),
                       "pthread_mutex_trylock");
}

int pthread_mutex_timedlock(pthread_mutex_t* mutex, const struct timespec* abstime) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_mutex_timedlock)(mutex, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (!pi::ValidAbstime(abstime)) return EINVAL;
  return pi::MutexLock(*scheduler, mutex, pi::MutexKind(mutex), false,
                       Deadline(*scheduler, CLOCK_REALTIME, abstime), "pthread_mutex_timedlock");
}

int pthread_mutex_clocklock(pthread_mutex_t* mutex, clockid_t clock,
                            const struct timespec* abstime) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_mutex_clocklock)(mutex, clock, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  if (!pi::ValidAbstime(abstime)) return EINVAL;
  return pi::MutexLock(*scheduler, mutex, pi::MutexKind(mutex), false,
                       Deadline(*scheduler, clock, abstime), "pthread_mutex_clocklock");
}

int pthread_mutex_unlock(pthread_mutex_t* mutex) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(pthread_mutex_unlock)(mutex);
  return pi::MutexUnlock(*scheduler, mutex, pi::MutexKind(mutex), true);
}

int pthread_mutex_destroy(pthread_mutex_t* mutex) noexcept {
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    pi::PosixState& state = pi::State(*scheduler);
    auto it = state.mutexes.find(mutex);
    if (it != state.mutexes.end() && it->second.owner != dsim::kNoTask) return EBUSY;
  }
  return DSIM_REAL(pthread_mutex_destroy)(mutex);
}

// ---- Condition variables ------------------------------------------------------------

int pthread_cond_wait(pthread_cond_t* cond, pthread_mutex_t* mutex) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_cond_wait)(cond, mutex);
  DSIM_CALL_SITE(*scheduler);
  scheduler->SchedulingPoint();
  return pi::CondWait(*scheduler, cond, mutex, absl::InfiniteFuture(), "pthread_cond_wait");
}

int pthread_cond_timedwait(pthread_cond_t* cond, pthread_mutex_t* mutex,
                           const struct timespec* abstime) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_cond_timedwait)(cond, mutex, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (!pi::ValidAbstime(abstime)) return EINVAL;
  scheduler->SchedulingPoint();
  return pi::CondWait(*scheduler, cond, mutex, Deadline(*scheduler, CondClock(cond), abstime),
                      "pthread_cond_timedwait");
}

int pthread_cond_clockwait(pthread_cond_t* cond, pthread_mutex_t* mutex, clockid_t clock,
                           const struct timespec* abstime) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_cond_clockwait)(cond, mutex, clock, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC) return EINVAL;
  if (!pi::ValidAbstime(abstime)) return EINVAL;
  scheduler->SchedulingPoint();
  return pi::CondWait(*scheduler, cond, mutex, Deadline(*scheduler, clock, abstime),
                      "pthread_cond_clockwait");
}

int pthread_cond_signal(pthread_cond_t* cond) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_cond_signal)(cond);
  return pi::CondWake(*scheduler, cond, false);
}

int pthread_cond_broadcast(pthread_cond_t* cond) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_cond_broadcast)(cond);
  return pi::CondWake(*scheduler, cond, true);
}

int pthread_cond_destroy(pthread_cond_t* cond) noexcept {
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    pi::PosixState& state = pi::State(*scheduler);
    auto it = state.waits.find(cond);
    if (it != state.waits.end() && !it->second.empty()) return EBUSY;
  }
  return DSIM_REAL(pthread_cond_destroy)(cond);
}

// ---- Read-write locks ----------------------------------------------------------------

int pthread_rwlock_rdlock(pthread_rwlock_t* lock) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_rdlock)(lock);
  DSIM_CALL_SITE(*scheduler);
  return RwLock(*scheduler, lock, false, false, absl::InfiniteFuture(), "pthread_rwlock_rdlock");
}

int pthread_rwlock_tryrdlock(pthread_rwlock_t* lock) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_tryrdlock)(lock);
  return RwLock(*scheduler, lock, false, true, absl::InfiniteFuture(), "pthread_rwlock_tryrdlock");
}

int pthread_rwlock_timedrdlock(pthread_rwlock_t* lock, const struct timespec* abstime) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_timedrdlock)(lock, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (!pi::ValidAbstime(abstime)) return EINVAL;
  return RwLock(*scheduler, lock, false, false, Deadline(*scheduler, CLOCK_REALTIME, abstime),
                "pthread_rwlock_timedrdlock");
}

int pthread_rwlock_clockrdlock(pthread_rwlock_t* lock, clockid_t clock,
                               const struct timespec* abstime) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_clockrdlock)(lock, clock, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (!pi::ValidAbstime(abstime)) return EINVAL;
  return RwLock(*scheduler, lock, false, false, Deadline(*scheduler, clock, abstime),
                "pthread_rwlock_clockrdlock");
}

int pthread_rwlock_wrlock(pthread_rwlock_t* lock) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_wrlock)(lock);
  DSIM_CALL_SITE(*scheduler);
  return RwLock(*scheduler, lock, true, false, absl::InfiniteFuture(), "pthread_rwlock_wrlock");
}

int pthread_rwlock_trywrlock(pthread_rwlock_t* lock) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_trywrlock)(lock);
  return RwLock(*scheduler, lock, true, true, absl::InfiniteFuture(), "pthread_rwlock_trywrlock");
}

int pthread_rwlock_timedwrlock(pthread_rwlock_t* lock, const struct timespec* abstime) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_timedwrlock)(lock, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (!pi::ValidAbstime(abstime)) return EINVAL;
  return RwLock(*scheduler, lock, true, false, Deadline(*scheduler, CLOCK_REALTIME, abstime),
                "pthread_rwlock_timedwrlock");
}

int pthread_rwlock_clockwrlock(pthread_rwlock_t* lock, clockid_t clock,
                               const struct timespec* abstime) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_clockwrlock)(lock, clock, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (!pi::ValidAbstime(abstime)) return EINVAL;
  return RwLock(*scheduler, lock, true, false, Deadline(*scheduler, clock, abstime),
                "pthread_rwlock_clockwrlock");
}

int pthread_rwlock_unlock(pthread_rwlock_t* lock) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_rwlock_unlock)(lock);
  return RwUnlock(*scheduler, lock);
}

// ---- Spinlocks: a task that spins on a held lock would spin forever (nothing else
// runs on the thread), so a spinlock is a mutex here. ---------------------------------

int pthread_spin_lock(pthread_spinlock_t* lock) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_spin_lock)(lock);
  DSIM_CALL_SITE(*scheduler);
  return pi::MutexLock(*scheduler, const_cast<int*>(lock), PTHREAD_MUTEX_NORMAL, false, absl::InfiniteFuture(),
                       "pthread_spin_lock");
}

int pthread_spin_trylock(pthread_spinlock_t* lock) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_spin_trylock)(lock);
  return pi::MutexLock(*scheduler, const_cast<int*>(lock), PTHREAD_MUTEX_NORMAL, true, absl::InfiniteFuture(),
                       "pthread_spin_trylock");
}

int pthread_spin_unlock(pthread_spinlock_t* lock) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pthread_spin_unlock)(lock);
  return pi::MutexUnlock(*scheduler, const_cast<int*>(lock), PTHREAD_MUTEX_NORMAL, true);
}

// ---- Semaphores: the count lives in the sem_t (glibc's `value` word, count << 1,
// bit 0 = waiters), so a semaphore initialized outside a task keeps its count. --------

}  // extern "C"

namespace {

std::atomic<unsigned int>* SemCount(sem_t* sem) {
  return reinterpret_cast<std::atomic<unsigned int>*>(sem);
}

int SemWait(dsim::Scheduler& scheduler, sem_t* sem, bool try_only, absl::Time deadline,
            const char* what) {
  pi::PosixState& state = pi::State(scheduler);
  if (try_only) {
    dsim::Scheduler::NoUnwindScope no_unwind;  // sem_trywait is noexcept.
    scheduler.SchedulingPoint();
  } else {
    scheduler.SchedulingPoint();
  }
  std::atomic<unsigned int>* word = SemCount(sem);
  bool located = false;
  dsim::SourceLocation where;
  bool timed_out = false;  // See RwLock.
  for (;;) {
    const unsigned int value = word->load(std::memory_order_relaxed);
    if ((value >> 1) > 0) {
      word->store(value - 2, std::memory_order_relaxed);
      state.EraseWaitIfIdle(sem);
      return 0;
    }
    if (try_only) {
      errno = EAGAIN;
      return -1;
    }
    if (timed_out || scheduler.DeadlinePassed(deadline)) {
      state.EraseWaitIfIdle(sem);
      errno = ETIMEDOUT;
      return -1;
    }
    if (!located) {
      where = pi::CallerLocation(state);
      located = true;
    }
    timed_out = state.waits[sem].Wait(what, where, deadline) == dsim::WakeReason::kTimedOut;
  }
}

}  // namespace

extern "C" {

int sem_wait(sem_t* sem) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(sem_wait)(sem);
  DSIM_CALL_SITE(*scheduler);
  return SemWait(*scheduler, sem, false, absl::InfiniteFuture(), "sem_wait");
}

int sem_trywait(sem_t* sem) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(sem_trywait)(sem);
  return SemWait(*scheduler, sem, true, absl::InfiniteFuture(), "sem_trywait");
}

int sem_timedwait(sem_t* sem, const struct timespec* abstime) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(sem_timedwait)(sem, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (!pi::ValidAbstime(abstime)) {
    errno = EINVAL;
    return -1;
  }
  return SemWait(*scheduler, sem, false, Deadline(*scheduler, CLOCK_REALTIME, abstime),
                 "sem_timedwait");
}

int sem_clockwait(sem_t* sem, clockid_t clock, const struct timespec* abstime) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(sem_clockwait)(sem, clock, abstime);
  DSIM_CALL_SITE(*scheduler);
  if (!pi::ValidAbstime(abstime) || (clock != CLOCK_REALTIME && clock != CLOCK_MONOTONIC)) {
    errno = EINVAL;
    return -1;
  }
  return SemWait(*scheduler, sem, false, Deadline(*scheduler, clock, abstime), "sem_clockwait");
}

int sem_post(sem_t* sem) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(sem_post)(sem);
  std::atomic<unsigned int>* word = SemCount(sem);
  const unsigned int value = word->load(std::memory_order_relaxed);
  if ((value >> 1) >= SEM_VALUE_MAX) {
    errno = EOVERFLOW;
    return -1;
  }
  word->store(value + 2, std::memory_order_relaxed);
  pi::PosixState& state = pi::State(*scheduler);
  if (auto it = state.waits.find(sem); it != state.waits.end()) it->second.WakeOne();
  dsim::internal::ReleasePoint();
  return 0;
}

// ---- Barriers ------------------------------------------------------------------------

}  // extern "C"
