// Clock faults: hosts whose clocks disagree with true virtual time and with each other.
//
// Example:
//
//   dsim::SimulationOptions options{.seed = 7};
//   options.clocks.random_drift_ppm_max = 200;            // each host: drift in +-200 ppm
//   options.clocks.random_offset_max = absl::Milliseconds(50);
//   options.clocks.fixed.push_back({.host = "kv1", .offset = absl::Seconds(-1)});
//   options.clocks.jumps_max = 2;                         // NTP steps at seed-chosen times
//   options.clocks.jump_max = absl::Seconds(1);
//   dsim::Simulation sim(options);
//   ...
//   sim.StepClock(host.id(), absl::Seconds(-5));          // or drive a step by hand
//
// What a host's tasks then see is described in scheduler/clock.h: dsim::Now() is the
// host's wall clock (offset, drift, steps), dsim::MonotonicNow() its monotonic clock
// (drift only, never backwards, zero at each boot), and their sleeps, timeouts and
// deadlines are measured on the host's clock. A clock survives crashes (it is the
// machine's), and its monotonic clock restarts at every Restart.
//
// Decisions. When a host is added: its random offset ("fault.clock.offset") and drift
// ("fault.clock.drift") are ChooseValue decisions whose 0 means none (zig-zag coded:
// 1 -> +1, 2 -> -1, ...), so shrinking moves them towards agreement; the number of
// jumps ("fault.clock.jumps", 0 none) likewise, and each jump's time and size come from
// random(). Skews are annotated "fault.clock.skew", each step "fault.clock.jump".
// With every option at its default, hosts read true time and nothing is drawn.
#ifndef DSIM_SIM_CLOCK_FAULTS_H_
#define DSIM_SIM_CLOCK_FAULTS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "scheduler/clock.h"

namespace dsim {

struct HostClockSkew {
  std::string host;                                 // Host name.
  absl::Duration offset = absl::ZeroDuration();     // Wall clock minus true time.
  int64_t drift_ppm = 0;                            // Positive: the clock runs fast.
};

struct ClockFaultOptions {
  // Fixed skews by host name (added to any random skew).
  std::vector<HostClockSkew> fixed;
  // Each host's offset is uniform in [-random_offset_max, +random_offset_max].
  absl::Duration random_offset_max = absl::ZeroDuration();
  // Each host's drift is uniform in [-random_drift_ppm_max, +random_drift_ppm_max] ppm.
  int64_t random_drift_ppm_max = 0;
  // Each host gets 0 .. jumps_max wall-clock steps, at uniform times in
  // (0, jump_window] after it is added, each of a size uniform in [-jump_max, jump_max].
  int jumps_max = 0;
  absl::Duration jump_window = absl::Seconds(10);
  absl::Duration jump_max = absl::Seconds(1);

  // Whether any option is set (hosts then get clocks when they are added).
  bool any() const;
  void Validate() const;
};

// "+1.5ms", "-200ppm": for annotations and reports.
std::string FormatClockSkew(absl::Duration offset, int64_t drift_ppb);

}  // namespace dsim

#endif  // DSIM_SIM_CLOCK_FAULTS_H_
