// SeedSweep: run one simulation body under many seeds, inside a GoogleTest test, and
// when a seed fails, say how to get exactly that run back.
//
// Example:
//
//   TEST(Kv, Linearizable) {
//     dsim::SeedSweep sweep({.seeds = 200});
//     sweep.Run([](dsim::Simulation& sim) -> absl::Status {
//       Cluster cluster(sim);                       // hosts, clients, faults
//       dsim::RunResult result = sim.RunFor(absl::Seconds(30));
//       if (!result.ok()) return result.status();
//       return cluster.CheckLinearizable();         // OkStatus, or what went wrong
//     });
//   }
//
// Each seed gets a fresh Simulation built from SweepOptions::simulation with that seed.
// A seed fails when the body returns an error, throws, or (unless
// fail_on_failed_run is off) any Run/RunFor/RunUntil of the simulation ended in a
// deadlock, a limit or a task failure. For each failing seed the test fails with a
// report: the seed and strategy, the virtual time, the last trace events, the blocked
// tasks, where the trace was saved, and one command that reruns exactly that seed:
//
//   FAIL seed=1234 strategy=random(seed=1234): stale read: got 3, want 4
//   ...
//   rerun: ./bazelw test //tests:kv_test --test_env=DSIM_SEED=1234 --test_filter=Kv.Linearizable
//
// Environment (read when the sweep runs):
//   DSIM_SEED=<n>               run only seed n.
//   DSIM_SEEDS=<n>              run n seeds (first_seed .. first_seed+n-1).
//   DSIM_STRATEGY=<spec>        scheduling strategy spec, as MakeStrategy accepts.
//   DSIM_CHECK_DETERMINISM=1    run every seed twice and compare the fingerprints of the
//                               full event streams; a mismatch fails the seed and names
//                               the first divergent event, its virtual time and task.
//   DSIM_TRACE=<path>           write a trace: .json gives Chrome/Perfetto JSON, anything
//                               else text. With one seed, that seed's trace at <path>;
//                               with several, each failing seed's at <path> with
//                               ".seed-<n>" before the extension.
//   DSIM_JOBS=<n>               run seeds on n OS threads (0: one per core).
//   DSIM_PROGRESS=0|1           force the progress line off or on (default: on when
//                               stderr is a terminal and the sweep takes over a second).
//
// Bazel. The sweep honours the test sharding protocol: with TEST_TOTAL_SHARDS=k, shard
// i runs the seeds at positions i, i+k, i+2k, ... of the seed list, and touches
// TEST_SHARD_STATUS_FILE. GoogleTest shards *test cases* by the same numbers (Bazel
// exports them as GTEST_TOTAL_SHARDS/GTEST_SHARD_INDEX), and would run the sweep in
// only one shard. Link //sim:harness_main instead of gtest_main: it turns gtest's
// sharding off so every shard runs every test, and the sweeps split their seeds. If
// gtest does shard the test cases (plain gtest_main), a sweep runs all its seeds in the
// one shard gtest gives it. Either way, each seed runs exactly once. Failing seeds'
// traces are saved in TEST_UNDECLARED_OUTPUTS_DIR (test.outputs/ under bazel-testlogs).
//
// Parallel mode (jobs > 1) runs seeds on several OS threads. This is sound because
// simulations share no state; the body must not share mutable state between seeds
// either (build everything inside it, capture only constants). Results and reports are
// identical to a serial sweep and are reported in seed order.
#ifndef DSIM_SIM_HARNESS_H_
#define DSIM_SIM_HARNESS_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "sim/simulation.h"

namespace dsim {

// Looks up an environment variable; nullopt when unset. Tests substitute their own.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view name)>;
EnvLookup ProcessEnv();

struct SweepOptions {
  // How many seeds, and the first. DSIM_SEEDS and DSIM_SEED override.
  uint64_t seeds = 100;
  uint64_t first_seed = 1;
  // The template of every seed's simulation; `seed` is replaced per seed. The strategy
  // must be a spec (a strategy object cannot be shared by seeds); DSIM_STRATEGY
  // overrides it.
  SimulationOptions simulation;
  // OS threads; 0 means one per core. DSIM_JOBS overrides.
  int jobs = 1;
  // DSIM_CHECK_DETERMINISM=1 turns it on.
  bool check_determinism = false;
  // Fail a seed whose simulation had a run that was not ok(), even if the body
  // returned OkStatus.
  bool fail_on_failed_run = true;
  // Stop starting new seeds after this many failures; 0 means run every seed. (In
  // parallel mode, seeds already running still finish.)
  uint64_t stop_after_failures = 0;
  // Full reports for the first this many failing seeds; the rest are listed.
  size_t detailed_failures = 5;
  // Trace events shown in a failure report.
  size_t summary_events = 20;
  // Report each failure as a GoogleTest failure (ADD_FAILURE) when inside a test.
  // Otherwise, or when off, reports go to `log`.
  bool report_to_gtest = true;
  std::ostream* log = nullptr;  // Null means std::cerr.
  // Name for the rerun command's test filter when not inside a GoogleTest test.
  std::string test_name;
  // How reruns invoke Bazel. Empty: DSIM_BAZEL, else "./bazelw" in this workspace
  // (TEST_WORKSPACE=dsim), else "bazel".
  std::string bazel_command;
  // Where to read the environment. Null means the process environment.
  EnvLookup env;
};

// One seed's result.
struct SeedOutcome {
  uint64_t seed = 0;
  absl::Status status;           // OK, or why the seed failed.
  uint64_t fingerprint = 0;      // Of the whole event stream.
  uint64_t events = 0;
  uint64_t steps = 0;
  int64_t end_time_ns = 0;       // Virtual time when the body returned.
  std::string strategy;          // Description, e.g. "random(seed=7)".
  bool nondeterministic = false; // The determinism check found two runs differing.
  std::string report;            // Failure report (empty for a passing seed).
};

struct SweepResult {
  // Seeds this process ran (this shard's share), in seed-list order.
  std::vector<SeedOutcome> outcomes;
  std::vector<uint64_t> failed_seeds;
  uint64_t total_seeds = 0;      // In the whole sweep, over all shards.
  int shard_index = 0;
  int total_shards = 1;          // Shards the seeds were split over (1: not split).
  int jobs = 1;
  double wall_seconds = 0;
  absl::Status config_error;     // A bad environment variable, or a bad spec.

  bool ok() const { return config_error.ok() && failed_seeds.empty(); }
};

class SeedSweep {
 public:
  // Returns OkStatus when the seed passes; anything else is the failure message.
  using Body = std::function<absl::Status(Simulation&)>;

  explicit SeedSweep(SweepOptions options = {});

  // Runs the body for this shard's seeds and reports failures. Returns every outcome.
  SweepResult Run(const Body& body);

 private:
  SweepOptions options_;
};

// Makes sweeps, not GoogleTest, split work across Bazel test shards: if
// TEST_TOTAL_SHARDS is set, removes GTEST_TOTAL_SHARDS and GTEST_SHARD_INDEX from the
// environment (so every shard runs every test) and touches TEST_SHARD_STATUS_FILE.
// Call at the top of main(), before InitGoogleTest and before any thread starts;
// //sim:harness_main does.
void TakeOverTestSharding();

}  // namespace dsim

#endif  // DSIM_SIM_HARNESS_H_
