// The calls that name a process or process group by number. Inside a task getpid()
// answers the simulated pid (posix/signals.cc), which may be some real process's number,
// so none of these may reach the kernel with a number a task made up. In a task each
// answers for the simulated process: 0, the task's simulated pid or its tid name the
// task's host-process; any other number is a process that does not exist in the
// simulation (ESRCH; ECHILD for the waits). A host is its own process group and session
// leader, with no children (fork is refused), at nice 0 under SCHED_OTHER; setting a
// priority or policy for itself is accepted and changes nothing (the strategy decides
// who runs). Resource limits of itself are the real process's (as getrlimit, which is
// not interposed). Outside tasks each is the real function.
#include <errno.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "posix/internal/machine.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(getpriority);
DSIM_DECLARE_REAL(setpriority);
DSIM_DECLARE_REAL(sched_getscheduler);
DSIM_DECLARE_REAL(sched_setscheduler);
DSIM_DECLARE_REAL(sched_getparam);
DSIM_DECLARE_REAL(sched_setparam);
DSIM_DECLARE_REAL(sched_rr_get_interval);
DSIM_DECLARE_REAL(prlimit);
DSIM_DECLARE_REAL(prlimit64);
DSIM_DECLARE_REAL(getpgrp);
DSIM_DECLARE_REAL(getpgid);
DSIM_DECLARE_REAL(getsid);
DSIM_DECLARE_REAL(setpgid);
DSIM_DECLARE_REAL(setsid);
DSIM_DECLARE_REAL(process_vm_readv);
DSIM_DECLARE_REAL(process_vm_writev);
DSIM_DECLARE_REAL(wait);
DSIM_DECLARE_REAL(waitpid);
DSIM_DECLARE_REAL(waitid);
DSIM_DECLARE_REAL(wait3);
DSIM_DECLARE_REAL(wait4);
DSIM_DECLARE_REAL(getpid);  // The real process, for calls on itself.

bool IsSelf(const dsim::Scheduler& scheduler, pid_t pid) {
  return pid == 0 || pid == pi::SimulatedPid(scheduler) || pid == pi::SimulatedTid(scheduler);
}

template <typename T = int>
T Fail(int error) {
  errno = error;
  return static_cast<T>(-1);
}

// PRIO_PROCESS and PRIO_PGRP name the simulated process (group); PRIO_USER names a
// real user, which every simulated process runs as.
bool PriorityTargetExists(const dsim::Scheduler& scheduler, int which, id_t who) {
  if (which == PRIO_USER) return true;
  return IsSelf(scheduler, static_cast<pid_t>(who));
}

}  // namespace

extern "C" {

int getpriority(__priority_which_t which, id_t who) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(getpriority)(which, who);
  if (which != PRIO_PROCESS && which != PRIO_PGRP && which != PRIO_USER) return Fail(EINVAL);
  if (!PriorityTargetExists(*scheduler, which, who)) return Fail(ESRCH);
  return 0;
}

int setpriority(__priority_which_t which, id_t who, int priority) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(setpriority)(which, who, priority);
  if (which != PRIO_PROCESS && which != PRIO_PGRP && which != PRIO_USER) return Fail(EINVAL);
  if (!PriorityTargetExists(*scheduler, which, who)) return Fail(ESRCH);
  return 0;
}

int sched_getscheduler(pid_t pid) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sched_getscheduler)(pid);
  if (pid < 0) return Fail(EINVAL);
  if (!IsSelf(*scheduler, pid)) return Fail(ESRCH);
  return SCHED_OTHER;
}

int sched_setscheduler(pid_t pid, int policy, const struct sched_param* param) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(sched_setscheduler)(pid, policy, param);
  }
  if (pid < 0 || param == nullptr) return Fail(EINVAL);
  if (!IsSelf(*scheduler, pid)) return Fail(ESRCH);
  return 0;
}

int sched_getparam(pid_t pid, struct sched_param* param) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sched_getparam)(pid, param);
  if (pid < 0 || param == nullptr) return Fail(EINVAL);
  if (!IsSelf(*scheduler, pid)) return Fail(ESRCH);
  param->sched_priority = 0;
  return 0;
}

int sched_setparam(pid_t pid, const struct sched_param* param) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sched_setparam)(pid, param);
  if (pid < 0 || param == nullptr) return Fail(EINVAL);
  if (!IsSelf(*scheduler, pid)) return Fail(ESRCH);
  return 0;
}

// Linux answers SCHED_OTHER's time slice, which depends on the machine; the simulated
// answer is 0 (no slices: the strategy decides who runs).
int sched_rr_get_interval(pid_t pid, struct timespec* interval) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sched_rr_get_interval)(pid, interval);
  if (pid < 0) return Fail(EINVAL);
  if (!IsSelf(*scheduler, pid)) return Fail(ESRCH);
  *interval = timespec{0, 0};
  return 0;
}

int prlimit(pid_t pid, enum __rlimit_resource resource, const struct rlimit* new_limit,
            struct rlimit* old_limit) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(prlimit)(pid, resource, new_limit, old_limit);
  }
  if (!IsSelf(*scheduler, pid)) return Fail(ESRCH);
  return DSIM_REAL(prlimit)(0, resource, new_limit, old_limit);
}

int prlimit64(pid_t pid, enum __rlimit_resource resource, const struct rlimit64* new_limit,
              struct rlimit64* old_limit) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(prlimit64)(pid, resource, new_limit, old_limit);
  }
  if (!IsSelf(*scheduler, pid)) return Fail(ESRCH);
  return DSIM_REAL(prlimit64)(0, resource, new_limit, old_limit);
}

pid_t getpgrp(void) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(getpgrp)();
  return pi::SimulatedPid(*scheduler);
}

pid_t getpgid(pid_t pid) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(getpgid)(pid);
  if (!IsSelf(*scheduler, pid)) return Fail<pid_t>(ESRCH);
  return pi::SimulatedPid(*scheduler);
}

pid_t getsid(pid_t pid) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(getsid)(pid);
  if (!IsSelf(*scheduler, pid)) return Fail<pid_t>(ESRCH);
  return pi::SimulatedPid(*scheduler);
}

// The simulated process leads its own group: joining it again is a no-op; any other
// group does not exist (EPERM, as Linux for a group in another session).
int setpgid(pid_t pid, pid_t group) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(setpgid)(pid, group);
  if (group < 0) return Fail(EINVAL);
  if (!IsSelf(*scheduler, pid)) return Fail(ESRCH);
  if (group != 0 && group != pi::SimulatedPid(*scheduler)) return Fail(EPERM);
  return 0;
}

// A process group leader cannot start a session (EPERM, as Linux): the real setsid
// would detach the whole test process from its terminal.
pid_t setsid(void) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(setsid)();
  return Fail<pid_t>(EPERM);
}

ssize_t process_vm_readv(pid_t pid, const struct iovec* local, unsigned long local_count,
                         const struct iovec* remote, unsigned long remote_count,
                         unsigned long flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(process_vm_readv)(pid, local, local_count, remote, remote_count, flags);
  }
  if (!IsSelf(*scheduler, pid)) return Fail<ssize_t>(ESRCH);
  return DSIM_REAL(process_vm_readv)(DSIM_REAL(getpid)(), local, local_count, remote,
                                     remote_count, flags);
}

ssize_t process_vm_writev(pid_t pid, const struct iovec* local, unsigned long local_count,
                          const struct iovec* remote, unsigned long remote_count,
                          unsigned long flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(process_vm_writev)(pid, local, local_count, remote, remote_count, flags);
  }
  if (!IsSelf(*scheduler, pid)) return Fail<ssize_t>(ESRCH);
  return DSIM_REAL(process_vm_writev)(DSIM_REAL(getpid)(), local, local_count, remote,
                                      remote_count, flags);
}

// No children: a task cannot fork. Forwarding would reap the test process's real
// children (a death test's).
pid_t wait(int* status) {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(wait)(status);
  return Fail<pid_t>(ECHILD);
}

pid_t waitpid(pid_t pid, int* status, int options) {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(waitpid)(pid, status, options);
  return Fail<pid_t>(ECHILD);
}

int waitid(idtype_t type, id_t id, siginfo_t* info, int options) {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(waitid)(type, id, info, options);
  return Fail(ECHILD);
}

pid_t wait3(int* status, int options, struct rusage* usage) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(wait3)(status, options, usage);
  return Fail<pid_t>(ECHILD);
}

pid_t wait4(pid_t pid, int* status, int options, struct rusage* usage) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) {
    return DSIM_REAL(wait4)(pid, status, options, usage);
  }
  return Fail<pid_t>(ECHILD);
}

}  // extern "C"
