// SeedSweep: seeds, environment, sharding, parallel mode, the determinism check, and
// failure reports whose rerun command really reproduces the failure.
//
// Most tests run sweeps in-process with an injected environment. A few run this very
// binary again as a child process (tests named HarnessChild.*, which only act when
// DSIM_HARNESS_CHILD=1), to check what only a separate process can show: Bazel-style
// sharding through //sim:harness_main, and the printed rerun command run by a shell.
#include "sim/harness.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "scheduler/mutex.h"
#include "scheduler/notification.h"
#include "scheduler/schedule.h"
#include "sim/internal/sweep_config.h"

namespace dsim {
namespace {

EnvLookup MapEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](absl::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Options for in-process sweeps whose failures are expected: report to a string, and
// keep failing seeds' schedules in the test's temporary directory, not /tmp.
SweepOptions QuietOptions(std::ostringstream* log, std::map<std::string, std::string> env = {}) {
  env.emplace("DSIM_SCHEDULE_DIR", absl::StrCat(::testing::TempDir(), "/schedules"));
  SweepOptions options;
  options.report_to_gtest = false;
  options.log = log;
  options.env = MapEnv(std::move(env));
  return options;
}

// The build this test binary came from, as the sweep detects it.
internal::BuildConfiguration ThisBuild() {
  char buffer[4096];
  const ssize_t length = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  return internal::DetectBuildConfiguration(std::string(buffer, length > 0 ? length : 0));
}

// The stem of a failing seed's files, as the sweep names them in this build.
std::string Stem(const std::string& test, uint64_t seed, const std::string& target = "") {
  internal::SweepConfig config;
  config.test_target = target;
  config.build_config = ThisBuild().name;
  return internal::FileStem(config, test, seed);
}

// "./bazelw test" and the flags that rebuild this configuration ("--config=asan").
std::string BazelwTest() {
  std::string command = "./bazelw test";
  for (const std::string& flag : ThisBuild().flags) absl::StrAppend(&command, " ", flag);
  return command;
}

// A small concurrent workload whose schedule depends on the seed: three tasks contend
// for a mutex, sleep random virtual times, and draw values through the strategy.
absl::Status Workload(Simulation& sim) {
  auto mu = std::make_shared<Mutex>();
  auto total = std::make_shared<uint64_t>(0);
  for (int i = 0; i < 3; ++i) {
    sim.Spawn(absl::StrCat("worker-", i), [&sim, mu, total] {
      for (int round = 0; round < 4; ++round) {
        dsim::SleepFor(absl::Microseconds(sim.random().Below(1000)));
        MutexLock lock(mu.get());
        *total += sim.random().Below(100);
        dsim::Yield();
      }
    });
  }
  return sim.Run().status();
}

// Fails for seeds whose first random draw is below 2 of 10: a seed-dependent bug.
absl::Status PlantedBug(Simulation& sim) {
  auto value = std::make_shared<uint64_t>(0);
  sim.Spawn("reader", [&sim, value] {
    dsim::SleepFor(absl::Milliseconds(3));
    *value = sim.random().Below(10);
  });
  // A bystander blocked forever, for the report's "blocked tasks".
  auto never = std::make_shared<Notification>();
  sim.Spawn("waiter", [never] { never->WaitForNotification(); }, SpawnOptions{.daemon = true});
  if (absl::Status s = sim.Run().status(); !s.ok()) return s;
  if (*value < 2) return absl::InternalError(absl::StrCat("stale read: got ", *value));
  return absl::OkStatus();
}

std::vector<uint64_t> SeedsOf(const SweepResult& result) {
  std::vector<uint64_t> seeds;
  for (const SeedOutcome& o : result.outcomes) seeds.push_back(o.seed);
  return seeds;
}

TEST(Harness, RunsEverySeedOnceEachInAFreshSimulation) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 12;
  options.first_seed = 100;
  std::vector<uint64_t> seen;
  std::set<const Simulation*> sims;
  SweepResult result = SeedSweep(options).Run([&](Simulation& sim) {
    seen.push_back(sim.seed());
    EXPECT_EQ(sim.scheduler().live_tasks(), 0u) << "fresh";
    return Workload(sim);
  });
  ASSERT_TRUE(result.ok()) << log.str();
  std::vector<uint64_t> want;
  for (uint64_t s = 100; s < 112; ++s) want.push_back(s);
  EXPECT_EQ(seen, want);
  EXPECT_EQ(SeedsOf(result), want);
  EXPECT_TRUE(absl::StrContains(log.str(), "12 seeds run, 0 failed"));
}

TEST(Harness, DsimSeedRunsOnlyThatSeedAndDsimSeedsSetsTheCount) {
  std::ostringstream log;
  SweepResult one = SeedSweep(QuietOptions(&log, {{"DSIM_SEED", "77"}})).Run(Workload);
  EXPECT_EQ(SeedsOf(one), std::vector<uint64_t>{77});
  SweepResult five = SeedSweep(QuietOptions(&log, {{"DSIM_SEEDS", "5"}})).Run(Workload);
  EXPECT_EQ(SeedsOf(five), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
}

TEST(Harness, DsimStrategyChoosesTheStrategy) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_STRATEGY", "roundrobin"}, {"DSIM_SEED", "3"}});
  SweepResult result = SeedSweep(options).Run(Workload);
  ASSERT_EQ(result.outcomes.size(), 1u);
  EXPECT_TRUE(absl::StrContains(absl::AsciiStrToLower(result.outcomes[0].strategy), "round"))
      << result.outcomes[0].strategy;
}

TEST(Harness, BadEnvironmentIsAClearConfigurationError) {
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"DSIM_SEEDS", "many"}, {"DSIM_SEED", "-x"}, {"DSIM_JOBS", "-2"},
           {"DSIM_STRATEGY", "no-such-strategy"}}) {
    std::ostringstream log;
    bool ran = false;
    SweepResult result = SeedSweep(QuietOptions(&log, {{name, value}})).Run([&](Simulation&) {
      ran = true;
      return absl::OkStatus();
    });
    EXPECT_FALSE(result.config_error.ok()) << name;
    EXPECT_FALSE(ran) << name;
    EXPECT_TRUE(absl::StrContains(log.str(), name == "DSIM_STRATEGY" ? value : name)) << log.str();
  }
}

TEST(Harness, ShardsSplitTheSeedsSoEachRunsExactlyOnce) {
  const std::string status_dir = ::testing::TempDir();
  std::multiset<uint64_t> all;
  for (int shard = 0; shard < 3; ++shard) {
    const std::string status_file = absl::StrCat(status_dir, "/shard-status-", shard);
    std::remove(status_file.c_str());
    std::ostringstream log;
    SweepOptions options = QuietOptions(&log, {{"TEST_TOTAL_SHARDS", "3"},
                                               {"TEST_SHARD_INDEX", absl::StrCat(shard)},
                                               {"TEST_SHARD_STATUS_FILE", status_file}});
    options.seeds = 10;
    SweepResult result = SeedSweep(options).Run(Workload);
    EXPECT_EQ(result.total_shards, 3);
    EXPECT_EQ(result.total_seeds, 10u);
    for (uint64_t seed : SeedsOf(result)) {
      all.insert(seed);
      EXPECT_EQ((seed - 1) % 3, static_cast<uint64_t>(shard)) << "seed list position mod 3";
    }
    EXPECT_TRUE(std::ifstream(status_file).good()) << "shard status file touched";
  }
  EXPECT_EQ(all, (std::multiset<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
}

TEST(Harness, WhenGtestShardsTestCasesTheSweepRunsAllItsSeeds) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"TEST_TOTAL_SHARDS", "3"},
                                             {"TEST_SHARD_INDEX", "1"},
                                             {"GTEST_TOTAL_SHARDS", "3"},
                                             {"GTEST_SHARD_INDEX", "1"}});
  options.seeds = 6;
  SweepResult result = SeedSweep(options).Run(Workload);
  EXPECT_EQ(SeedsOf(result), (std::vector<uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_TRUE(absl::StrContains(log.str(), "link //sim:harness_main"));
}

TEST(Harness, ParallelSweepGivesTheSameOutcomesAsSerial) {
  std::ostringstream log;
  SweepOptions serial = QuietOptions(&log);
  serial.seeds = 40;
  SweepOptions parallel = QuietOptions(&log, {{"DSIM_JOBS", "4"}});
  parallel.seeds = 40;
  auto body = [](Simulation& sim) -> absl::Status {
    absl::Status s = Workload(sim);
    // Some seeds fail, so failures are compared too.
    if (s.ok() && sim.seed() % 7 == 0) return absl::DataLossError("planted");
    return s;
  };
  SweepResult a = SeedSweep(serial).Run(body);
  SweepResult b = SeedSweep(parallel).Run(body);
  EXPECT_EQ(a.jobs, 1);
  EXPECT_EQ(b.jobs, 4);
  ASSERT_EQ(a.outcomes.size(), b.outcomes.size());
  std::set<uint64_t> fingerprints;
  for (size_t i = 0; i < a.outcomes.size(); ++i) {
    EXPECT_EQ(a.outcomes[i].seed, b.outcomes[i].seed);
    EXPECT_EQ(a.outcomes[i].fingerprint, b.outcomes[i].fingerprint) << "seed " << a.outcomes[i].seed;
    EXPECT_EQ(a.outcomes[i].events, b.outcomes[i].events);
    EXPECT_EQ(a.outcomes[i].end_time_ns, b.outcomes[i].end_time_ns);
    EXPECT_EQ(a.outcomes[i].status, b.outcomes[i].status);
    EXPECT_EQ(a.outcomes[i].report, b.outcomes[i].report);
    fingerprints.insert(a.outcomes[i].fingerprint);
  }
  EXPECT_EQ(a.failed_seeds, b.failed_seeds);
  EXPECT_FALSE(a.failed_seeds.empty());
  EXPECT_GT(fingerprints.size(), 30u) << "seeds should explore different runs";
}

TEST(Harness, DeterministicBodiesPassTheDeterminismCheck) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_CHECK_DETERMINISM", "1"}});
  options.seeds = 20;
  SweepResult result = SeedSweep(options).Run(Workload);
  EXPECT_TRUE(result.ok()) << log.str();
}

// Planted nondeterminism: a task reads the real clock and sleeps a virtual time that
// depends on it, as code that calls absl::Now() instead of dsim::Now() would.
absl::Status ReadsRealTime(Simulation& sim) {
  sim.Spawn("setup", [] { dsim::SleepFor(absl::Milliseconds(2)); });
  sim.Spawn("clock-reader", [] {
    dsim::SleepFor(absl::Milliseconds(1));
    const int64_t real_ns = absl::ToUnixNanos(absl::Now());
    dsim::SleepFor(absl::Nanoseconds(1 + real_ns % 1000003));
  });
  return sim.Run().status();
}

TEST(Harness, DeterminismCheckCatchesARealTimeReadAndNamesTheFirstDivergentEvent) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_CHECK_DETERMINISM", "1"}});
  options.seeds = 3;
  SweepResult result = SeedSweep(options).Run(ReadsRealTime);
  ASSERT_EQ(result.failed_seeds, (std::vector<uint64_t>{1, 2, 3})) << log.str();
  for (const SeedOutcome& outcome : result.outcomes) {
    EXPECT_TRUE(outcome.nondeterministic);
    const std::string& report = outcome.report;
    EXPECT_TRUE(absl::StrContains(report, "nondeterminism: two runs of seed")) << report;
    EXPECT_TRUE(absl::StrContains(report, "first divergent event: #")) << report;
    // Where: the clock-reader's sleep at +1ms diverges in what the clock does next.
    EXPECT_TRUE(std::regex_search(report, std::regex("run 1: #[0-9]+ \\+0\\.00"))) << report;
    EXPECT_TRUE(absl::StrContains(report, "run 2: #")) << report;
    EXPECT_TRUE(absl::StrContains(report, "DSIM_CHECK_DETERMINISM=1")) << "rerun keeps the check";
  }
}

// Planted nondeterminism of another kind: state that leaks from one run to the next
// (a static cache), so the second run of a seed behaves differently.
absl::Status LeaksStateAcrossRuns(Simulation& sim) {
  static std::atomic<int> runs{0};
  const bool odd_run = runs.fetch_add(1) % 2 == 1;
  sim.Spawn("cache-user", [odd_run] {
    dsim::SleepFor(absl::Milliseconds(1));
    if (odd_run) dsim::SleepFor(absl::Milliseconds(1));
  });
  return sim.Run().status();
}

TEST(Harness, DeterminismCheckNamesTheTaskWhereRunsDiverge) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_CHECK_DETERMINISM", "1"}, {"DSIM_SEED", "5"}});
  SweepResult result = SeedSweep(options).Run(LeaksStateAcrossRuns);
  ASSERT_EQ(result.failed_seeds, std::vector<uint64_t>{5});
  const std::string& report = result.outcomes[0].report;
  EXPECT_TRUE(absl::StrContains(report, "at virtual time +0.001000000s, task 1 \"cache-user\""))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "run 1: #")) << report;
  // Without the check, the same body passes: only the check can see this bug.
  std::ostringstream quiet;
  EXPECT_TRUE(SeedSweep(QuietOptions(&quiet, {{"DSIM_SEED", "5"}})).Run(LeaksStateAcrossRuns).ok());
}

TEST(Harness, FailureReportHasSeedStrategySummaryBlockedTasksAndOneRerunCommand) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"TEST_TARGET", "//tests:harness_test"},
                                             {"TEST_WORKSPACE", "dsim"}});
  options.seeds = 30;
  SweepResult result = SeedSweep(options).Run(PlantedBug);
  ASSERT_FALSE(result.failed_seeds.empty());
  ASSERT_LT(result.failed_seeds.size(), 30u) << "the bug depends on the seed";
  const SeedOutcome* failed = nullptr;
  for (const SeedOutcome& o : result.outcomes) {
    if (!o.status.ok()) {
      failed = &o;
      break;
    }
  }
  ASSERT_NE(failed, nullptr);
  const std::string& report = failed->report;
  const std::string seed = absl::StrCat(failed->seed);
  EXPECT_TRUE(absl::StartsWith(report, absl::StrCat("FAIL seed=", seed, " strategy=random(")))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "stale read: got")) << report;
  EXPECT_TRUE(absl::StrContains(report, "virtual time: +0.003000000s")) << report;
  EXPECT_TRUE(absl::StrContains(report, "task 1 \"reader\" finish")) << "last events\n" << report;
  // Not a deadlock: the blocked daemon is counted, not listed.
  EXPECT_TRUE(absl::StrContains(report, "blocked tasks:\n    (none)\n    (and 1 blocked daemon task, "
                                        "not shown: this is not a deadlock)"))
      << report;
  EXPECT_TRUE(absl::StrContains(
      report, absl::StrCat("  rerun: ", BazelwTest(), " //tests:harness_test --test_env=DSIM_SEED=", seed,
                           " --test_env=DSIM_SCHEDULE_DIR=", ::testing::TempDir(), "/schedules",
                           " --test_filter=Harness.FailureReportHasSeedStrategySummaryBlockedTasksAndOneRerunCommand\n")))
      << report;
  EXPECT_EQ(report.find("rerun:"), report.rfind("rerun:")) << "exactly one command";
  // The reports also reached the log, one per failing seed.
  for (uint64_t s : result.failed_seeds) {
    EXPECT_TRUE(absl::StrContains(log.str(), absl::StrCat("FAIL seed=", s, " "))) << s;
  }
}

// Pulls `--flag=value` (or `VAR=value` at a word start) out of a command line.
std::string WordValue(const std::string& command, const std::string& prefix) {
  for (absl::string_view word : absl::StrSplit(command, ' ')) {
    if (absl::StartsWith(word, prefix)) return std::string(word.substr(prefix.size()));
  }
  return "";
}

TEST(Harness, RerunningThePrintedSeedReproducesTheSameFailure) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"TEST_TARGET", "//tests:harness_test"}});
  options.seeds = 30;
  SweepResult sweep = SeedSweep(options).Run(PlantedBug);
  ASSERT_FALSE(sweep.failed_seeds.empty());
  const SeedOutcome& original = *std::find_if(sweep.outcomes.begin(), sweep.outcomes.end(),
                                              [](const SeedOutcome& o) { return !o.status.ok(); });
  std::string rerun = original.report.substr(original.report.find("rerun: "));
  rerun = rerun.substr(0, rerun.find('\n'));
  const std::string seed = WordValue(rerun, "--test_env=DSIM_SEED=");
  const std::string filter = WordValue(rerun, "--test_filter=");
  EXPECT_EQ(filter, "Harness.RerunningThePrintedSeedReproducesTheSameFailure");

  std::ostringstream again_log;
  SweepResult again = SeedSweep(QuietOptions(&again_log, {{"DSIM_SEED", seed}})).Run(PlantedBug);
  ASSERT_EQ(again.outcomes.size(), 1u);
  EXPECT_EQ(again.outcomes[0].seed, original.seed);
  EXPECT_EQ(again.outcomes[0].status, original.status);
  EXPECT_EQ(again.outcomes[0].fingerprint, original.fingerprint);
}

TEST(Harness, FailingSeedsTracesAreSavedToUndeclaredOutputs) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/outputs");
  ASSERT_EQ(system(absl::StrCat("mkdir -p ", dir).c_str()), 0);
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"TEST_UNDECLARED_OUTPUTS_DIR", dir}});
  options.seeds = 30;
  SweepResult result = SeedSweep(options).Run(PlantedBug);
  ASSERT_FALSE(result.failed_seeds.empty());
  const uint64_t seed = result.failed_seeds[0];
  const std::string base =
      absl::StrCat(dir, "/", Stem("Harness.FailingSeedsTracesAreSavedToUndeclaredOutputs", seed));
  std::ifstream json(base + ".json");
  std::ifstream text(base + ".txt");
  EXPECT_TRUE(json.good()) << log.str();
  EXPECT_TRUE(text.good());
  std::string first_line;
  std::getline(text, first_line);
  EXPECT_TRUE(absl::StrContains(first_line, absl::StrFormat("fingerprint %016x",
                                                            result.outcomes[seed - 1].fingerprint)))
      << "the saved trace is the failing run's: " << first_line;
  EXPECT_TRUE(absl::StrContains(log.str(), absl::StrCat("trace: ", base, ".json")));
}

TEST(Harness, DsimTraceWritesTheTraceOfASingleSeed) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/single.json");
  std::remove(path.c_str());
  std::ostringstream log;
  SeedSweep(QuietOptions(&log, {{"DSIM_SEED", "4"}, {"DSIM_TRACE", path}})).Run(Workload);
  std::ifstream json(path);
  ASSERT_TRUE(json.good()) << log.str();
  std::string body((std::istreambuf_iterator<char>(json)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(absl::StrContains(body, "\"traceEvents\""));
  EXPECT_TRUE(absl::StrContains(body, "\"complete\":\"yes\""));
}

TEST(Harness, FailedRunsFailTheSeedEvenIfTheBodyIgnoresThem) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_SEED", "1"}});
  options.simulation.max_steps = 5;
  auto ignores_result = [](Simulation& sim) {
    sim.Spawn("spin", [] {
      for (;;) dsim::Yield();
    });
    sim.Run();  // Result ignored.
    return absl::OkStatus();
  };
  SweepResult strict = SeedSweep(options).Run(ignores_result);
  EXPECT_EQ(strict.failed_seeds, std::vector<uint64_t>{1});
  EXPECT_TRUE(absl::StrContains(strict.outcomes[0].report, "step limit")) << strict.outcomes[0].report;
  options.fail_on_failed_run = false;
  EXPECT_TRUE(SeedSweep(options).Run(ignores_result).ok());
}

TEST(Harness, ExceptionsFromTheBodyFailTheSeed) {
  std::ostringstream log;
  SweepResult result = SeedSweep(QuietOptions(&log, {{"DSIM_SEED", "2"}})).Run([](Simulation&) -> absl::Status {
    throw std::runtime_error("boom");
  });
  ASSERT_EQ(result.failed_seeds, std::vector<uint64_t>{2});
  EXPECT_TRUE(absl::StrContains(result.outcomes[0].status.message(), "boom"));
}

// The README's sweep pattern: the body builds the cluster its tasks use, runs, checks
// and returns while server tasks are still blocked on the cluster's state. Those
// tasks unwind after the body has returned; their destructors and waits touch the
// cluster. Made with sim.Make, it lives until they have unwound. (As a plain local of
// the body, `ReadmeCluster cluster(sim);`, it is freed first, and only ASan sees it:
// --config=asan reports a heap-use-after-free in ~ServerGuard.)
class ReadmeCluster {
 public:
  explicit ReadmeCluster(Simulation& sim) : state_(std::make_unique<State>()) {
    for (int i = 0; i < 3; ++i) {
      sim.AddHost({.name = absl::StrCat("node-", i), .start = [this, i] { Serve(i); }});
    }
  }
  ~ReadmeCluster() { state_->destroyed = true; }
  absl::Status CheckLinearizable() const {
    return state_->served == 3 ? absl::OkStatus()
                               : absl::InternalError(absl::StrCat("served ", state_->served));
  }
  static int& unwound_after_destruction() {
    thread_local int count = 0;
    return count;
  }

 private:
  struct State {
    Mutex mu;
    CondVar cv;
    std::vector<int> log;  // Heap memory the unwinding tasks write.
    int served = 0;
    bool destroyed = false;
  };
  struct ServerGuard {
    State* state;
    ~ServerGuard() {
      if (state->destroyed) ++unwound_after_destruction();
      state->log.push_back(-1);
    }
  };
  void Serve(int id) {
    ServerGuard guard{state_.get()};
    {
      MutexLock lock(&state_->mu);
      ++state_->served;
      state_->log.push_back(id);
    }
    for (;;) dsim::SleepFor(absl::Milliseconds(100));  // A server loop: never returns.
  }
  std::unique_ptr<State> state_;
};

TEST(HarnessLifetime, TheReadmePatternOutlivesTheTasksThatStillUseTheBodysState) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 20;
  ReadmeCluster::unwound_after_destruction() = 0;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) -> absl::Status {
    ReadmeCluster& cluster = sim.Make<ReadmeCluster>(sim);
    if (absl::Status s = sim.RunFor(absl::Seconds(1)).status(); !s.ok()) return s;
    return cluster.CheckLinearizable();
  });
  EXPECT_TRUE(result.ok()) << log.str();
  EXPECT_EQ(ReadmeCluster::unwound_after_destruction(), 0);
}

// ---- Seeds ---------------------------------------------------------------------------

TEST(HarnessSeeds, SeedsFromEnvironmentRejectsGarbageZeroAndNegativeLoudly) {
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"DSIM_SEEDS", "garbage"}, {"DSIM_SEEDS", "0"}, {"DSIM_SEEDS", "-1"},
           {"DSIM_SEED", "-1"}, {"DSIM_SEED", "12abc"}, {"DSIM_SEEDS", "4294967297"}}) {
    absl::StatusOr<SeedList> seeds = SeedsFromEnvironment(10, 1, MapEnv({{name, value}}));
    EXPECT_EQ(seeds.status().code(), absl::StatusCode::kInvalidArgument) << name << "=" << value;
    EXPECT_TRUE(absl::StrContains(seeds.status().message(), name)) << seeds.status();
  }
  absl::StatusOr<SeedList> seeds = SeedsFromEnvironment(10, ~uint64_t{0} - 3, MapEnv({}));
  EXPECT_FALSE(seeds.ok()) << "a range past 2^64-1";
}

TEST(HarnessSeeds, SeedsFromEnvironmentGivesTheCountOrTheOneSeed) {
  absl::StatusOr<SeedList> seeds = SeedsFromEnvironment(10, 5, MapEnv({}));
  ASSERT_TRUE(seeds.ok());
  EXPECT_EQ(seeds->size(), 10u);
  EXPECT_EQ((*seeds)[0], 5u);
  EXPECT_EQ((*seeds)[9], 14u);
  seeds = SeedsFromEnvironment(10, 5, MapEnv({{"DSIM_SEEDS", "3"}}));
  EXPECT_EQ(seeds->size(), 3u);
  seeds = SeedsFromEnvironment(10, 5, MapEnv({{"DSIM_SEED", "42"}, {"DSIM_SEEDS", "3"}}));
  ASSERT_EQ(seeds->size(), 1u);
  EXPECT_EQ((*seeds)[0], 42u);
}

TEST(HarnessSeeds, ShardsOfASeedListCoverItOnce) {
  const SeedList all = SeedList::Range(100, 10);
  std::vector<uint64_t> seen;
  for (int shard = 0; shard < 3; ++shard) {
    const SeedList part = all.Shard(shard, 3);
    for (uint64_t i = 0; i < part.size(); ++i) seen.push_back(part[i]);
  }
  std::sort(seen.begin(), seen.end());
  std::vector<uint64_t> want;
  for (uint64_t s = 100; s < 110; ++s) want.push_back(s);
  EXPECT_EQ(seen, want);
  EXPECT_EQ(SeedList::Range(1, 2).Shard(4, 5).size(), 0u);
}

// 2^32 seeds, the documented bound: the list is computed, not built (it would take 32
// GiB), and a sweep that large keeps only failing outcomes.
TEST(HarnessSeeds, TheLargestSweepIsGeneratedNotStored) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_SEEDS", "4294967296"}});
  options.stop_after_failures = 1;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) -> absl::Status {
    return sim.seed() < 4 ? absl::OkStatus() : absl::InternalError("planted");
  });
  EXPECT_EQ(result.total_seeds, uint64_t{1} << 32);
  EXPECT_EQ(result.failed_seeds, std::vector<uint64_t>{4});
  EXPECT_EQ(result.seeds_run, 4u);
  ASSERT_EQ(result.outcomes.size(), 1u) << "passing outcomes are not kept";
  EXPECT_EQ(result.outcomes[0].seed, 4u);
}

// ---- Reports without noise ---------------------------------------------------------

TEST(HarnessReport, ADeadlocksBlockedTasksNameTheirHosts) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 1;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) -> absl::Status {
    auto& never = sim.Make<Notification>();
    sim.AddHost({.name = "kv-1",
                 .start = [&never] { never.WaitForNotification(); },
                 .start_daemon = false});
    return sim.Run().status();
  });
  ASSERT_EQ(result.failed_seeds.size(), 1u);
  EXPECT_TRUE(absl::StrContains(result.outcomes[0].report,
                                "blocked tasks:\n    task \"kv-1/start\" on host \"kv-1\" blocked in "
                                "Notification::WaitForNotification"))
      << result.outcomes[0].report;
}

TEST(HarnessReport, RunsOfRandomDrawsAreCollapsedIntoOneLine) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 1;
  options.summary_events = 10;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) -> absl::Status {
    sim.Spawn("dice", [&sim] {
      uint64_t sum = 0;
      for (int i = 0; i < 13; ++i) sum += sim.random().Below(6);
      dsim::Fail(absl::StrCat("sum ", sum));
    });
    return sim.Run().status();
  });
  ASSERT_EQ(result.failed_seeds.size(), 1u);
  const std::string& report = result.outcomes[0].report;
  EXPECT_TRUE(absl::StrContains(report, " 13 random draws (\"")) << report;
  EXPECT_TRUE(absl::StrContains(report, "check.violated")) << report;
  EXPECT_EQ(report.find("decide value"), std::string::npos) << report;
}

TEST(HarnessReport, ShowsTheEventsAroundTheFailureNotTheEndOfTheRun) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 1;
  options.summary_events = 12;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) -> absl::Status {
    sim.Spawn("ticker", [] {
      for (;;) dsim::SleepFor(absl::Milliseconds(1));
    }, SpawnOptions{.daemon = true});
    sim.Spawn("checker", [] {
      dsim::SleepFor(absl::Microseconds(2500));
      dsim::Fail("early");
    });
    sim.RunFor(absl::Seconds(1));
    // The body goes on (as bodies that ignore a result do): hundreds of later events.
    sim.RunFor(absl::Seconds(1));
    return absl::OkStatus();
  });
  ASSERT_EQ(result.failed_seeds.size(), 1u);
  const std::string& report = result.outcomes[0].report;
  EXPECT_TRUE(absl::StrContains(report, "check.violated: early at harness_test.cc:")) << report;
  EXPECT_TRUE(absl::StrContains(report, "<-- the failure")) << report;
  EXPECT_TRUE(absl::StrContains(report, "later events (teardown, later runs) not shown")) << report;
  EXPECT_FALSE(absl::StrContains(report, "+0.999")) << report;
}

// ---- Online checks -----------------------------------------------------------------

TEST(HarnessChecks, AnInvariantViolationIsReportedAsSuchNotAsAThrow) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 3;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) -> absl::Status {
    auto& counter = sim.Make<int>(0);
    sim.Invariant("counter below 3", [&counter] { return counter < 3; });
    sim.Spawn("incrementer", [&counter] {
      for (;;) {
        ++counter;
        dsim::SleepFor(absl::Milliseconds(1));
      }
    }, SpawnOptions{.daemon = true});
    return sim.RunFor(absl::Seconds(1)).status();
  });
  ASSERT_EQ(result.failed_seeds.size(), 3u);
  const std::string& report = result.outcomes[0].report;
  EXPECT_TRUE(absl::StrContains(report, "strategy=random(seed=1)): invariant violated: counter below 3\n") ||
              absl::StrContains(report, ": invariant violated: counter below 3\n"))
      << report;
  EXPECT_FALSE(absl::StrContains(report, "threw")) << report;
  EXPECT_TRUE(absl::StrContains(report, "check.violated")) << report;
}

TEST(HarnessChecks, DsimFailFromATaskFailsTheSeedWithItsMessage) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 1;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) -> absl::Status {
    sim.Spawn("reader", [] { dsim::Fail("stale read: got 3, want 4"); });
    return sim.Run().status();
  });
  ASSERT_EQ(result.failed_seeds.size(), 1u);
  EXPECT_TRUE(absl::StrContains(result.outcomes[0].report,
                                ": invariant violated: stale read: got 3, want 4 at harness_test.cc:"))
      << result.outcomes[0].report;
}

TEST(Harness, StopAfterFailuresStopsStartingSeeds) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 50;
  options.stop_after_failures = 1;
  SweepResult result = SeedSweep(options).Run(PlantedBug);
  ASSERT_EQ(result.failed_seeds.size(), 1u);
  EXPECT_EQ(result.outcomes.back().seed, result.failed_seeds[0]);
}

TEST(HarnessRerunCommand, OutsideBazelItRunsThisBinaryWithAGtestFilter) {
  internal::SweepConfig config;
  config.strategy = "pct:3";
  config.strategy_from_env = true;
  const std::string command = internal::RerunCommand(config, 9, "A.B", false);
  EXPECT_TRUE(absl::StartsWith(command, "DSIM_SEED=9 DSIM_STRATEGY=pct:3 /")) << command;
  EXPECT_TRUE(absl::EndsWith(command, " --gtest_filter=A.B")) << command;
  config.test_target = "//x:y";
  config.bazel_command = "bazel";
  config.total_shards = 4;
  EXPECT_EQ(internal::RerunCommand(config, 9, "A.B", true),
            "bazel test //x:y --test_env=DSIM_SEED=9 --test_env=DSIM_STRATEGY=pct:3 "
            "--test_env=DSIM_CHECK_DETERMINISM=1 --test_filter=A.B "
            "--test_sharding_strategy=disabled");
  EXPECT_EQ(internal::PathForSeed("/t/run.json", 7), "/t/run.seed-7.json");
  EXPECT_EQ(internal::PathForSeed("/t.d/run", 7), "/t.d/run.seed-7");
}

TEST(HarnessRerunCommand, TheReplayCommandSetsOnlyDsimReplay) {
  internal::SweepConfig config;
  config.strategy = "pct:3";
  config.strategy_from_env = true;  // A replay decides as recorded: no strategy.
  config.test_target = "//x:y";
  config.bazel_command = "./bazelw";
  EXPECT_EQ(internal::ReplayCommand(config, "/tmp/s/A.B.seed-9.dsched", "A.B"),
            "./bazelw test //x:y --test_env=DSIM_REPLAY=/tmp/s/A.B.seed-9.dsched "
            "--test_filter=A.B");
}

TEST(HarnessRerunCommand, TheOutputsZipIsNamedFromTheWorkspace) {
  EXPECT_EQ(internal::OutputsZipPath("/root/.cache/bazel/_bazel_root/abc/execroot/dsim/bazel-out/"
                                     "k8-fastbuild/testlogs/tests/kv_test/test.outputs"),
            "bazel-testlogs/tests/kv_test/test.outputs/outputs.zip");
  EXPECT_EQ(internal::OutputsZipPath("/elsewhere/out"), "/elsewhere/out/outputs.zip");
}

TEST(HarnessFileNames, NameTheTargetTestConfigurationStrategyAndSeed) {
  internal::SweepConfig config;
  config.test_target = "//tests:kv_test";
  config.build_config = "k8-opt-asan";
  EXPECT_EQ(internal::FileStem(config, "Kv.Linearizable", 7),
            "tests_kv_test.Kv.Linearizable.k8-opt-asan.seed-7");
  config.strategy = "pct:3";
  config.strategy_from_env = true;
  EXPECT_EQ(internal::FileStem(config, "Kv.Linearizable", 7),
            "tests_kv_test.Kv.Linearizable.k8-opt-asan.pct_3.seed-7");
  // Another target, configuration or strategy never gets the same name.
  internal::SweepConfig other = config;
  other.test_target = "//tests:kv_long_test";
  EXPECT_NE(internal::FileStem(other, "Kv.Linearizable", 7), internal::FileStem(config, "Kv.Linearizable", 7));
  other = config;
  other.build_config = "k8-fastbuild";
  EXPECT_NE(internal::FileStem(other, "Kv.Linearizable", 7), internal::FileStem(config, "Kv.Linearizable", 7));
}

TEST(HarnessFileNames, TheBuildConfigurationComesFromTheBinaryPathAndTheSanitizer) {
  const internal::BuildConfiguration opt = internal::DetectBuildConfiguration(
      "/root/.cache/bazel/x/execroot/dsim/bazel-out/k8-opt/bin/tests/kv_test");
  EXPECT_TRUE(absl::StartsWith(opt.name, "k8-opt")) << opt.name;
  EXPECT_EQ(opt.flags.front(), "-c opt");
#if defined(DSIM_ASAN)
  EXPECT_EQ(opt.name, "k8-opt-asan");
  EXPECT_EQ(opt.flags.back(), "--config=asan");
#endif
}

TEST(HarnessRerunCommand, KeepsTheTestsOwnEnvironment) {
  internal::SweepConfig config;
  config.test_target = "//x:y";
  config.bazel_command = "./bazelw";
  config.build_flags = {"--config=asan"};
  config.kept_env = {"DSIM_SHRINK=1", "KV_REPLICAS=5"};
  EXPECT_EQ(internal::RerunCommand(config, 9, "A.B", false),
            "./bazelw test --config=asan //x:y --test_env=DSIM_SEED=9 --test_env=DSIM_SHRINK=1 "
            "--test_env=KV_REPLICAS=5 --test_filter=A.B");
  EXPECT_EQ(internal::ReplayCommand(config, "/s/a.dsched", "A.B"),
            "./bazelw test --config=asan //x:y --test_env=DSIM_REPLAY=/s/a.dsched "
            "--test_env=DSIM_SHRINK=1 --test_env=KV_REPLICAS=5 --test_filter=A.B");
}

TEST(HarnessRerunCommand, TheSweepKeepsDsimVariablesAndTheNamedOnes) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"TEST_TARGET", "//tests:harness_test"},
                                             {"TEST_WORKSPACE", "dsim"},
                                             {"DSIM_SHRINK_RUNS", "50"},
                                             {"KV_REPLICAS", "5"},
                                             {"DSIM_SEEDS", "30"}});
  options.rerun_env = {"KV_REPLICAS"};
  const SeedOutcome failed = [&] {
    SweepResult result = SeedSweep(options).Run(PlantedBug);
    return *std::find_if(result.outcomes.begin(), result.outcomes.end(),
                         [](const SeedOutcome& o) { return !o.status.ok(); });
  }();
  EXPECT_TRUE(absl::StrContains(failed.report, "--test_env=DSIM_SHRINK_RUNS=50 --test_env=KV_REPLICAS=5 "))
      << failed.report;
  EXPECT_FALSE(absl::StrContains(failed.report, "DSIM_SEEDS=30")) << "a rerun is one seed";
}

// ---- Schedules: record, replay, shrink ----------------------------------------------

const SeedOutcome& FirstFailure(const SweepResult& result) {
  return *std::find_if(result.outcomes.begin(), result.outcomes.end(),
                       [](const SeedOutcome& o) { return !o.status.ok(); });
}

// A fresh, empty directory under the test's temporary directory.
std::string FreshDir(absl::string_view name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name);
  EXPECT_EQ(system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir).c_str()), 0);
  return dir;
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The lines of `report` that start (after indentation) with `label: `, without it.
std::string ReportLine(const std::string& report, const std::string& label) {
  const size_t at = report.find(absl::StrCat("  ", label, ": "));
  if (at == std::string::npos) return "";
  const size_t start = at + label.size() + 4;
  return report.substr(start, report.find('\n', start) - start);
}

// A failing seed's schedule goes to the outputs directory, named after the test and the
// seed; passing seeds leave nothing behind.
TEST(HarnessSchedules, AFailingSeedWritesItsScheduleToUndeclaredOutputs) {
  const std::string outputs = FreshDir("outputs-schedules");
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"TEST_UNDECLARED_OUTPUTS_DIR", outputs},
                                             {"DSIM_SCHEDULE_DIR", ""}});
  options.seeds = 30;
  SweepResult result = SeedSweep(options).Run(PlantedBug);
  ASSERT_FALSE(result.failed_seeds.empty());
  std::vector<std::string> schedules;
  for (const std::string& name : FilesIn(outputs)) {
    if (absl::EndsWith(name, ".dsched")) schedules.push_back(name);
  }
  EXPECT_EQ(schedules.size(), std::min<size_t>(result.failed_seeds.size(), options.detailed_failures))
      << "one per reported failing seed, none for passing seeds";
  const SeedOutcome& failed = FirstFailure(result);
  const std::string path = absl::StrCat(
      outputs, "/", Stem("HarnessSchedules.AFailingSeedWritesItsScheduleToUndeclaredOutputs", failed.seed),
      ".dsched");
  EXPECT_EQ(failed.schedule_path, path);
  absl::StatusOr<Schedule> schedule = Schedule::Load(path);
  ASSERT_TRUE(schedule.ok()) << schedule.status();
  EXPECT_EQ(schedule->seed(), failed.seed);
  EXPECT_FALSE(schedule->empty());
  EXPECT_TRUE(absl::StrContains(failed.report, absl::StrCat("  schedule: ", path, " (")))
      << failed.report;
  EXPECT_TRUE(absl::StrContains(failed.report, absl::StrCat("DSIM_REPLAY=", path)))
      << failed.report;
}

TEST(HarnessSchedules, TheStableCopyIsWhatTheReplayCommandUses) {
  const std::string stable = FreshDir("stable-schedules");
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_SCHEDULE_DIR", stable + "/made/by/sweep"},
                                             {"TEST_TARGET", "//tests:harness_test"},
                                             {"TEST_WORKSPACE", "dsim"}});
  options.seeds = 30;
  const SeedOutcome failed = FirstFailure(SeedSweep(options).Run(PlantedBug));
  const std::string path =
      absl::StrCat(stable, "/made/by/sweep/",
                   Stem("HarnessSchedules.TheStableCopyIsWhatTheReplayCommandUses", failed.seed,
                        "//tests:harness_test"),
                   ".dsched");
  EXPECT_EQ(failed.schedule_path, path);
  EXPECT_TRUE(Schedule::Load(path).ok());
  EXPECT_EQ(ReportLine(failed.report, "replay"),
            absl::StrCat(BazelwTest(), " //tests:harness_test --test_env=DSIM_REPLAY=", path,
                         " --test_env=DSIM_SCHEDULE_DIR=", stable, "/made/by/sweep",
                         " --test_filter=HarnessSchedules.TheStableCopyIsWhatTheReplayCommandUses"))
      << failed.report;
  const size_t rerun = failed.report.find("  rerun: ");
  EXPECT_LT(rerun, failed.report.find("  replay: ")) << "the seed first, then the schedule";
}

// Under Bazel without a stable copy, the outputs directory is zipped once the test
// ends: the replay command takes the schedule out of the zip.
TEST(HarnessSchedules, WithoutAStableCopyTheReplayCommandUnzipsTheOutputs) {
  const std::string outputs = FreshDir("testlogs/tests/harness_test/test.outputs");
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"TEST_UNDECLARED_OUTPUTS_DIR", outputs},
                                             {"DSIM_SCHEDULE_DIR", ""},
                                             {"TEST_TARGET", "//tests:harness_test"},
                                             {"TEST_WORKSPACE", "dsim"}});
  options.seeds = 30;
  const SeedOutcome failed = FirstFailure(SeedSweep(options).Run(PlantedBug));
  const std::string name = absl::StrCat(
      Stem("HarnessSchedules.WithoutAStableCopyTheReplayCommandUnzipsTheOutputs", failed.seed,
           "//tests:harness_test"),
      ".dsched");
  EXPECT_EQ(ReportLine(failed.report, "replay"),
            absl::StrCat("unzip -o bazel-testlogs/tests/harness_test/test.outputs/outputs.zip ",
                         name, " -d /tmp && ", BazelwTest(), " //tests:harness_test "
                         "--test_env=DSIM_REPLAY=/tmp/", name, " --test_env=DSIM_SCHEDULE_DIR=",
                         " --test_filter=HarnessSchedules.WithoutAStableCopyTheReplayCommandUnzipsTheOutputs"))
      << failed.report;
  EXPECT_TRUE(absl::StrContains(
      failed.report, absl::StrCat("  schedule: ", name,
                                  " in bazel-testlogs/tests/harness_test/test.outputs/outputs.zip (")))
      << failed.report;
  EXPECT_TRUE(absl::StrContains(failed.report, "(Bazel zips the test's outputs")) << failed.report;
}

TEST(HarnessSchedules, DsimRecordZeroSavesNoScheduleAndOffersNoReplay) {
  const std::string stable = FreshDir("unrecorded");
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_RECORD", "0"}, {"DSIM_SCHEDULE_DIR", stable}});
  options.seeds = 30;
  const SeedOutcome failed = FirstFailure(SeedSweep(options).Run(PlantedBug));
  EXPECT_TRUE(failed.schedule_path.empty());
  EXPECT_TRUE(FilesIn(stable).empty());
  EXPECT_TRUE(absl::StrContains(failed.report, "  rerun: ")) << failed.report;
  EXPECT_FALSE(absl::StrContains(failed.report, "replay")) << failed.report;
}

// Schedules are recorded in a rerun of the failing seed, which must be the same run:
// planted nondeterminism (state kept across runs) makes the rerun sleep longer.
TEST(HarnessSchedules, NoScheduleIsSavedWhenTheRecordedRerunIsAnotherRun) {
  auto runs = std::make_shared<int>(0);
  auto body = [runs](Simulation& sim) -> absl::Status {
    const int run = (*runs)++;
    sim.Spawn("sleeper", [run] { dsim::SleepFor(absl::Milliseconds(1 + run)); });
    if (absl::Status s = sim.Run().status(); !s.ok()) return s;
    return absl::InternalError("always fails");
  };
  std::ostringstream log;
  SweepResult result = SeedSweep(QuietOptions(&log, {{"DSIM_SEED", "1"}})).Run(body);
  ASSERT_EQ(result.failed_seeds, std::vector<uint64_t>{1});
  const std::string& report = result.outcomes[0].report;
  EXPECT_TRUE(result.outcomes[0].schedule_path.empty()) << report;
  EXPECT_TRUE(absl::StrContains(report, "no schedule saved: it would not be the failing run's"))
      << report;
  EXPECT_FALSE(absl::StrContains(report, "replay:")) << report;
}

// The recorded strategy (roundrobin here) need not be given again: the schedule holds
// every decision it made, random values included.
TEST(HarnessSchedules, ReplayingTheSavedScheduleReproducesTheSameFailure) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 30;
  options.simulation.strategy = "roundrobin";
  SweepResult sweep = SeedSweep(options).Run(PlantedBug);
  ASSERT_FALSE(sweep.failed_seeds.empty()) << log.str();
  const SeedOutcome& original = FirstFailure(sweep);
  ASSERT_FALSE(original.schedule_path.empty()) << original.report;

  std::ostringstream replay_log;
  SweepResult replay =
      SeedSweep(QuietOptions(&replay_log, {{"DSIM_REPLAY", original.schedule_path}})).Run(PlantedBug);
  ASSERT_EQ(replay.outcomes.size(), 1u) << replay_log.str();
  const SeedOutcome& again = replay.outcomes[0];
  EXPECT_EQ(again.seed, original.seed);
  EXPECT_EQ(again.status, original.status);
  EXPECT_EQ(again.fingerprint, original.fingerprint) << "the same event stream";
  EXPECT_EQ(again.steps, original.steps);
  EXPECT_TRUE(absl::StartsWith(again.strategy, "replay(")) << again.strategy;
  EXPECT_EQ(ReportLine(again.report, "replay"),
            ReportLine(original.report, "replay"))
      << "a failing replay offers itself again\n" << again.report;
  EXPECT_FALSE(absl::StrContains(again.report, "rerun:")) << again.report;
}

TEST(HarnessSchedules, APassingReplayPasses) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 30;
  const SeedOutcome failed = FirstFailure(SeedSweep(options).Run(PlantedBug));
  // The same program with the bug fixed makes the same decisions and passes.
  auto fixed = [](Simulation& sim) -> absl::Status {
    absl::Status status = PlantedBug(sim);
    return absl::StrContains(status.message(), "stale read") ? absl::OkStatus() : status;
  };
  std::ostringstream replay_log;
  SweepResult replay =
      SeedSweep(QuietOptions(&replay_log, {{"DSIM_REPLAY", failed.schedule_path}})).Run(fixed);
  EXPECT_TRUE(replay.ok()) << replay_log.str();
  EXPECT_EQ(SeedsOf(replay), std::vector<uint64_t>{failed.seed});
}

TEST(HarnessSchedules, AReplayOfAnotherProgramReportsWhereItDiverged) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log);
  options.seeds = 30;
  const SeedOutcome failed = FirstFailure(SeedSweep(options).Run(PlantedBug));
  std::ostringstream replay_log;
  SweepResult replay =
      SeedSweep(QuietOptions(&replay_log, {{"DSIM_REPLAY", failed.schedule_path}})).Run(Workload);
  ASSERT_EQ(replay.failed_seeds, std::vector<uint64_t>{failed.seed}) << replay_log.str();
  const SeedOutcome& diverged = replay.outcomes[0];
  EXPECT_EQ(diverged.status.code(), absl::StatusCode::kFailedPrecondition);
  const std::string& report = diverged.report;
  EXPECT_TRUE(std::regex_search(report, std::regex("FAIL seed=[0-9]+ strategy=replay\\([^\n]*: "
                                                   "replay diverged at decision [0-9]+ \\(step "
                                                   "[0-9]+, ")))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "the schedule expected ")) << report;
  EXPECT_TRUE(absl::StrContains(report, "the program asked ")) << report;
  // Names, not just ids: the recorded run's tasks, and this program's.
  EXPECT_TRUE(std::regex_search(report, std::regex("the schedule expected [^\n]*\"(reader|waiter)\"")))
      << report;
  EXPECT_TRUE(std::regex_search(report, std::regex("the program asked [^\n]*\"worker-[0-2]\"")))
      << report;
  EXPECT_TRUE(absl::StrContains(report, "the code no longer fits this schedule")) << report;
}

// Fails after drawing `draws` random values, so its schedule ends with them.
SeedSweep::Body DrawsThenFails(int draws, bool fail) {
  return [draws, fail](Simulation& sim) -> absl::Status {
    sim.Spawn("drawer", [&sim, draws] {
      for (int i = 0; i < draws; ++i) sim.random().Below(10);
    });
    if (absl::Status s = sim.Run().status(); !s.ok()) return s;
    return fail ? absl::InternalError("planted") : absl::OkStatus();
  };
}

TEST(HarnessSchedules, AReplayOfAProgramThatEndsSoonerReportsItIncomplete) {
  std::ostringstream log;
  SweepResult recorded = SeedSweep(QuietOptions(&log, {{"DSIM_SEED", "3"}}))
                             .Run(DrawsThenFails(4, /*fail=*/true));
  ASSERT_EQ(recorded.failed_seeds, std::vector<uint64_t>{3});
  const std::string path = recorded.outcomes[0].schedule_path;
  // Two draws fewer: every decision it makes fits, but the schedule is not used up.
  std::ostringstream replay_log;
  SweepResult replay = SeedSweep(QuietOptions(&replay_log, {{"DSIM_REPLAY", path}}))
                           .Run(DrawsThenFails(2, /*fail=*/false));
  ASSERT_EQ(replay.failed_seeds, std::vector<uint64_t>{3}) << replay_log.str();
  EXPECT_TRUE(absl::StrContains(replay.outcomes[0].report, ": replay incomplete: the program made "))
      << replay.outcomes[0].report;
}

TEST(HarnessSchedules, ReplayConfigurationErrorsAreClear) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_SEED", "4"}});
  options.simulation.strategy = "roundrobin";
  const std::string path = absl::StrCat(::testing::TempDir(), "/schedules/config.dsched");
  SweepResult recorded = SeedSweep(options).Run(DrawsThenFails(1, /*fail=*/true));
  ASSERT_EQ(recorded.outcomes[0].schedule_path,
            absl::StrCat(::testing::TempDir(), "/schedules/",
                         Stem("HarnessSchedules.ReplayConfigurationErrorsAreClear", 4), ".dsched"));
  const std::string saved = recorded.outcomes[0].schedule_path;
  for (const auto& [env, want] : std::vector<std::pair<std::map<std::string, std::string>, std::string>>{
           {{{"DSIM_REPLAY", "/no/such/file.dsched"}}, "DSIM_REPLAY: "},
           {{{"DSIM_REPLAY", "relative.dsched"}}, "give an absolute path"},
           {{{"DSIM_REPLAY", saved}, {"DSIM_STRATEGY", "pct:2"}}, "DSIM_STRATEGY=pct:2"},
           {{{"DSIM_REPLAY", saved}, {"DSIM_SEED", "5"}}, "DSIM_SEED=5 contradicts"},
           {{{"DSIM_SHRINK", "1"}, {"DSIM_RECORD", "0"}}, "DSIM_SHRINK=1 needs"}}) {
    std::ostringstream error_log;
    bool ran = false;
    SweepResult result = SeedSweep(QuietOptions(&error_log, env)).Run([&](Simulation&) {
      ran = true;
      return absl::OkStatus();
    });
    EXPECT_FALSE(result.config_error.ok()) << want;
    EXPECT_FALSE(ran) << want;
    EXPECT_TRUE(absl::StrContains(error_log.str(), want)) << error_log.str();
  }
  // The same seed as the file's is no contradiction.
  std::ostringstream same_log;
  SweepResult same = SeedSweep(QuietOptions(&same_log, {{"DSIM_REPLAY", saved}, {"DSIM_SEED", "4"}}))
                         .Run(DrawsThenFails(1, /*fail=*/false));
  EXPECT_TRUE(same.ok()) << same_log.str();
}

// A lost update: three tasks increment a shared counter by reading it, reaching a
// preemption point, and writing it back, between preemption points that are only noise.
// A random walk loses an update in most seeds, with many irrelevant preemptions.
absl::Status LostUpdate(Simulation& sim) {
  auto counter = std::make_shared<int>(0);
  for (int i = 0; i < 3; ++i) {
    sim.Spawn(absl::StrCat("incr-", i), [counter] {
      for (int noise = 0; noise < 6; ++noise) dsim::SchedulingPoint();
      const int read = *counter;
      dsim::SchedulingPoint();
      *counter = read + 1;
      for (int noise = 0; noise < 6; ++noise) dsim::SchedulingPoint();
    });
  }
  if (absl::Status s = sim.Run().status(); !s.ok()) return s;
  if (*counter != 3) {
    return absl::InternalError(absl::StrCat("lost update: counter is ", *counter, ", want 3"));
  }
  return absl::OkStatus();
}

TEST(HarnessSchedules, DsimShrinkSavesASmallerScheduleThatStillFails) {
  const std::string stable = FreshDir("shrunk");
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_SHRINK", "1"}, {"DSIM_SCHEDULE_DIR", stable}});
  options.seeds = 20;
  options.stop_after_failures = 1;
  SweepResult result = SeedSweep(options).Run(LostUpdate);
  ASSERT_EQ(result.failed_seeds.size(), 1u) << log.str();
  const SeedOutcome& failed = result.outcomes.back();
  ASSERT_FALSE(failed.shrunk_schedule_path.empty()) << failed.report;
  absl::StatusOr<Schedule> original = Schedule::Load(failed.schedule_path);
  absl::StatusOr<Schedule> shrunk = Schedule::Load(failed.shrunk_schedule_path);
  ASSERT_TRUE(original.ok() && shrunk.ok());
  const ScheduleStats before = original->Stats();
  const ScheduleStats after = shrunk->Stats();
  EXPECT_LE(after.preemptions, before.preemptions) << failed.report;
  EXPECT_GT(before.preemptions, 0u) << failed.report;
  EXPECT_TRUE(absl::StrContains(failed.report, absl::StrCat("preemptions ", before.preemptions,
                                                             " -> ", after.preemptions)))
      << failed.report;
  // The readable interleaving sits beside it.
  const std::string text_path =
      absl::StrReplaceAll(failed.shrunk_schedule_path, {{".shrunk.dsched", ".shrunk.txt"}});
  std::ifstream text(text_path);
  ASSERT_TRUE(text.good()) << text_path;
  std::string interleaving((std::istreambuf_iterator<char>(text)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(absl::StrContains(interleaving, "incr-")) << interleaving;
  EXPECT_TRUE(absl::StrContains(failed.report, absl::StrCat("DSIM_REPLAY=", failed.shrunk_schedule_path)))
      << failed.report;

  // Replaying the shrunk schedule fails the same way.
  std::ostringstream replay_log;
  SweepResult replay =
      SeedSweep(QuietOptions(&replay_log, {{"DSIM_REPLAY", failed.shrunk_schedule_path}})).Run(LostUpdate);
  ASSERT_EQ(replay.failed_seeds, std::vector<uint64_t>{failed.seed}) << replay_log.str();
  EXPECT_TRUE(absl::StrContains(replay.outcomes[0].status.message(), "lost update"))
      << replay.outcomes[0].report;
}

TEST(HarnessShrink, TheBudgetComesFromTheEnvironmentAndProgressIsPrintedAndSaved) {
  const std::string stable = FreshDir("shrunk-budget");
  std::ostringstream log;
  SweepOptions options = QuietOptions(
      &log, {{"DSIM_SHRINK", "1"}, {"DSIM_SHRINK_RUNS", "6"}, {"DSIM_SCHEDULE_DIR", stable}});
  options.seeds = 20;
  options.stop_after_failures = 1;
  SweepResult result = SeedSweep(options).Run(LostUpdate);
  ASSERT_EQ(result.failed_seeds.size(), 1u) << log.str();
  const SeedOutcome& failed = result.outcomes.back();
  EXPECT_TRUE(absl::StrContains(failed.report, "  shrunk (6 runs")) << failed.report;
  // Every improvement was printed as it happened, and its schedule saved at once.
  EXPECT_TRUE(absl::StrContains(log.str(), absl::StrCat("dsim shrink seed ", failed.seed, ": run ")))
      << log.str();
  EXPECT_TRUE(absl::StrContains(log.str(), "/6, preemptions ")) << log.str();
  EXPECT_TRUE(Schedule::Load(failed.shrunk_schedule_path).ok());
  // A budget that is not a positive count is a configuration error.
  std::ostringstream bad_log;
  SweepResult bad = SeedSweep(QuietOptions(&bad_log, {{"DSIM_SHRINK_RUNS", "0"}})).Run(LostUpdate);
  EXPECT_FALSE(bad.config_error.ok());
}

TEST(HarnessShrink, StopsInTimeBeforeBazelsTestTimeout) {
  std::ostringstream log;
  // A 1-second TEST_TIMEOUT has long passed: shrinking keeps only its first run.
  SweepOptions options =
      QuietOptions(&log, {{"DSIM_SHRINK", "1"}, {"TEST_TIMEOUT", "1"}});
  options.seeds = 20;
  options.stop_after_failures = 1;
  SweepResult result = SeedSweep(options).Run(LostUpdate);
  ASSERT_EQ(result.failed_seeds.size(), 1u) << log.str();
  EXPECT_TRUE(absl::StrContains(result.outcomes.back().report,
                                "  shrunk (1 runs, stopped early to finish before TEST_TIMEOUT)"))
      << result.outcomes.back().report;
}

TEST(HarnessShrink, TheSweepsWallTimeIncludesShrinking) {
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_SHRINK", "1"}});
  options.seeds = 20;
  options.stop_after_failures = 1;
  const auto start = std::chrono::steady_clock::now();
  SweepResult result = SeedSweep(options).Run(LostUpdate);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(result.failed_seeds.size(), 1u);
  EXPECT_GE(result.wall_seconds, 0.9 * elapsed) << "wall " << result.wall_seconds << " of " << elapsed;
}

std::string FirstLine(absl::string_view text) { return std::string(text.substr(0, text.find('\n'))); }

// A fix checked against the failing scenario: the lost update of LostUpdate, with the
// increment made atomic. Same tasks, same decisions where they still apply.
TEST(HarnessSchedules, AGuidedReplayFollowsTheScheduleAndFallsBackWhereItNoLongerFits) {
  const std::string stable = FreshDir("guided");
  std::ostringstream log;
  SweepOptions options = QuietOptions(&log, {{"DSIM_SCHEDULE_DIR", stable}});
  options.seeds = 20;
  options.stop_after_failures = 1;
  SweepResult result = SeedSweep(options).Run(LostUpdate);
  ASSERT_EQ(result.failed_seeds.size(), 1u) << log.str();
  const SeedOutcome& failed = result.outcomes.back();
  const std::string spec = "guided:" + failed.schedule_path;

  // The same program under the guided replay: the same failure, every decision followed.
  std::ostringstream again_log;
  SweepResult again = SeedSweep(QuietOptions(&again_log, {{"DSIM_STRATEGY", spec}})).Run(LostUpdate);
  ASSERT_EQ(again.failed_seeds, std::vector<uint64_t>{failed.seed}) << again_log.str();
  EXPECT_TRUE(absl::StrContains(again.outcomes[0].strategy, " 0 by random(")) << again.outcomes[0].strategy;
  EXPECT_EQ(FirstLine(again.outcomes[0].status.message()), FirstLine(failed.status.message()));

  // A changed program: one more task, drawing values the schedule never saw. The guided
  // replay still runs it to the end (a plain replay would stop as diverged), falling
  // back where the schedule has nothing that fits.
  auto changed = [](Simulation& sim) -> absl::Status {
    sim.Spawn("newcomer", [&sim] {
      for (int i = 0; i < 3; ++i) sim.random().Below(7);
    });
    return LostUpdate(sim);
  };
  std::ostringstream changed_log;
  SweepResult guided =
      SeedSweep(QuietOptions(&changed_log, {{"DSIM_STRATEGY", spec}})).Run(changed);
  ASSERT_EQ(guided.outcomes.size(), 1u);
  EXPECT_EQ(guided.outcomes[0].seed, failed.seed);
  EXPECT_FALSE(absl::StrContains(guided.outcomes[0].report, "replay diverged")) << guided.outcomes[0].report;
  EXPECT_TRUE(std::regex_search(guided.outcomes[0].strategy, std::regex(" [1-9][0-9]* by random\\(")))
      << guided.outcomes[0].strategy;
}

// ---- Child processes ---------------------------------------------------------------

bool IsChild() {
  const char* child = std::getenv("DSIM_HARNESS_CHILD");
  return child != nullptr && std::string(child) == "1";
}

// In a child: a sweep that logs each seed it runs (one line per seed, appended).
TEST(HarnessChild, SweepLogsSeeds) {
  if (!IsChild()) GTEST_SKIP() << "runs only as a child of other tests";
  const std::string log_path = std::getenv("DSIM_CHILD_SEED_LOG");
  SweepOptions options;
  options.seeds = 30;
  std::mutex mu;
  SeedSweep(options).Run([&](Simulation& sim) {
    {
      std::lock_guard<std::mutex> lock(mu);
      std::ofstream(log_path, std::ios::app) << sim.seed() << "\n";
    }
    return Workload(sim);
  });
}

// In a child: a sweep with the planted seed-dependent bug.
TEST(HarnessChild, PlantedBug) {
  if (!IsChild()) GTEST_SKIP() << "runs only as a child of other tests";
  SweepOptions options;
  options.seeds = 30;
  SeedSweep(options).Run(PlantedBug);
}

struct ChildResult {
  int exit_code = -1;
  std::string output;
};

// Runs a shell command line, capturing stdout and stderr.
ChildResult Shell(const std::string& command) {
  ChildResult result;
  FILE* pipe = popen(absl::StrCat(command, " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string SelfExe() {
  char buffer[4096];
  const ssize_t length = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  return length > 0 ? std::string(buffer, static_cast<size_t>(length)) : "";
}

// The environment of child sweeps: no Bazel target (commands run the binary itself),
// and schedules kept in this test's temporary directory.
std::string ChildEnv() {
  return absl::StrCat("env -u TEST_TARGET -u TEST_UNDECLARED_OUTPUTS_DIR DSIM_HARNESS_CHILD=1 ",
                      "DSIM_SCHEDULE_DIR=", ::testing::TempDir(), "/child-schedules ");
}

TEST(HarnessProcess, BazelStyleShardsEachRunTheSweepAndSplitItsSeeds) {
  const std::string dir = ::testing::TempDir();
  const std::string seed_log = absl::StrCat(dir, "/child-seeds.txt");
  std::remove(seed_log.c_str());
  for (int shard = 0; shard < 3; ++shard) {
    const std::string status = absl::StrCat(dir, "/child-status-", shard);
    std::remove(status.c_str());
    // As Bazel's test runner does: TEST_* and the GTEST_* copies.
    const ChildResult child = Shell(absl::StrCat(
        ChildEnv(), "DSIM_CHILD_SEED_LOG=", seed_log,
        " TEST_TOTAL_SHARDS=3 TEST_SHARD_INDEX=", shard, " GTEST_TOTAL_SHARDS=3 GTEST_SHARD_INDEX=",
        shard, " TEST_SHARD_STATUS_FILE=", status, " ", SelfExe(),
        " --gtest_filter=HarnessChild.SweepLogsSeeds"));
    EXPECT_EQ(child.exit_code, 0) << child.output;
    EXPECT_TRUE(absl::StrContains(child.output, absl::StrCat("(shard ", shard + 1, "/3 of 30)")))
        << child.output;
    EXPECT_TRUE(std::ifstream(status).good()) << "shard " << shard << " touched its status file";
  }
  std::ifstream log(seed_log);
  std::multiset<uint64_t> seeds;
  for (uint64_t seed; log >> seed;) seeds.insert(seed);
  std::multiset<uint64_t> want;
  for (uint64_t s = 1; s <= 30; ++s) want.insert(s);
  EXPECT_EQ(seeds, want) << "every seed exactly once across the shards";
}

TEST(HarnessProcess, ThePrintedRerunCommandReproducesTheFailureWhenRunByAShell) {
  const ChildResult sweep = Shell(absl::StrCat(ChildEnv(), SelfExe(),
                                               " --gtest_filter=HarnessChild.PlantedBug"));
  ASSERT_NE(sweep.exit_code, 0) << sweep.output;
  std::smatch fail;
  ASSERT_TRUE(std::regex_search(sweep.output, fail, std::regex("FAIL seed=([0-9]+) [^\n]*")))
      << sweep.output;
  std::smatch rerun;
  ASSERT_TRUE(std::regex_search(sweep.output, rerun, std::regex("rerun: ([^\n]*)")));
  const std::string command = rerun[1];
  EXPECT_TRUE(absl::StartsWith(command, absl::StrCat("DSIM_SEED=", fail[1].str(), " ")))
      << command;

  const ChildResult again = Shell(absl::StrCat(ChildEnv(), command));
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_TRUE(absl::StrContains(again.output, fail[0].str())) << "same FAIL line\n" << again.output;
  EXPECT_TRUE(absl::StrContains(again.output, "1 seed run, 1 failed")) << again.output;
}

TEST(HarnessProcess, ThePrintedReplayCommandReproducesTheFailureWhenRunByAShell) {
  const ChildResult sweep = Shell(absl::StrCat(ChildEnv(), SelfExe(),
                                               " --gtest_filter=HarnessChild.PlantedBug"));
  ASSERT_NE(sweep.exit_code, 0) << sweep.output;
  std::smatch fail;
  ASSERT_TRUE(std::regex_search(sweep.output, fail,
                                std::regex("FAIL seed=([0-9]+) strategy=[^:]*(: [^\n]*)")))
      << sweep.output;
  std::smatch replay;
  ASSERT_TRUE(std::regex_search(sweep.output, replay, std::regex("  replay: ([^\n]*)")))
      << sweep.output;
  const std::string command = replay[1];
  EXPECT_TRUE(absl::StartsWith(command, "DSIM_REPLAY=/")) << command;

  const ChildResult again = Shell(absl::StrCat(ChildEnv(), command));
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_TRUE(absl::StrContains(
      again.output, absl::StrCat("FAIL seed=", fail[1].str(), " strategy=replay(")))
      << again.output;
  EXPECT_TRUE(absl::StrContains(again.output, fail[2].str())) << "same failure\n" << again.output;
  EXPECT_TRUE(absl::StrContains(again.output, "1 seed run, 1 failed")) << again.output;
}

}  // namespace
}  // namespace dsim
