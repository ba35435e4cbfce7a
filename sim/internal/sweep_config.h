// SweepConfig: what a SeedSweep will do, resolved from SweepOptions and the
// environment (DSIM_*, and Bazel's TEST_* variables). No side effects (it only reads
// the environment and, for DSIM_REPLAY, the schedule file), so tests can feed it any
// environment.
#ifndef DSIM_SIM_INTERNAL_SWEEP_CONFIG_H_
#define DSIM_SIM_INTERNAL_SWEEP_CONFIG_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler/schedule.h"
#include "sim/harness.h"

namespace dsim::internal {

struct SweepConfig {
  SeedList all_seeds;    // The whole sweep, over every shard.
  SeedList shard_seeds;  // The ones this process runs.
  std::string strategy;               // Spec.
  bool strategy_from_env = false;
  bool check_determinism = false;
  std::string trace_path;             // DSIM_TRACE, or "".
  int jobs = 1;
  int shard_index = 0;
  int total_shards = 1;               // Bazel's shard count (1: unsharded).
  bool split_seeds = false;           // Whether this sweep splits seeds over shards.
  std::string shard_status_file;
  std::string test_target;            // TEST_TARGET, e.g. "//tests:kv_test".
  std::string outputs_dir;            // TEST_UNDECLARED_OUTPUTS_DIR.
  std::string bazel_command;
  // The build this binary came from: "k8-fastbuild", "k8-opt-asan", ... ("" when
  // unknown), and the Bazel flags that rebuild it ("--config=asan", "-c opt").
  std::string build_config;
  std::vector<std::string> build_flags;
  // The test's own environment to keep in rerun and replay commands ("DSIM_SHRINK=1"):
  // every DSIM_* variable the sweep does not set itself, and SweepOptions::rerun_env.
  std::vector<std::string> kept_env;
  std::optional<bool> progress;       // DSIM_PROGRESS, when set.
  // Record reported failing seeds' schedules (in a rerun). DSIM_RECORD.
  bool record = true;
  // Shrink failing seeds' schedules. DSIM_SHRINK.
  bool shrink = false;
  int shrink_max_runs = 1000;  // DSIM_SHRINK_RUNS, else SweepOptions::shrink_max_runs.
  // Bazel's TEST_TIMEOUT in seconds, 0 when not under Bazel: shrinking stops in time.
  int test_timeout_seconds = 0;
  // A stable directory for failing seeds' schedules, outside Bazel's zipped outputs;
  // "" for none. DSIM_SCHEDULE_DIR.
  std::string schedule_dir;
  // DSIM_REPLAY: the schedule file, loaded; then the sweep is that one run.
  std::string replay_path;
  std::shared_ptr<const Schedule> replay;
  // DSIM_EXPLORE=guided (or SweepOptions::exploration): this shard's runs are a guided
  // search of shard_seeds.size() runs, seeded by shard_seeds[0].
  bool guided = false;
};

// DSIM_SEED / DSIM_SEEDS over `count` seeds from `first`, validated.
absl::StatusOr<SeedList> ResolveSeedList(uint64_t count, uint64_t first, const EnvLookup& env);

absl::StatusOr<SweepConfig> ResolveSweepConfig(const SweepOptions& options,
                                               const EnvLookup& env);

// "./bazelw test //t:x --test_env=DSIM_SEED=7 --test_filter=A.B", or, outside Bazel,
// "DSIM_SEED=7 /path/to/binary --gtest_filter=A.B".
std::string RerunCommand(const SweepConfig& config, uint64_t seed,
                         const std::string& test_filter, bool check_determinism);

// As RerunCommand, replaying a schedule file (which must be an absolute path when the
// command runs under Bazel: tests run in their runfiles directory).
std::string ReplayCommand(const SweepConfig& config, const std::string& schedule_path,
                          const std::string& test_filter);

// Where Bazel leaves the undeclared outputs once the test ends: it zips the directory
// into outputs.zip inside it and deletes the files. Given TEST_UNDECLARED_OUTPUTS_DIR,
// the zip as a workspace path ("bazel-testlogs/t/x/test.outputs/outputs.zip") when the
// directory is under a testlogs tree, else the absolute path of the zip.
std::string OutputsZipPath(const std::string& outputs_dir);

// The build configuration of this binary: from the output directory in its path
// (bazel-out/k8-opt/...) and the sanitizer it was compiled with.
struct BuildConfiguration {
  std::string name;                 // "k8-opt-asan"; "" when unknown.
  std::vector<std::string> flags;   // "-c opt", "--config=asan".
};
BuildConfiguration DetectBuildConfiguration(const std::string& binary_path);

// The start of every file name of a failing seed, unique per target, test, build
// configuration, strategy (when DSIM_STRATEGY chose it) and seed:
// "tests_kv_test.Kv.Linearizable.k8-opt-asan.seed-7".
std::string FileStem(const SweepConfig& config, const std::string& test_name, uint64_t seed);

// Quotes a word for a POSIX shell when it needs it.
std::string ShellWord(absl::string_view word);

// `path` with ".seed-<n>" inserted before its extension: "t.json" -> "t.seed-7.json".
std::string PathForSeed(const std::string& path, uint64_t seed);

}  // namespace dsim::internal

#endif  // DSIM_SIM_INTERNAL_SWEEP_CONFIG_H_
