// The virtual clocks behind clock_gettime and friends, in one place. They are the
// calling task's host clocks (scheduler/clock.h: skew, drift, steps), and every
// deadline they give (InstantOf) is converted to true virtual time for the waits.
//
// CLOCK_REALTIME is dsim::Now(), the host's wall clock (2000-01-01 00:00:00 UTC at the
// start of every simulation on a host without skew). CLOCK_MONOTONIC, its COARSE and RAW
// variants and CLOCK_BOOTTIME read the host's monotonic clock (dsim::MonotonicNow():
// drifted rate, never stepped) plus kMonotonicAtEpoch (an imaginary boot before the
// epoch, not zero, so code that treats 0 as "unset" still works). CLOCK_TAI is
// REALTIME + 37 s. CPU-time clocks read the virtual time elapsed since the simulation
// began: tasks take no virtual time to compute, so no better answer exists, and this
// one is deterministic and monotonic.
#ifndef DSIM_POSIX_INTERNAL_CLOCK_H_
#define DSIM_POSIX_INTERNAL_CLOCK_H_

#include <time.h>

#include "absl/time/time.h"
#include "scheduler/scheduler.h"

namespace dsim::posix::internal {

inline constexpr absl::Duration kMonotonicAtEpoch = absl::Hours(1);

enum class ClockKind { kRealtime, kMonotonic, kTai, kCpu, kInvalid };
ClockKind KindOf(clockid_t clock);

// The virtual reading of `clock` now. Requires a valid clock.
absl::Time VirtualRealtime(Scheduler& scheduler);
absl::Duration VirtualMonotonic(Scheduler& scheduler);
timespec ReadClock(Scheduler& scheduler, ClockKind kind);
// The true virtual instant at which `clock` reads `value` (for absolute deadlines).
// With `for_wait`, a REALTIME or TAI deadline is one the calling task is about to block
// on: a step of its host's clock during the wait moves it, as in Linux
// (Scheduler::TrueTimeOfRealtimeDeadline). MONOTONIC deadlines never move.
absl::Time InstantOf(Scheduler& scheduler, ClockKind kind, const timespec& value,
                     bool for_wait = true);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_CLOCK_H_
