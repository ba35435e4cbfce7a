// Swarm faults and swizzle-clogging.
//
// Swarm testing (TigerBeetle's simulator): instead of one fault mix for every seed, each
// seed draws its own: which fault kinds are on, their rates and their magnitudes, from
// bounded ranges. A sweep then covers runs with only packet loss, runs with only clock
// drift and a clogged host, runs with everything at once, ... and a bug that hides when
// every fault is on together gets its seeds too.
//
// Example:
//
//   dsim::SimulationOptions options;
//   options.faults.swarm.enabled = true;            // defaults: every kind, bounded
//   options.faults.swarm.datagram_loss_max = 0.3;   // tighten or widen a range
//   dsim::SweepOptions sweep{.seeds = 500, .simulation = options};
//   // A failing seed's report prints its draw:
//   //   swarm: datagram_loss=0.1042 duplicate=0.0392 reorder=0.0288 segment_loss=off
//   //          latency=off tail=0.0276x[20ms,200ms] buggify=on clock_drift=+-467ppm
//   //          clock_jumps=2 swizzle=at 402.279721ms
//
// Each kind is a "fault.swarm.<kind>" decision (0: off), so shrinking turns kinds off;
// rates and magnitudes come from random(). Drawn when the Simulation is built, before any
// host exists, so the draw is the same for every body.
//
// Swizzle-clogging (FoundationDB's most productive network fault): pick a random subset
// of the hosts, clog them one by one (every packet to and from a clogged host is held),
// then unclog them in a random order. Held packets are delivered at the unclog, so
// streams stall and resume intact. SwizzleClog runs it once from a task; the swarm runs
// it on a daemon task "swarm/swizzle" when it draws swizzle=on.
#ifndef DSIM_SIM_SWARM_H_
#define DSIM_SIM_SWARM_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace dsim {

class Scheduler;
class Simulation;
struct SimulationOptions;

struct SwarmOptions {
  bool enabled = false;
  // Each kind is on with probability 1/2; when on, its rate is uniform in (0, max].
  double datagram_loss_max = 0.2;
  double datagram_duplicate_max = 0.1;
  double datagram_reorder_max = 0.2;
  double segment_loss_max = 0.1;
  // Latency: exponential with a mean uniform in (0, latency_mean_max], over 100 us.
  absl::Duration latency_mean_max = absl::Milliseconds(5);
  // A rare tail: probability in (0, tail_probability_max], extra up to tail_max.
  double tail_probability_max = 0.05;
  absl::Duration tail_max = absl::Milliseconds(200);
  // Network buggify (short reads and writes, stretched latencies).
  bool network_buggify = true;
  // Clocks: drift in [-max, max] per host, and up to clock_jumps_max steps.
  int64_t clock_drift_ppm_max = 500;
  int clock_jumps_max = 2;
  absl::Duration clock_jump_max = absl::Seconds(1);
  absl::Duration clock_jump_window = absl::Seconds(10);
  // Swizzle-clogging on a daemon task.
  bool swizzle = true;
  absl::Duration swizzle_start_max = absl::Seconds(5);
  absl::Duration swizzle_clog_gap_max = absl::Milliseconds(500);
  absl::Duration swizzle_hold_max = absl::Seconds(3);
};

struct SwizzleOptions {
  // Delay between clogging one host and the next, and between unclogs: uniform in
  // [0, gap_max].
  absl::Duration gap_max = absl::Milliseconds(500);
  // How long every chosen host stays clogged after the last clog: uniform in
  // [0, hold_max].
  absl::Duration hold_max = absl::Seconds(3);
};

// Runs one swizzle-clog from the calling task (blocks for its duration). Hosts without
// addresses are skipped. Annotated "fault.swizzle" (and "fault.hold" per link).
// Returns early, releasing everything it holds, once StopSwizzle was called.
void SwizzleClog(Simulation& sim, const SwizzleOptions& options = {});

namespace internal {
struct SwarmDraw {
  std::string description;  // For failure reports.
  bool swizzle = false;
  absl::Duration swizzle_start;
  SwizzleOptions swizzle_options;
};
// Draws the seed's swarm configuration into `options` (its faults, clocks and buggify)
// through `scheduler`'s strategy.
SwarmDraw DrawSwarm(Scheduler& scheduler, SimulationOptions& options);
}  // namespace internal

}  // namespace dsim

#endif  // DSIM_SIM_SWARM_H_
