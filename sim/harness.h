// SeedSweep: run one simulation body under many seeds, inside a GoogleTest test, and
// when a seed fails, say how to get exactly that run back.
//
// Example:
//
//   TEST(Kv, Linearizable) {
//     dsim::SeedSweep sweep({.seeds = 200});
//     sweep.Run([](dsim::Simulation& sim) -> absl::Status {
//       // Owned by sim: it outlives the tasks that use it, which unwind only after
//       // the body has returned. (A plain local `Cluster cluster(sim);` would be
//       // destroyed first: a use-after-free when those tasks unwind.)
//       Cluster& cluster = sim.Make<Cluster>(sim);  // hosts, clients, faults
//       sim.Invariant("one leader", [&] { return cluster.Leaders() <= 1; });  // every step
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
// tasks, where the trace and the schedule were saved, one command that reruns exactly
// that seed, and one that replays its schedule:
//
//   FAIL seed=1234 strategy=random(seed=1234): stale read: got 3, want 4
//   ...
//   schedule: /tmp/dsim-schedules/tests_kv_test.Kv.Linearizable.k8-fastbuild.seed-1234.dsched (decisions 812, preemptions 31, context switches 97)
//   rerun: ./bazelw test //tests:kv_test --test_env=DSIM_SEED=1234 --test_filter=Kv.Linearizable
//   replay: ./bazelw test //tests:kv_test --test_env=DSIM_REPLAY=/tmp/dsim-schedules/tests_kv_test.Kv.Linearizable.k8-fastbuild.seed-1234.dsched --test_filter=Kv.Linearizable
//
// The report's events are those around the failure (a broken invariant's mark, or the
// end of the first failed run), runs of random draws collapsed; its blocked tasks name
// their hosts, and only a deadlock lists blocked daemon tasks. File names carry the
// Bazel target, the test, the build configuration (k8-opt-asan, ...), the strategy when
// DSIM_STRATEGY chose it, and the seed, so no other target or configuration overwrites
// them. The rerun and replay commands repeat the build flags (--config=asan, -c opt),
// every DSIM_* variable the test saw and SweepOptions::rerun_env.
//
// Seed or schedule? A seed reproduces a run only while the code stays the same: one
// more random draw anywhere and the seed explores another run. The schedule holds every
// decision of the failing run (task order, timer order, wakes, every random value), so
// replaying it gives that run back while the code still fits it, and says exactly where
// it stopped fitting (the decision, the step, the expected and the actual runnable
// set) when it does not. Keep the schedule of a bug you are fixing; rerun the seed to
// see the fix at work on the same seed.
//
// Schedules. A failing seed that gets a full report is run once more under a
// RecordingStrategy (schedule.h) around its strategy; the harness already reruns it for
// its traces, and both come from that one rerun. Determinism makes the rerun the
// failing run; the harness checks it (same event-stream fingerprint, fails again) and
// saves no schedule, with a warning, when it is not. Seeds are not recorded as they
// run: recording every decision costs about a third of a CPU-bound sweep's time
// (//bench:sim_bench, BM_SweepSerial: 143 ms -> 190 ms), and passing seeds would throw
// it away. The schedule is written as <file stem>.dsched (above), next to the traces:
//   - in TEST_UNDECLARED_OUTPUTS_DIR under Bazel. Bazel 4 zips that directory into
//     outputs.zip inside it when the test ends and deletes the files, so the report
//     names the zip (bazel-testlogs/<package>/<target>/test.outputs/outputs.zip);
//   - and in DSIM_SCHEDULE_DIR (default /tmp/dsim-schedules), a plain file that outlives
//     the test, which the replay command uses. Tests see the real /tmp under the
//     processwrapper sandbox this workspace uses; a sandbox that hides /tmp, or remote
//     execution (the executor's /tmp), loses the copy, so set DSIM_SCHEDULE_DIR=
//     (empty) there, and the replay command takes the schedule out of outputs.zip.
//
// Environment (read when the sweep runs):
//   DSIM_SEED=<n>               run only seed n.
//   DSIM_SEEDS=<n>              run n seeds (first_seed .. first_seed+n-1).
//   DSIM_STRATEGY=<spec>        scheduling strategy spec, as MakeStrategy accepts.
//                               guided:<file> follows a saved schedule where it still
//                               fits and the seed's random strategy elsewhere (to check
//                               a fix against the failing scenario); it runs the file's
//                               seed unless DSIM_SEED or DSIM_SEEDS is set.
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
//   DSIM_REPLAY=<file>          run one simulation, replaying the schedule in <file> (an
//                               absolute path under Bazel): the seed is the file's, every
//                               decision is the recorded one. If the program no longer
//                               fits the schedule, the seed fails with "replay diverged
//                               at decision i (step s, ...)": the expected versus the
//                               actual candidates. A program that ends making fewer
//                               decisions than recorded fails with "replay incomplete".
//                               Conflicts with DSIM_STRATEGY and with another DSIM_SEED.
//   DSIM_SHRINK=1               also shrink each reported failing seed's schedule
//                               (scheduler/shrink.h) by running the body again, up to
//                               SweepOptions::shrink_max_runs times, keeping only runs
//                               that fail the same way (same status code, same first
//                               line of the message with numbers masked). Saves
//                               <name>.seed-<n>.shrunk.dsched and the readable
//                               interleaving <name>.seed-<n>.shrunk.txt beside the
//                               schedule, prints preemptions before -> after and a
//                               replay command for the shrunk schedule. Each
//                               improvement is printed and saved as it is found, and
//                               shrinking stops at 80% of Bazel's TEST_TIMEOUT.
//   DSIM_SHRINK_RUNS=<n>        the shrinking budget (SweepOptions::shrink_max_runs).
//   DSIM_RECORD=0|1             save failing seeds' schedules (default 1). 0 spares
//                               the rerun that records them when no trace needs it.
//   DSIM_SCHEDULE_DIR=<dir>     the stable copy's directory (default
//                               /tmp/dsim-schedules); set but empty: no stable copy.
//   DSIM_EXPLORE=seeds|guided   plain seeds (default), or a guided search with the same
//                               budget (see "Guided mode" below).
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
// Guided mode. DSIM_EXPLORE=guided (or SweepOptions::exploration = kGuided) runs the
// same body under a guided search (sim/guided_search.h) instead of seed after seed: the
// budget is the sweep's seed count (DSIM_SEEDS), the search is seeded by the first seed
// (first_seed), and the same sweep gives the same sequence of runs. Each run replays a
// prefix of an earlier run's decisions and continues with a fresh seed, so its seed
// alone does not give it back: a failing run is reported like a failing seed (status,
// events, blocked tasks, coverage), its schedule (every decision, recorded as it ran) is
// saved, and the report's replay command (DSIM_REPLAY=<file>) reproduces it. Under Bazel
// sharding each shard runs its own guided search over its share of the budget, seeded
// by its own first seed (first_seed + shard index), so shards explore differently and
// each is deterministic. Runs are serial (DSIM_JOBS is ignored: each run's plan depends
// on the runs before it); DSIM_SEED or DSIM_REPLAY name one run, which runs as usual;
// DSIM_STRATEGY is an error with it; DSIM_CHECK_DETERMINISM=1 replays every run's
// recorded schedule and fails a run whose replay differs (event stream or result).
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
#include "sim/coverage.h"
#include "sim/guided_search.h"
#include "sim/simulation.h"

namespace dsim {

// Looks up an environment variable; nullopt when unset. Tests substitute their own.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view name)>;
EnvLookup ProcessEnv();

// The seeds of a sweep: `count` seeds from `first`, every `stride`-th (a shard's share),
// computed on demand, never stored, so a sweep of 2^32 seeds costs no memory for its
// list.
class SeedList {
 public:
  static SeedList Range(uint64_t first, uint64_t count) { return SeedList(first, count, 1); }
  static SeedList One(uint64_t seed) { return SeedList(seed, 1, 1); }
  SeedList() = default;

  uint64_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  // The seed at position i (i < size()).
  uint64_t operator[](uint64_t i) const { return first_ + i * stride_; }
  // Positions index, index + total, index + 2 * total, ...: one shard's share.
  SeedList Shard(uint64_t index, uint64_t total) const;

 private:
  SeedList(uint64_t first, uint64_t count, uint64_t stride)
      : first_(first), count_(count), stride_(stride) {}
  uint64_t first_ = 0;
  uint64_t count_ = 0;
  uint64_t stride_ = 1;
};

// The seeds a test should run, from DSIM_SEED (one seed) or DSIM_SEEDS (that many,
// from first_seed), else default_count from first_seed: the harness's own validated
// parsing, for tests that loop over seeds themselves. Garbage, 0, negative numbers, more
// than 2^32 seeds, or a range past 2^64 are InvalidArgument errors naming the variable;
// fail the test with them (a silent fallback would run no seed and pass).
absl::StatusOr<SeedList> SeedsFromEnvironment(uint64_t default_count, uint64_t first_seed = 1,
                                              const EnvLookup& env = nullptr);

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
  // Save the schedules of reported failing seeds (recorded in a rerun), for replay.
  // DSIM_RECORD overrides.
  bool record_schedules = true;
  // Shrink the schedules of reported failing seeds. DSIM_SHRINK overrides.
  bool shrink = false;
  // Body runs one seed's shrinking may spend (a bound: shrinking reruns the body).
  int shrink_max_runs = 1000;
  // The failing seeds' schedules are also saved here, outside Bazel's zipped outputs;
  // "" for nowhere. DSIM_SCHEDULE_DIR overrides.
  std::string schedule_dir = "/tmp/dsim-schedules";
  // Name for the rerun command's test filter when not inside a GoogleTest test.
  std::string test_name;
  // Environment variables of the test's own (--test_env) that its rerun and replay
  // commands must set again, beyond the DSIM_* ones, which are always kept.
  std::vector<std::string> rerun_env;
  // How reruns invoke Bazel. Empty: DSIM_BAZEL, else "./bazelw" in this workspace
  // (TEST_WORKSPACE=dsim), else "bazel".
  std::string bazel_command;
  // Where to read the environment. Null means the process environment.
  EnvLookup env;
  // How the sweep chooses its runs. kSeeds: one run per seed of the list. kGuided: a
  // guided search (sim/guided_search.h) with the same budget, so an ordinary sweep can
  // be run under it without a code change. DSIM_EXPLORE=seeds|guided overrides. See
  // "Guided mode" at the top of this file.
  enum class Exploration { kSeeds, kGuided };
  Exploration exploration = Exploration::kSeeds;
  // The guided mode's tuning; its sweep_seed, budget_runs, simulation,
  // stop_at_failure and fail_on_failed_run are the sweep's own (ignored here).
  GuidedSearchOptions guided;
  // The coverage report at the end of the sweep (sim/coverage.h): printed to `log`,
  // and written as JSON to TEST_UNDECLARED_OUTPUTS_DIR as
  // dsim_coverage.<test>[.shard-<i>-of-<k>].json. DSIM_COVERAGE_FAIL=1 sets
  // fail_on_never_hit.
  CoverageOptions coverage;
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
  // Where the failing run's schedule was saved for replay (the stable copy if there is
  // one), and its shrunk form under DSIM_SHRINK; "" when not saved.
  std::string schedule_path;
  std::string shrunk_schedule_path;
  // What the run reached: assertion and BUGGIFY sites, fault kinds.
  RunCoverage coverage;
};

struct SweepResult {
  // Seeds this process ran (this shard's share), in seed-list order. Sweeps of more
  // than kMaxKeptOutcomes seeds keep only the failing seeds' outcomes here.
  std::vector<SeedOutcome> outcomes;
  static constexpr uint64_t kMaxKeptOutcomes = uint64_t{1} << 20;
  uint64_t seeds_run = 0;        // By this process (outcomes.size() unless trimmed).
  std::vector<uint64_t> failed_seeds;
  uint64_t total_seeds = 0;      // In the whole sweep, over all shards.
  int shard_index = 0;
  int total_shards = 1;          // Shards the seeds were split over (1: not split).
  int jobs = 1;
  double wall_seconds = 0;
  absl::Status config_error;     // A bad environment variable, or a bad spec.
  SweepCoverage coverage;        // Over this shard's seeds.
  // The runs were a guided search (DSIM_EXPLORE=guided): seeds_run counts its runs,
  // failed_seeds and outcomes' seeds are the runs' fresh seeds.
  bool guided = false;
  std::vector<std::string> never_hit;  // Sites no seed of this shard hit.
  // Set when CoverageOptions::fail_on_never_hit and a site was never hit.
  absl::Status coverage_error;

  bool ok() const { return config_error.ok() && failed_seeds.empty() && coverage_error.ok(); }
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
