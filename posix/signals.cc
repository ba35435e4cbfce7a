// Signals and process identity inside tasks.
//
// Signals are not simulated: kill, killpg, raise (gsignal), tgkill, sigqueue,
// pthread_sigqueue and pidfd_send_signal called from a task would reach
// REAL processes and threads (the test process itself, or whatever real process owns a
// simulated pid), so each fails the run naming the call, as fork does, and returns
// EPERM. abort() keeps working: glibc raises SIGABRT through its internal raise, which
// no interposer sees. syscall(SYS_kill / SYS_tkill / SYS_tgkill / ...) is refused in
// posix/syscall.cc.
//
// Identity. In a task getpid, getppid and gettid (and their raw system calls) answer the
// simulated values of posix/internal/machine.h: a host's tasks share one pid (1000 plus
// the host's group), each task has its own tid (100000 plus the task id), the parent is
// 1. The real values differ from run to run, so code that names files or seeds a
// generator by pid would not replay. Nothing dsim lets reach the kernel carries these
// numbers: the calls that take a pid either are refused (above) or answer the simulated
// machine (sched_getaffinity/sched_setaffinity in posix/machine.cc).
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
// glibc 2.36's <sys/pidfd.h> lacks extern "C".
extern "C" {
#include <sys/pidfd.h>
}

#include "absl/strings/str_cat.h"
#include "posix/internal/machine.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace dsim::posix::internal {

void RefuseSignal(Scheduler& scheduler, const char* call, int signal) {
  RecordEscape(scheduler, call,
               absl::StrCat("sending a signal (", signal,
                            ") is not simulated: it would reach a real process or thread"),
               true);
}

}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(kill);
DSIM_DECLARE_REAL(killpg);
DSIM_DECLARE_REAL(raise);
DSIM_DECLARE_REAL(gsignal);
DSIM_DECLARE_REAL(tgkill);
DSIM_DECLARE_REAL(sigqueue);
DSIM_DECLARE_REAL(pthread_sigqueue);
DSIM_DECLARE_REAL(pidfd_send_signal);
DSIM_DECLARE_REAL(getpid);
DSIM_DECLARE_REAL(getppid);
DSIM_DECLARE_REAL(gettid);

// True (and the run fails) if the caller is a task.
// always_inline: TaskScheduler() must see the return address of the interposer.
__attribute__((always_inline)) inline bool Refuse(const char* call, int signal) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return false;
  pi::RefuseSignal(*scheduler, call, signal);
  return true;
}

int Refused() {
  errno = EPERM;
  return -1;
}

}  // namespace

extern "C" {

int kill(pid_t pid, int signal) noexcept {
  if (Refuse("kill", signal)) return Refused();
  return DSIM_REAL(kill)(pid, signal);
}

int killpg(pid_t group, int signal) noexcept {
  if (Refuse("killpg", signal)) return Refused();
  return DSIM_REAL(killpg)(group, signal);
}

int raise(int signal) noexcept {
  if (Refuse("raise", signal)) return Refused();
  return DSIM_REAL(raise)(signal);
}

int gsignal(int signal) noexcept {
  if (Refuse("gsignal", signal)) return Refused();
  return DSIM_REAL(gsignal)(signal);
}

int tgkill(pid_t process, pid_t thread, int signal) {
  if (Refuse("tgkill", signal)) return Refused();
  return DSIM_REAL(tgkill)(process, thread, signal);
}

int sigqueue(pid_t pid, int signal, const union sigval value) noexcept {
  if (Refuse("sigqueue", signal)) return Refused();
  return DSIM_REAL(sigqueue)(pid, signal, value);
}

int pthread_sigqueue(pthread_t thread, int signal, const union sigval value) noexcept {
  if (Refuse("pthread_sigqueue", signal)) return EPERM;
  return DSIM_REAL(pthread_sigqueue)(thread, signal, value);
}

int pidfd_send_signal(int pidfd, int signal, siginfo_t* info, unsigned int flags) noexcept {
  if (Refuse("pidfd_send_signal", signal)) return Refused();
  return DSIM_REAL(pidfd_send_signal)(pidfd, signal, info, flags);
}

pid_t getpid(void) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(getpid)();
  return pi::SimulatedPid(*scheduler);
}

pid_t getppid(void) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(getppid)();
  return 1;
}

pid_t gettid(void) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(gettid)();
  return pi::SimulatedTid(*scheduler);
}

}  // extern "C"
