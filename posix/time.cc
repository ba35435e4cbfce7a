// Time: clock_gettime, gettimeofday, time, nanosleep, clock_nanosleep, usleep, sleep.
#include <errno.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "posix/internal/clock.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace dsim::posix::internal {

ClockKind KindOf(clockid_t clock) {
  switch (clock) {
    case CLOCK_REALTIME:
    case CLOCK_REALTIME_COARSE:
    case CLOCK_REALTIME_ALARM:
      return ClockKind::kRealtime;
    case CLOCK_MONOTONIC:
    case CLOCK_MONOTONIC_COARSE:
    case CLOCK_MONOTONIC_RAW:
    case CLOCK_BOOTTIME:
    case CLOCK_BOOTTIME_ALARM:
      return ClockKind::kMonotonic;
    case CLOCK_TAI:
      return ClockKind::kTai;
    case CLOCK_PROCESS_CPUTIME_ID:
    case CLOCK_THREAD_CPUTIME_ID:
      return ClockKind::kCpu;
    default:
      // Negative ids are CPU clocks of other processes and threads (clock_getcpuclockid).
      return clock < 0 ? ClockKind::kCpu : ClockKind::kInvalid;
  }
}

absl::Time VirtualRealtime(Scheduler& scheduler) { return dsim::Now(); }

// The calling task's host clocks (scheduler/clock.h): skew, drift and steps apply.
absl::Duration VirtualMonotonic(Scheduler& scheduler) {
  return scheduler.MonotonicNow() + kMonotonicAtEpoch;
}

timespec ReadClock(Scheduler& scheduler, ClockKind kind) {
  switch (kind) {
    case ClockKind::kRealtime:
      return absl::ToTimespec(VirtualRealtime(scheduler));
    case ClockKind::kTai:
      return absl::ToTimespec(VirtualRealtime(scheduler) + absl::Seconds(37));
    case ClockKind::kMonotonic:
      return absl::ToTimespec(VirtualMonotonic(scheduler));
    case ClockKind::kCpu:
    case ClockKind::kInvalid:
      break;
  }
  return absl::ToTimespec(scheduler.Now() - Scheduler::Epoch());
}

absl::Time InstantOf(Scheduler& scheduler, ClockKind kind, const timespec& value,
                     bool for_wait) {
  const absl::Duration reading = absl::DurationFromTimespec(value);
  auto wall = [&](absl::Time local) {
    return for_wait ? scheduler.TrueTimeOfRealtimeDeadline(local) : scheduler.TrueTimeOfLocal(local);
  };
  switch (kind) {
    case ClockKind::kRealtime:
      return wall(absl::UnixEpoch() + reading);
    case ClockKind::kTai:
      return wall(absl::UnixEpoch() + reading - absl::Seconds(37));
    case ClockKind::kMonotonic: {
      // The monotonic clock runs at the host's drifted rate and never steps.
      const absl::Duration left = reading - VirtualMonotonic(scheduler);
      if (left <= absl::ZeroDuration()) return scheduler.Now();
      return scheduler.Now() + scheduler.TrueDurationOfLocal(left);
    }
    case ClockKind::kCpu:
    case ClockKind::kInvalid:
      break;
  }
  return Scheduler::Epoch() + reading;
}

namespace {

bool ValidTimespec(const timespec* t) {
  return t->tv_sec >= 0 && t->tv_nsec >= 0 && t->tv_nsec < 1000000000;
}

// Sleeps the calling task until `deadline`; a past deadline is still a scheduling point.
// always_inline: TaskScheduler() must see the return address of the interposer.
// `deadline` is true virtual time (InstantOf, TrueDeadlineAfter).
__attribute__((always_inline)) inline void SleepUntil(absl::Time deadline) {
  Scheduler& scheduler = *TaskScheduler();
  SourceLocation where = CallerLocation(State(scheduler));
  scheduler.SleepUntil(deadline, where);
}

// The true time at which `local` of the calling task's host clock has passed.
inline absl::Time TrueDeadlineAfter(Scheduler& scheduler, absl::Duration local) {
  return scheduler.Now() + scheduler.TrueDurationOfLocal(local);
}

}  // namespace
}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(clock_gettime);
DSIM_DECLARE_REAL(clock_settime);
DSIM_DECLARE_REAL(settimeofday);
DSIM_DECLARE_REAL(gettimeofday);
DSIM_DECLARE_REAL(time);
DSIM_DECLARE_REAL(nanosleep);
DSIM_DECLARE_REAL(clock_nanosleep);
DSIM_DECLARE_REAL(usleep);
DSIM_DECLARE_REAL(sleep);
}  // namespace

extern "C" {

int clock_gettime(clockid_t clock, struct timespec* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(clock_gettime)(clock, out);
  const pi::ClockKind kind = pi::KindOf(clock);
  if (kind == pi::ClockKind::kInvalid) {
    errno = EINVAL;
    return -1;
  }
  *out = pi::ReadClock(*scheduler, kind);
  return 0;
}

// Setting CLOCK_REALTIME on a host steps the host's clock (Simulation::StepClock: absolute
// REALTIME waits move, TFD_TIMER_CANCEL_ON_SET timerfds cancel), never the machine's.
// Other clocks cannot be set (EINVAL, as Linux); a task not on a host gets EPERM.
int clock_settime(clockid_t clock, const struct timespec* value) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(clock_settime)(clock, value);
  if (clock != CLOCK_REALTIME) {
    errno = EINVAL;
    return -1;
  }
  if (value == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (!pi::ValidTimespec(value)) {
    errno = EINVAL;
    return -1;
  }
  const absl::Time wanted = absl::TimeFromTimespec(*value);
  if (!scheduler->StepCurrentClock(wanted - pi::VirtualRealtime(*scheduler))) {
    errno = EPERM;
    return -1;
  }
  return 0;
}

int settimeofday(const struct timeval* value, const struct timezone* zone) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(settimeofday)(value, zone);
  if (value == nullptr) return 0;  // Only a time zone: nothing the simulation keeps.
  if (value->tv_usec < 0 || value->tv_usec >= 1000000) {
    errno = EINVAL;
    return -1;
  }
  const timespec as_timespec{value->tv_sec, static_cast<long>(value->tv_usec) * 1000};
  return clock_settime(CLOCK_REALTIME, &as_timespec);
}

int gettimeofday(struct timeval* out, void* zone) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(gettimeofday)(out, static_cast<struct timezone*>(zone));
  }
  *out = absl::ToTimeval(pi::VirtualRealtime(*scheduler));
  if (zone != nullptr) {
    auto* tz = static_cast<struct timezone*>(zone);
    tz->tz_minuteswest = 0;
    tz->tz_dsttime = 0;
  }
  return 0;
}

time_t time(time_t* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(time)(out);
  const time_t now = absl::ToUnixSeconds(pi::VirtualRealtime(*scheduler));
  if (out != nullptr) *out = now;
  return now;
}

int nanosleep(const struct timespec* request, struct timespec* remaining) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(nanosleep)(request, remaining);
  DSIM_CALL_SITE(*scheduler);
  if (request == nullptr) {
    errno = EFAULT;
    return -1;
  }
  if (!pi::ValidTimespec(request)) {
    errno = EINVAL;
    return -1;
  }
  pi::SleepUntil(pi::TrueDeadlineAfter(*scheduler, absl::DurationFromTimespec(*request)));
  return 0;
}

int clock_nanosleep(clockid_t clock, int flags, const struct timespec* request,
                    struct timespec* remaining) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(clock_nanosleep)(clock, flags, request, remaining);
  DSIM_CALL_SITE(*scheduler);
  const pi::ClockKind kind = pi::KindOf(clock);
  // Linux: a thread's own CPU clock cannot be slept on.
  if (kind == pi::ClockKind::kInvalid || clock == CLOCK_THREAD_CPUTIME_ID) return EINVAL;
  if (request == nullptr) return EFAULT;
  if (!pi::ValidTimespec(request)) return EINVAL;
  if (flags & TIMER_ABSTIME) {
    pi::SleepUntil(pi::InstantOf(*scheduler, kind, *request));
  } else {
    pi::SleepUntil(pi::TrueDeadlineAfter(*scheduler, absl::DurationFromTimespec(*request)));
  }
  return 0;
}

int usleep(useconds_t microseconds) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(usleep)(microseconds);
  DSIM_CALL_SITE(*scheduler);
  pi::SleepUntil(pi::TrueDeadlineAfter(*scheduler, absl::Microseconds(microseconds)));
  return 0;
}

unsigned int sleep(unsigned int seconds) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(sleep)(seconds);
  DSIM_CALL_SITE(*scheduler);
  pi::SleepUntil(pi::TrueDeadlineAfter(*scheduler, absl::Seconds(seconds)));
  return 0;
}

}  // extern "C"
