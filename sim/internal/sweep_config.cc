#include "sim/internal/sweep_config.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>

#include <climits>
#include <limits>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace dsim::internal {
namespace {

// Largest sweep a process will list; a bound, so a typo in DSIM_SEEDS cannot eat memory.
constexpr uint64_t kMaxSeeds = uint64_t{1} << 32;

absl::Status BadVariable(absl::string_view name, absl::string_view value,
                         absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, "=\"", value, "\" is not valid: expected ", want));
}

template <typename Int>
absl::Status ReadInt(const EnvLookup& env, absl::string_view name, absl::string_view want,
                     std::optional<Int>* out) {
  std::optional<std::string> value = env(name);
  if (!value.has_value() || value->empty()) return absl::OkStatus();
  Int parsed;
  if (!absl::SimpleAtoi(*value, &parsed)) return BadVariable(name, *value, want);
  *out = parsed;
  return absl::OkStatus();
}

std::string Get(const EnvLookup& env, absl::string_view name) {
  return env(name).value_or("");
}

absl::Status ResolveSeeds(const SweepOptions& options, const EnvLookup& env,
                          SweepConfig* config) {
  absl::StatusOr<SeedList> seeds = ResolveSeedList(options.seeds, options.first_seed, env);
  if (!seeds.ok()) return seeds.status();
  config->all_seeds = *seeds;
  return absl::OkStatus();
}

// Bazel's protocol. GoogleTest also shards test cases by it unless //sim:harness_main
// (TakeOverTestSharding) removed GTEST_TOTAL_SHARDS; then the seeds split instead.
absl::Status ResolveShards(const EnvLookup& env, SweepConfig* config) {
  std::optional<int> total;
  std::optional<int> index;
  std::optional<int> gtest_total;
  if (absl::Status s = ReadInt(env, "TEST_TOTAL_SHARDS", "a shard count", &total); !s.ok()) return s;
  if (absl::Status s = ReadInt(env, "TEST_SHARD_INDEX", "a shard index", &index); !s.ok()) return s;
  if (absl::Status s = ReadInt(env, "GTEST_TOTAL_SHARDS", "a shard count", &gtest_total);
      !s.ok()) {
    return s;
  }
  config->shard_status_file = Get(env, "TEST_SHARD_STATUS_FILE");
  if (!total.has_value() || *total <= 1) return absl::OkStatus();
  if (!index.has_value() || *index < 0 || *index >= *total) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TEST_TOTAL_SHARDS=", *total, " needs TEST_SHARD_INDEX in [0, ", *total, ")"));
  }
  config->total_shards = *total;
  config->shard_index = *index;
  config->split_seeds = !(gtest_total.has_value() && *gtest_total > 1);
  return absl::OkStatus();
}

absl::Status ResolveRunMode(const SweepOptions& options, const EnvLookup& env,
                            SweepConfig* config) {
  std::optional<int> jobs;
  std::optional<int> determinism;
  std::optional<int> progress;
  if (absl::Status s = ReadInt(env, "DSIM_JOBS", "a thread count", &jobs); !s.ok()) return s;
  if (absl::Status s = ReadInt(env, "DSIM_CHECK_DETERMINISM", "0 or 1", &determinism);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ReadInt(env, "DSIM_PROGRESS", "0 or 1", &progress); !s.ok()) return s;
  int want_jobs = jobs.value_or(options.jobs);
  if (want_jobs < 0) return BadVariable("DSIM_JOBS", absl::StrCat(want_jobs), "0 or more");
  if (want_jobs == 0) want_jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  config->jobs = want_jobs;
  config->check_determinism = determinism.has_value() ? *determinism != 0
                                                      : options.check_determinism;
  if (progress.has_value()) config->progress = *progress != 0;
  return absl::OkStatus();
}

// DSIM_RECORD, DSIM_SHRINK and DSIM_SCHEDULE_DIR. A DSIM_SCHEDULE_DIR that is set but
// empty turns the stable copy off (for remote execution, where /tmp is not the user's).
absl::Status ResolveRecording(const SweepOptions& options, const EnvLookup& env,
                              SweepConfig* config) {
  std::optional<int> record;
  std::optional<int> shrink;
  if (absl::Status s = ReadInt(env, "DSIM_RECORD", "0 or 1", &record); !s.ok()) return s;
  if (absl::Status s = ReadInt(env, "DSIM_SHRINK", "0 or 1", &shrink); !s.ok()) return s;
  config->record = record.has_value() ? *record != 0 : options.record_schedules;
  config->shrink = shrink.has_value() ? *shrink != 0 : options.shrink;
  std::optional<int> shrink_runs;
  if (absl::Status s = ReadInt(env, "DSIM_SHRINK_RUNS", "a positive run count", &shrink_runs);
      !s.ok()) {
    return s;
  }
  if (shrink_runs.has_value() && *shrink_runs < 1) {
    return BadVariable("DSIM_SHRINK_RUNS", absl::StrCat(*shrink_runs), "a positive run count");
  }
  config->shrink_max_runs = shrink_runs.value_or(options.shrink_max_runs);
  std::optional<int> timeout;
  if (absl::Status s = ReadInt(env, "TEST_TIMEOUT", "seconds", &timeout); !s.ok()) return s;
  config->test_timeout_seconds = std::max(0, timeout.value_or(0));
  config->schedule_dir = env("DSIM_SCHEDULE_DIR").value_or(options.schedule_dir);
  if (config->shrink && !config->record) {
    return absl::InvalidArgumentError(
        "DSIM_SHRINK=1 needs the failing seed's schedule: do not set DSIM_RECORD=0 with it");
  }
  return absl::OkStatus();
}

// DSIM_REPLAY: one run, of the schedule's own seed, under the schedule. A DSIM_SEED
// that names another seed or any DSIM_STRATEGY contradicts it and is an error.
absl::Status ResolveReplay(const EnvLookup& env, SweepConfig* config) {
  config->replay_path = Get(env, "DSIM_REPLAY");
  if (config->replay_path.empty()) return absl::OkStatus();
  absl::StatusOr<Schedule> schedule = Schedule::Load(config->replay_path);
  if (!schedule.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DSIM_REPLAY: ", schedule.status().message(),
        absl::StartsWith(config->replay_path, "/")
            ? ""
            : " (under Bazel a test runs in its runfiles directory: give an absolute path)"));
  }
  if (config->strategy_from_env) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DSIM_REPLAY and DSIM_STRATEGY=", config->strategy,
        " both choose the strategy; a replay decides exactly as the recorded run did"));
  }
  std::optional<uint64_t> seed;
  if (absl::Status s = ReadInt(env, "DSIM_SEED", "an unsigned integer", &seed); !s.ok()) return s;
  if (seed.has_value() && *seed != schedule->seed()) {
    return absl::InvalidArgumentError(absl::StrCat("DSIM_SEED=", *seed, " contradicts DSIM_REPLAY=",
                                                   config->replay_path, ", a run of seed ",
                                                   schedule->seed()));
  }
  config->all_seeds = SeedList::One(schedule->seed());
  config->replay = std::make_shared<const Schedule>(*std::move(schedule));
  return absl::OkStatus();
}

std::string DefaultBazelCommand(const EnvLookup& env) {
  if (std::optional<std::string> command = env("DSIM_BAZEL"); command && !command->empty()) {
    return *command;
  }
  return Get(env, "TEST_WORKSPACE") == "dsim" ? "./bazelw" : "bazel";
}

// DSIM_* variables a rerun sets itself or that do not change what a seed does.
bool SetByTheCommand(absl::string_view name) {
  for (absl::string_view own : {"DSIM_SEED", "DSIM_SEEDS", "DSIM_REPLAY", "DSIM_STRATEGY",
                                "DSIM_CHECK_DETERMINISM", "DSIM_JOBS", "DSIM_PROGRESS",
                                "DSIM_EXPLORE"}) {
    if (name == own) return true;
  }
  return false;
}

// Every DSIM_* variable that is set (scanned from the process environment, or, with an
// injected lookup, the ones dsim knows), and the user's rerun_env names.
std::vector<std::string> KeptEnvironment(const SweepOptions& options, const EnvLookup& env) {
  std::vector<std::string> names;
  if (options.env == nullptr) {
    for (char** entry = environ; *entry != nullptr; ++entry) {
      absl::string_view var(*entry);
      const size_t eq = var.find('=');
      if (eq != absl::string_view::npos && absl::StartsWith(var, "DSIM_")) {
        names.emplace_back(var.substr(0, eq));
      }
    }
    std::sort(names.begin(), names.end());
  } else {
    names = {"DSIM_BAZEL", "DSIM_RECORD", "DSIM_SCHEDULE_DIR", "DSIM_SHRINK",
             "DSIM_SHRINK_RUNS", "DSIM_TRACE"};
  }
  for (const std::string& name : options.rerun_env) names.push_back(name);
  std::vector<std::string> kept;
  for (const std::string& name : names) {
    if (SetByTheCommand(name)) continue;
    std::optional<std::string> value = env(name);
    if (value.has_value()) kept.push_back(absl::StrCat(name, "=", *value));
  }
  return kept;
}

// A name made safe for a file name: "//tests:kv_test" -> "tests_kv_test".
std::string FileNamePart(absl::string_view text) {
  std::string out;
  for (char c : text) {
    const bool plain = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    if (plain) {
      out += c;
    } else if (!out.empty() && out.back() != '_') {
      out += '_';
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

std::string SelfPath() {
  char buffer[PATH_MAX];
  const ssize_t length = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (length <= 0) return "<test binary>";
  return std::string(buffer, static_cast<size_t>(length));
}

// The command line that runs this test (under Bazel, or this binary directly) with `env`
// set.
std::string CommandWithEnv(const SweepConfig& config, const std::vector<std::string>& env,
                           const std::string& test_filter) {
  if (!config.test_target.empty()) {
    std::string command = absl::StrCat(config.bazel_command, " test");
    for (const std::string& flag : config.build_flags) absl::StrAppend(&command, " ", flag);
    absl::StrAppend(&command, " ", config.test_target);
    for (const std::string& e : env) absl::StrAppend(&command, " --test_env=", ShellWord(e));
    for (const std::string& e : config.kept_env) {
      absl::StrAppend(&command, " --test_env=", ShellWord(e));
    }
    if (!test_filter.empty()) absl::StrAppend(&command, " --test_filter=", ShellWord(test_filter));
    // The rerun is one seed: no shards, so its whole output is in one log.
    if (config.total_shards > 1) absl::StrAppend(&command, " --test_sharding_strategy=disabled");
    return command;
  }
  std::string command;
  for (const std::string& e : env) absl::StrAppend(&command, ShellWord(e), " ");
  for (const std::string& e : config.kept_env) absl::StrAppend(&command, ShellWord(e), " ");
  absl::StrAppend(&command, ShellWord(SelfPath()));
  if (!test_filter.empty()) absl::StrAppend(&command, " --gtest_filter=", ShellWord(test_filter));
  return command;
}

}  // namespace

absl::StatusOr<SeedList> ResolveSeedList(uint64_t count, uint64_t first, const EnvLookup& env) {
  std::optional<uint64_t> seed;
  std::optional<uint64_t> seeds;
  if (absl::Status s = ReadInt(env, "DSIM_SEED", "an unsigned integer", &seed); !s.ok()) return s;
  if (absl::Status s = ReadInt(env, "DSIM_SEEDS", "a positive integer", &seeds); !s.ok()) return s;
  if (seed.has_value()) return SeedList::One(*seed);
  if (seeds.has_value() && (*seeds == 0 || *seeds > kMaxSeeds)) {
    return BadVariable("DSIM_SEEDS", absl::StrCat(*seeds), absl::StrCat("1..", kMaxSeeds, " seeds"));
  }
  const uint64_t want = seeds.value_or(count);
  if (want == 0 || want > kMaxSeeds) {
    return absl::InvalidArgumentError(
        absl::StrCat("a sweep needs 1..", kMaxSeeds, " seeds, got ", want));
  }
  if (want - 1 > std::numeric_limits<uint64_t>::max() - first) {
    return absl::InvalidArgumentError(absl::StrCat(want, " seeds from ", first,
                                                   " run past the largest seed, 2^64-1"));
  }
  return SeedList::Range(first, want);
}

std::string ShellWord(absl::string_view word) {
  const bool plain = !word.empty() && word.find_first_not_of(
                                          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                          "0123456789_-+=:,./@%") == absl::string_view::npos;
  if (plain) return std::string(word);
  std::string out = "'";
  for (char c : word) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

namespace {

// DSIM_EXPLORE=seeds|guided over SweepOptions::exploration. A guided search replaces
// the seed list's runs; one named run (DSIM_SEED, DSIM_REPLAY) stays that run.
absl::Status ResolveExploration(const SweepOptions& options, const EnvLookup& env,
                                SweepConfig* config) {
  config->guided = options.exploration == SweepOptions::Exploration::kGuided;
  if (std::optional<std::string> explore = env("DSIM_EXPLORE"); explore && !explore->empty()) {
    if (*explore != "seeds" && *explore != "guided") {
      return BadVariable("DSIM_EXPLORE", *explore, "seeds or guided");
    }
    config->guided = *explore == "guided";
  }
  if (!config->guided) return absl::OkStatus();
  if (config->replay != nullptr || env("DSIM_SEED").has_value()) {
    config->guided = false;  // One named run: DSIM_REPLAY's schedule, or DSIM_SEED's seed.
    return absl::OkStatus();
  }
  if (config->strategy_from_env) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DSIM_EXPLORE=guided and DSIM_STRATEGY=", config->strategy,
        " contradict each other: a guided search chooses every run's decisions itself"));
  }
  config->jobs = 1;  // Each run's plan depends on the runs before it.
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SweepConfig> ResolveSweepConfig(const SweepOptions& options,
                                               const EnvLookup& env) {
  SweepConfig config;
  if (absl::Status s = ResolveSeeds(options, env, &config); !s.ok()) return s;
  if (absl::Status s = ResolveShards(env, &config); !s.ok()) return s;
  if (absl::Status s = ResolveRunMode(options, env, &config); !s.ok()) return s;
  if (absl::Status s = ResolveRecording(options, env, &config); !s.ok()) return s;
  config.strategy = options.simulation.strategy;
  if (std::optional<std::string> spec = env("DSIM_STRATEGY"); spec && !spec->empty()) {
    config.strategy = *spec;
    config.strategy_from_env = true;
  }
  if (absl::Status s = ResolveReplay(env, &config); !s.ok()) return s;
  // A guided replay checks a fix against one recorded scenario: by default the
  // schedule's own seed, unless DSIM_SEED or DSIM_SEEDS say otherwise.
  if (absl::StartsWith(config.strategy, "guided:") && !env("DSIM_SEED").has_value() &&
      !env("DSIM_SEEDS").has_value()) {
    absl::StatusOr<Schedule> schedule = Schedule::Load(config.strategy.substr(7));
    if (!schedule.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("DSIM_STRATEGY: ", schedule.status().message()));
    }
    config.all_seeds = SeedList::One(schedule->seed());
  }
  if (absl::Status s = ResolveExploration(options, env, &config); !s.ok()) return s;
  config.trace_path = Get(env, "DSIM_TRACE");
  config.test_target = Get(env, "TEST_TARGET");
  config.outputs_dir = Get(env, "TEST_UNDECLARED_OUTPUTS_DIR");
  config.bazel_command =
      options.bazel_command.empty() ? DefaultBazelCommand(env) : options.bazel_command;
  BuildConfiguration build = DetectBuildConfiguration(SelfPath());
  config.build_config = std::move(build.name);
  config.build_flags = std::move(build.flags);
  config.kept_env = KeptEnvironment(options, env);
  // Position i of the seed list belongs to shard i mod k: every seed exactly once.
  config.shard_seeds = config.split_seeds
                           ? config.all_seeds.Shard(config.shard_index, config.total_shards)
                           : config.all_seeds;
  return config;
}

std::string RerunCommand(const SweepConfig& config, uint64_t seed,
                         const std::string& test_filter, bool check_determinism) {
  std::vector<std::string> env = {absl::StrCat("DSIM_SEED=", seed)};
  if (config.strategy_from_env) env.push_back("DSIM_STRATEGY=" + config.strategy);
  if (check_determinism) env.push_back("DSIM_CHECK_DETERMINISM=1");
  return CommandWithEnv(config, env, test_filter);
}

std::string ReplayCommand(const SweepConfig& config, const std::string& schedule_path,
                          const std::string& test_filter) {
  return CommandWithEnv(config, {"DSIM_REPLAY=" + schedule_path}, test_filter);
}

BuildConfiguration DetectBuildConfiguration(const std::string& binary_path) {
  BuildConfiguration build;
  // bazel-out/<cpu>-<mode>[-ST-hash]/bin/...: the mode is what -c chose.
  const size_t out = binary_path.find("/bazel-out/");
  if (out != std::string::npos) {
    const size_t start = out + std::string("/bazel-out/").size();
    const size_t end = binary_path.find('/', start);
    build.name = binary_path.substr(start, end == std::string::npos ? end : end - start);
    if (absl::StrContains(build.name, "-opt")) build.flags.push_back("-c opt");
    if (absl::StrContains(build.name, "-dbg")) build.flags.push_back("-c dbg");
  }
  const char* sanitizer = "";
#if defined(__SANITIZE_ADDRESS__) || defined(DSIM_ASAN)
  sanitizer = "asan";
#elif defined(__SANITIZE_THREAD__) || defined(DSIM_TSAN)
  sanitizer = "tsan";
#elif defined(DSIM_UBSAN)
  sanitizer = "ubsan";
#endif
  if (sanitizer[0] != '\0') {
    build.name = build.name.empty() ? sanitizer : absl::StrCat(build.name, "-", sanitizer);
    build.flags.push_back(absl::StrCat("--config=", sanitizer));
  }
  return build;
}

std::string FileStem(const SweepConfig& config, const std::string& test_name, uint64_t seed) {
  std::vector<std::string> parts;
  if (!config.test_target.empty()) parts.push_back(FileNamePart(config.test_target));
  parts.push_back(FileNamePart(test_name.empty() ? "sweep" : test_name));
  if (!config.build_config.empty()) parts.push_back(FileNamePart(config.build_config));
  if (config.strategy_from_env) parts.push_back(FileNamePart(config.strategy));
  parts.push_back(absl::StrCat("seed-", seed));
  return absl::StrJoin(parts, ".");
}

std::string OutputsZipPath(const std::string& outputs_dir) {
  const std::string zip = absl::StrCat(outputs_dir, "/outputs.zip");
  const size_t testlogs = zip.find("/testlogs/");
  if (testlogs == std::string::npos) return zip;
  return absl::StrCat("bazel-testlogs/", zip.substr(testlogs + std::string("/testlogs/").size()));
}

std::string PathForSeed(const std::string& path, uint64_t seed) {
  const size_t slash = path.rfind('/');
  const size_t dot = path.rfind('.');
  const bool has_extension = dot != std::string::npos && (slash == std::string::npos || dot > slash + 1);
  if (!has_extension) return absl::StrCat(path, ".seed-", seed);
  return absl::StrCat(path.substr(0, dot), ".seed-", seed, path.substr(dot));
}

}  // namespace dsim::internal
