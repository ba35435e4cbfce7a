// SweepConfig: what a SeedSweep will do, resolved from SweepOptions and the
// environment (DSIM_*, and Bazel's TEST_* variables). Pure: no side effects, so tests
// can feed it any environment.
#ifndef DSIM_SIM_INTERNAL_SWEEP_CONFIG_H_
#define DSIM_SIM_INTERNAL_SWEEP_CONFIG_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sim/harness.h"

namespace dsim::internal {

struct SweepConfig {
  std::vector<uint64_t> all_seeds;    // The whole sweep, over every shard.
  std::vector<uint64_t> shard_seeds;  // The ones this process runs.
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
  std::optional<bool> progress;       // DSIM_PROGRESS, when set.
};

absl::StatusOr<SweepConfig> ResolveSweepConfig(const SweepOptions& options,
                                               const EnvLookup& env);

// "./bazelw test //t:x --test_env=DSIM_SEED=7 --test_filter=A.B", or, outside Bazel,
// "DSIM_SEED=7 /path/to/binary --gtest_filter=A.B".
std::string RerunCommand(const SweepConfig& config, uint64_t seed,
                         const std::string& test_filter, bool check_determinism);

// `path` with ".seed-<n>" inserted before its extension: "t.json" -> "t.seed-7.json".
std::string PathForSeed(const std::string& path, uint64_t seed);

}  // namespace dsim::internal

#endif  // DSIM_SIM_INTERNAL_SWEEP_CONFIG_H_
