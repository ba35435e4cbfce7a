// Simulated mutexes and condition variables, shared by the pthread and futex paths.
#ifndef DSIM_POSIX_INTERNAL_SYNC_H_
#define DSIM_POSIX_INTERNAL_SYNC_H_

#include <pthread.h>
#include <time.h>

#include "absl/time/time.h"
#include "posix/internal/state.h"
#include "scheduler/scheduler.h"

namespace dsim::posix::internal {

// 0 or an errno value, as pthread calls return. `kind` is a PTHREAD_MUTEX_* kind.
int MutexLock(Scheduler& scheduler, const void* address, int kind, bool try_only,
              absl::Time deadline, const char* what);
// `release_point`: take the scheduling point that follows a release (not when the
// caller goes on to block at once, as a condition-variable wait does).
int MutexUnlock(Scheduler& scheduler, const void* address, int kind, bool release_point);
// The same on a known entry (null: the object was never locked in this simulation).
int MutexLock(Scheduler& scheduler, PosixState& state, SimMutex& mutex, int kind,
              bool try_only, absl::Time deadline, const char* what);
int MutexUnlock(Scheduler& scheduler, SimMutex* mutex, int kind, bool release_point);
// MutexLock after its scheduling point (taken by the caller).
int MutexLockAfterPoint(Scheduler& scheduler, PosixState& state, SimMutex& mutex, int kind,
                        bool try_only, absl::Time deadline, const char* what);
// pthread mutexes: the entry found through the tag in the object (sync.cc).
int PthreadMutexLock(Scheduler& scheduler, pthread_mutex_t* mutex, bool try_only,
                     absl::Time deadline, const char* what);
int PthreadMutexUnlock(Scheduler& scheduler, pthread_mutex_t* mutex, bool release_point);
int CondWait(Scheduler& scheduler, const void* cond, pthread_mutex_t* mutex,
             absl::Time deadline, const char* what);
int CondWake(Scheduler& scheduler, const void* cond, bool all);
absl::Time CondDeadline(Scheduler& scheduler, clockid_t clock, const timespec* abstime);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_SYNC_H_
