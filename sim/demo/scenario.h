// The demo scenario: a replicated key-value store (sim/demo/kv_store.h) on three
// replica hosts, two client hosts issuing reads and writes, and a fault schedule drawn
// from the seed: packet delay on every link, a partition that heals, and a replica
// that crashes and restarts. After the run, the clients' history is checked for
// linearizability, one register per key (sim/demo/history.h, check/linearizability.h).
//
// Example:
//
//   dsim::demo::DemoResult result = dsim::demo::RunDemo({.seed = 7, .bug = true});
//   std::cout << result.summary;        // a few deterministic lines, ending PASS or FAIL
//   if (!result.status.ok()) { ... }    // e.g. "not linearizable: key "x": process 2 read ..."
//
// Or inside a SeedSweep (sim/harness.h), whose simulations must be built with
// DemoSimulationOptions:
//
//   dsim::SweepOptions sweep{.seeds = 200,
//                            .simulation = dsim::demo::DemoSimulationOptions({})};
//   dsim::SeedSweep(sweep).Run([](dsim::Simulation& sim) {
//     return dsim::demo::RunDemoScenario(sim, {.bug = true}).status;
//   });
//
// Determinism: everything random (workload, faults, latencies, interleavings) is drawn
// from the simulation's strategy, so a seed gives the same run, the same summary and
// the same trace fingerprint every time, on any machine.
#ifndef DSIM_SIM_DEMO_SCENARIO_H_
#define DSIM_SIM_DEMO_SCENARIO_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "check/history.h"
#include "sim/simulation.h"

namespace dsim::demo {

struct DemoOptions {
  uint64_t seed = 1;
  // Turns on the planted bug (ClientOptions::fast_reads).
  bool bug = false;
  // Where to write the run's trace: ".json" gives Chrome/Perfetto JSON, anything else
  // text. Empty: no trace file (the fingerprint is computed anyway).
  std::string trace_path;
  // Reads and writes each client makes.
  int operations_per_client = 30;
};

struct DemoResult {
  uint64_t seed = 0;
  // OK, or why the seed failed: a history that is not linearizable, or a run that did
  // not finish.
  absl::Status status;
  // What `//sim:demo --seed=N` prints: a few lines, the last `PASS seed=N` or
  // `FAIL seed=N <reason>`.
  std::string summary;
  // `FAIL seed=N <reason>` (first line of the reason), or "" when the seed passed.
  std::string fail_line;
  uint64_t trace_fingerprint = 0;
  absl::Duration virtual_time;  // From the epoch to the end of the run.
  int operations_ok = 0;
  int operations_unavailable = 0;
  int faults = 0;
  uint64_t packets = 0;
  // The clients' history as the checker saw it (Jepsen's form; ToEdn() for
  // //sim:check_history), and when it is not linearizable, the checker's HTML page
  // (check/html.h). Under a SeedSweep both are attached to the failure report too.
  check::History history;
  std::string html;
};

// The SimulationOptions of a demo run: the seed, the network's latency model, and a
// virtual-time limit that turns a hang into a failure.
SimulationOptions DemoSimulationOptions(const DemoOptions& options);

// Builds the cluster in `sim` (which must be fresh and built from
// DemoSimulationOptions), runs it until the clients are done, and checks the history.
// Ignores options.seed and options.trace_path: `sim` has its seed, the caller its trace.
DemoResult RunDemoScenario(Simulation& sim, const DemoOptions& options);

// A whole demo run: a fresh Simulation for options.seed, RunDemoScenario, and the
// trace file if asked for.
DemoResult RunDemo(const DemoOptions& options);

// RunDemo for `seeds` seeds from options.seed on, on `jobs` OS threads (0: one per
// core). Simulations share no state, so seeds may run in parallel; the results come
// back in seed order, identical whatever `jobs` is. options.trace_path must be empty.
std::vector<DemoResult> RunDemoSeeds(const DemoOptions& options, uint64_t seeds, int jobs);

}  // namespace dsim::demo

#endif  // DSIM_SIM_DEMO_SCENARIO_H_
