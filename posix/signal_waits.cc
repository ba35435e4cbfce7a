// Timers that deliver real signals and waits for signals, inside tasks. No signal is
// ever delivered in a simulation, so:
//   alarm, ualarm, setitimer, timer_create   fail the run (the real timer would send
//                                            SIGALRM, or start a real thread for
//                                            SIGEV_THREAD, to the test process)
//   getitimer                                no timer is armed: all zero
//   pause, sigsuspend, sigwait, sigwaitinfo  fail the run (they would block the one OS
//                                            thread that runs every task, forever)
//   sigtimedwait with a timeout              waits the timeout in virtual time, then
//                                            EAGAIN; without one it fails the run
// Outside tasks each is the real function.
#include <errno.h>
#include <signal.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(alarm);
DSIM_DECLARE_REAL(ualarm);
DSIM_DECLARE_REAL(setitimer);
DSIM_DECLARE_REAL(getitimer);
DSIM_DECLARE_REAL(timer_create);
DSIM_DECLARE_REAL(pause);
DSIM_DECLARE_REAL(sigsuspend);
DSIM_DECLARE_REAL(sigwait);
DSIM_DECLARE_REAL(sigwaitinfo);
DSIM_DECLARE_REAL(sigtimedwait);

constexpr char kTimerSignals[] =
    "a timer that delivers a real signal is not simulated (use timerfd, a sleep or "
    "dsim's timers)";
constexpr char kSignalWait[] =
    "waiting for a signal is not simulated: none is ever delivered, and the wait would "
    "block every task";

// True (and the run fails) if the caller is a task.
// always_inline: TaskScheduler() must see the return address of the interposer.
__attribute__((always_inline)) inline bool Refuse(const char* call, const char* why) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return false;
  pi::RecordEscape(*scheduler, call, why, true);
  return true;
}

int Refused(int error) {
  errno = error;
  return -1;
}

}  // namespace

extern "C" {

unsigned int alarm(unsigned int seconds) noexcept {
  if (Refuse("alarm", kTimerSignals)) return 0;
  return DSIM_REAL(alarm)(seconds);
}

useconds_t ualarm(useconds_t value, useconds_t interval) noexcept {
  if (Refuse("ualarm", kTimerSignals)) return 0;
  return DSIM_REAL(ualarm)(value, interval);
}

int setitimer(__itimer_which_t which, const struct itimerval* value,
              struct itimerval* old) noexcept {
  if (Refuse("setitimer", kTimerSignals)) return Refused(EPERM);
  return DSIM_REAL(setitimer)(which, value, old);
}

int getitimer(__itimer_which_t which, struct itimerval* value) noexcept {
  if (__builtin_expect(pi::TaskScheduler() == nullptr, 1)) return DSIM_REAL(getitimer)(which, value);
  if (which != ITIMER_REAL && which != ITIMER_VIRTUAL && which != ITIMER_PROF) {
    return Refused(EINVAL);
  }
  std::memset(value, 0, sizeof(*value));
  return 0;
}

int timer_create(clockid_t clock, struct sigevent* event, timer_t* timer) noexcept {
  if (Refuse("timer_create", kTimerSignals)) return Refused(EPERM);
  return DSIM_REAL(timer_create)(clock, event, timer);
}

int pause(void) {
  if (Refuse("pause", kSignalWait)) return Refused(EINTR);
  return DSIM_REAL(pause)();
}

int sigsuspend(const sigset_t* mask) {
  if (Refuse("sigsuspend", kSignalWait)) return Refused(EINTR);
  return DSIM_REAL(sigsuspend)(mask);
}

int sigwait(const sigset_t* set, int* signal) {
  if (Refuse("sigwait", kSignalWait)) return EINTR;
  return DSIM_REAL(sigwait)(set, signal);
}

int sigwaitinfo(const sigset_t* set, siginfo_t* info) {
  if (Refuse("sigwaitinfo", kSignalWait)) return Refused(EINTR);
  return DSIM_REAL(sigwaitinfo)(set, info);
}

int sigtimedwait(const sigset_t* set, siginfo_t* info, const struct timespec* timeout) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(sigtimedwait)(set, info, timeout);
  if (timeout == nullptr) {
    pi::RecordEscape(*scheduler, "sigtimedwait", kSignalWait, true);
    return Refused(EINTR);
  }
  if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000) {
    return Refused(EINVAL);
  }
  DSIM_CALL_SITE(*scheduler);
  const absl::Time deadline =
      scheduler->TrueDeadlineAfterLocal(absl::DurationFromTimespec(*timeout));
  scheduler->SleepUntil(deadline, pi::CallerLocation(pi::State(*scheduler)));
  return Refused(EAGAIN);
}

}  // extern "C"
