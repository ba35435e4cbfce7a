// HostClock: a simulated machine's own clocks, which disagree with true virtual time.
//
// Every scheduler has one true virtual clock (Scheduler::Now()). A host (a group of
// tasks) may also have a HostClock: an offset and a drift rate against true time, and
// NTP-style steps. Task code on that host sees the host's clocks:
//   - dsim::Now()           the host's wall clock (CLOCK_REALTIME): true time scaled by
//                           (1 + drift), plus an offset, plus every step so far. Steps
//                           move it forwards or backwards.
//   - dsim::MonotonicNow()  the host's CLOCK_MONOTONIC: time since the host booted, at
//                           the drifted rate; steps never move it, so it never goes
//                           backwards. It restarts from zero when the host reboots.
//   - dsim::SleepFor(d), WaitWithTimeout(d), ...   last d of the host's time: d/(1+drift)
//                           of true time.
//   - dsim::SleepUntil(t), WaitWithDeadline(t), ...   end when the host's wall clock
//                           reads t. A step of the clock during the wait moves the wait with
//                           it, as Linux moves absolute CLOCK_REALTIME timers (see
//                           Scheduler::TrueTimeOfRealtimeDeadline). Socket deadlines
//                           (SetReadDeadline) are converted to true time when set.
//   - relative timeouts (poll, SO_RCVTIMEO, futex, epoll_wait, TCP timers, ...) last their
//                           duration on the host's clock and ignore steps (CLOCK_MONOTONIC).
// Code that is not on a host (the test driver, models, the network) sees true time.
//
// Example (sim/simulation.h sets clocks up from SimulationOptions::clocks; by hand):
//
//   dsim::HostClock clock(scheduler.Now());
//   clock.SetDrift(true_now, /*drift_ppb=*/100'000);   // runs 100 ppm fast
//   scheduler.SetGroupClock(group, &clock);            // tasks of `group` see it
//   ...
//   clock.Step(scheduler.Now(), absl::Seconds(-2));    // an NTP step backwards,
//   scheduler.GroupClockChanged(group);                // which moves REALTIME waits
//
// Arithmetic is integer nanoseconds (128-bit intermediates); drift is in parts per
// billion, so every conversion is exact and the same on every machine.
#ifndef DSIM_SCHEDULER_CLOCK_H_
#define DSIM_SCHEDULER_CLOCK_H_

#include <cstdint>

#include "absl/time/time.h"

namespace dsim {

class HostClock {
 public:
  // A clock that agrees with true time, booted (monotonic zero) at `true_boot`.
  explicit HostClock(absl::Time true_boot)
      : anchor_true_(true_boot), anchor_wall_(true_boot) {}

  // Sets the drift from `true_now` on (earlier readings stay as they were).
  void SetDrift(absl::Time true_now, int64_t drift_ppb);
  // Adds `offset` to the wall clock (an initial skew, or an NTP step) at `true_now`.
  void Step(absl::Time true_now, absl::Duration offset);
  // The monotonic clock restarts from zero (a reboot) at `true_now`.
  void Reboot(absl::Time true_now);

  int64_t drift_ppb() const { return drift_ppb_; }
  // Wall-clock reading minus true time, at `true_now`.
  absl::Duration OffsetAt(absl::Time true_now) const { return WallAt(true_now) - true_now; }

  // The wall clock (CLOCK_REALTIME) at true time `true_now`.
  absl::Time WallAt(absl::Time true_now) const;
  // The monotonic clock (time since boot) at true time `true_now`.
  absl::Duration MonotonicAt(absl::Time true_now) const;
  // The earliest true time, not before `true_now`, at which the wall clock reads at
  // least `wall` (InfiniteFuture stays infinite).
  absl::Time TrueTimeOfWall(absl::Time wall, absl::Time true_now) const;
  // True time that passes while this clock measures `local` (rounded up).
  absl::Duration TrueDuration(absl::Duration local) const;
  // What this clock measures while `true_duration` of true time passes at the current
  // drift (rounded down, so LocalDuration(TrueDuration(d)) >= d).
  absl::Duration LocalDuration(absl::Duration true_duration) const;

 private:
  // Local nanoseconds elapsed for `true_ns` true nanoseconds at the current drift.
  int64_t Scale(int64_t true_ns) const;
  // Re-anchors at `true_now` so that a change of drift applies only from there.
  void Anchor(absl::Time true_now);

  absl::Time anchor_true_;
  absl::Time anchor_wall_;
  absl::Duration anchor_monotonic_ = absl::ZeroDuration();
  int64_t drift_ppb_ = 0;
};

}  // namespace dsim

#endif  // DSIM_SCHEDULER_CLOCK_H_
