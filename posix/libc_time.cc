// Time that glibc reads through its own internal calls, which no interposer of
// clock_gettime sees: timespec_get, timespec_getres, clock_getres, clock, times,
// getrusage and ftime. In a task each answers from the same virtual clocks as
// clock_gettime (posix/internal/clock.h); outside tasks each is the real function.
//
//   timespec_get(TIME_UTC)   CLOCK_REALTIME (the host's wall clock)
//   clock_getres, timespec_getres   1 ns for every valid clock (virtual clocks, the
//                            COARSE ones included, read to the nanosecond)
//   clock()                  the CPU-time clock (virtual time since the simulation
//                            began) in CLOCKS_PER_SEC units, as glibc computes it
//   times()                  tms_utime = the CPU-time clock, tms_stime and the children's
//                            times 0; returns the host's CLOCK_MONOTONIC in clock ticks
//   getrusage                RUSAGE_SELF/THREAD: ru_utime = the CPU-time clock, every
//                            other field 0; RUSAGE_CHILDREN: all 0 (no child processes)
//   ftime                    CLOCK_REALTIME in milliseconds, time zone 0 (UTC)
//   adjtimex, ntp_adjtime,   reading (modes 0): a synchronized clock (TIME_OK, status 0,
//   clock_adjtime            errors 0, tick 10000 us, TAI offset 37 s) whose time is
//                            the named clock's; adjusting anything fails the run (the
//                            real call would adjust the machine's clock)
//   ntp_gettimex             the same reading: CLOCK_REALTIME, errors 0, tai 37, TIME_OK
#include <errno.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/timeb.h>
#include <sys/timex.h>
#include <sys/times.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include "posix/internal/clock.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(timespec_get);
DSIM_DECLARE_REAL(timespec_getres);
DSIM_DECLARE_REAL(clock_getres);
DSIM_DECLARE_REAL(clock);
DSIM_DECLARE_REAL(times);
DSIM_DECLARE_REAL(getrusage);
DSIM_DECLARE_REAL(adjtimex);
DSIM_DECLARE_REAL(ntp_adjtime);
DSIM_DECLARE_REAL(clock_adjtime);
DSIM_DECLARE_REAL(ntp_gettimex);

// ftime is deprecated in glibc's header but still exported; declared by hand so the
// deprecation warning does not fire.
using FtimeFunction = int (*)(struct timeb*);
pi::RealFunction<FtimeFunction> real_ftime{
    "ftime", pi::FirstCall<real_ftime, FtimeFunction>::value};

// The CPU-time clock, as clock_gettime(CLOCK_PROCESS_CPUTIME_ID) answers in a task.
absl::Duration CpuTime(dsim::Scheduler& scheduler) {
  return absl::DurationFromTimespec(pi::ReadClock(scheduler, pi::ClockKind::kCpu));
}

// Linux's USER_HZ: the unit of times() and of sysconf(_SC_CLK_TCK).
constexpr int64_t kClockTicksPerSecond = 100;

clock_t Ticks(absl::Duration duration) {
  return static_cast<clock_t>(absl::ToInt64Nanoseconds(duration) /
                              (1000000000 / kClockTicksPerSecond));
}

// adjtimex's answer for a read of `clock` (no mode bits): a synchronized clock.
// Returns TIME_OK, or -1 with errno, and fails the run for an adjustment.
int ReadTimex(dsim::Scheduler& scheduler, const char* call, clockid_t clock, struct timex* tx) {
  const pi::ClockKind kind = pi::KindOf(clock);
  if (kind == pi::ClockKind::kInvalid || kind == pi::ClockKind::kCpu) {
    errno = EINVAL;
    return -1;
  }
  if (tx->modes != 0 && tx->modes != ADJ_OFFSET_SS_READ) {
    pi::RecordEscape(scheduler, call,
                     "adjusting a clock is not simulated (use clock_settime, which steps the "
                     "host's clock)",
                     true);
    errno = EPERM;
    return -1;
  }
  const bool nano = false;  // Readings in microseconds unless STA_NANO was set; it is not.
  std::memset(tx, 0, sizeof(*tx));
  const timespec now = pi::ReadClock(scheduler, kind);
  tx->time.tv_sec = now.tv_sec;
  tx->time.tv_usec = nano ? now.tv_nsec : now.tv_nsec / 1000;
  tx->tick = 1000000 / kClockTicksPerSecond;
  tx->tai = 37;
  return TIME_OK;
}

}  // namespace

extern "C" {

int adjtimex(struct timex* tx) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(adjtimex)(tx);
  return ReadTimex(*scheduler, "adjtimex", CLOCK_REALTIME, tx);
}

int ntp_adjtime(struct timex* tx) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(ntp_adjtime)(tx);
  return ReadTimex(*scheduler, "ntp_adjtime", CLOCK_REALTIME, tx);
}

int clock_adjtime(clockid_t clock, struct timex* tx) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(clock_adjtime)(clock, tx);
  return ReadTimex(*scheduler, "clock_adjtime", clock, tx);
}

int ntp_gettimex(struct ntptimeval* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(ntp_gettimex)(out);
  std::memset(out, 0, sizeof(*out));
  out->time = absl::ToTimeval(pi::VirtualRealtime(*scheduler));
  out->tai = 37;
  return TIME_OK;
}

int timespec_get(struct timespec* out, int base) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(timespec_get)(out, base);
  if (base != TIME_UTC) return 0;  // glibc 2.36 knows TIME_UTC only.
  *out = pi::ReadClock(*scheduler, pi::ClockKind::kRealtime);
  return base;
}

int clock_getres(clockid_t clock, struct timespec* resolution) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(clock_getres)(clock, resolution);
  }
  if (pi::KindOf(clock) == pi::ClockKind::kInvalid) {
    errno = EINVAL;
    return -1;
  }
  if (resolution != nullptr) *resolution = timespec{0, 1};
  return 0;
}

int timespec_getres(struct timespec* resolution, int base) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(timespec_getres)(resolution, base);
  }
  if (base != TIME_UTC) return 0;
  if (resolution != nullptr) *resolution = timespec{0, 1};
  return base;
}

clock_t clock(void) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(clock)();
  // glibc: seconds * CLOCKS_PER_SEC + nanoseconds / (1e9 / CLOCKS_PER_SEC).
  const timespec cpu = pi::ReadClock(*scheduler, pi::ClockKind::kCpu);
  return static_cast<clock_t>(cpu.tv_sec * CLOCKS_PER_SEC +
                              cpu.tv_nsec / (1000000000 / CLOCKS_PER_SEC));
}

clock_t times(struct tms* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(times)(out);
  if (out != nullptr) {
    out->tms_utime = Ticks(CpuTime(*scheduler));
    out->tms_stime = 0;
    out->tms_cutime = 0;
    out->tms_cstime = 0;
  }
  // Linux counts from an arbitrary point; the host's monotonic clock is one.
  return Ticks(pi::VirtualMonotonic(*scheduler));
}

int getrusage(int who, struct rusage* usage) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) {
    return DSIM_REAL(getrusage)(who, usage);
  }
  if (who != RUSAGE_SELF && who != RUSAGE_THREAD && who != RUSAGE_CHILDREN) {
    errno = EINVAL;
    return -1;
  }
  if (usage == nullptr) {
    errno = EFAULT;
    return -1;
  }
  std::memset(usage, 0, sizeof(*usage));
  if (who != RUSAGE_CHILDREN) usage->ru_utime = absl::ToTimeval(CpuTime(*scheduler));
  return 0;
}

int ftime(struct timeb* out) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return real_ftime.get()(out);
  const timespec now = pi::ReadClock(*scheduler, pi::ClockKind::kRealtime);
  out->time = now.tv_sec;
  out->millitm = static_cast<unsigned short>(now.tv_nsec / 1000000);
  out->timezone = 0;
  out->dstflag = 0;
  return 0;
}

}  // extern "C"
