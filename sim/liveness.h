// The liveness phase: after the faults, heal everything and require progress.
//
// Safety checks ("never two leaders") pass in a system that is stuck. A liveness
// phase catches that: once the fault phase of a run is over, heal the cluster (or a
// chosen core of it), stop injecting faults, and require that the system makes
// progress within a bound of virtual time. TigerBeetle's simulator found a view-change
// livelock this way.
//
// Example:
//
//   sweep.Run([](dsim::Simulation& sim) -> absl::Status {
//     Cluster cluster(sim);
//     sim.RunFor(absl::Seconds(30));                        // the fault phase
//     const int64_t committed = cluster.committed();
//     return dsim::RunLivenessPhase(sim, {
//         .progress = [&] { return cluster.committed() > committed; },
//         .within = absl::Seconds(10)});
//   });
//
// What "heal" does, in order: every partition is healed; every hold between hosts is
// released; paused hosts resume; crashed hosts restart (restart_crashed); then
// Simulation::StopFaults(): no more packet faults, buggify or clock jumps. With a `core`,
// only core hosts are resumed and restarted, and the others are partitioned away from
// the core for the rest of the phase: progress must come from the core alone.
//
// Then the simulation runs, checking `progress` every `check_interval` of virtual time.
// If it does not hold within `within`, the result is DeadlineExceeded:
//   no progress within 10s after heal
//   trace of the liveness phase (last 40 of 1204 events):
//     #5210 +30.000000000s ...
// A run that fails otherwise (a deadlock, a task failure) returns that failure.
#ifndef DSIM_SIM_LIVENESS_H_
#define DSIM_SIM_LIVENESS_H_

#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "sim/simulation.h"

namespace dsim {

struct LivenessOptions {
  // True once the system made the progress required. Called between runs (not from a
  // task); it may read test-side state.
  std::function<bool()> progress;
  // How much virtual time after the heal progress may take.
  absl::Duration within = absl::Seconds(10);
  absl::Duration check_interval = absl::Milliseconds(10);
  // The hosts to heal; empty: all of them.
  std::vector<HostId> core;
  bool restart_crashed = true;
  // Trace events shown in a failure.
  size_t trace_events = 40;
};

absl::Status RunLivenessPhase(Simulation& sim, const LivenessOptions& options);

}  // namespace dsim

#endif  // DSIM_SIM_LIVENESS_H_
