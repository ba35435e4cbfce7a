// An ordinary SeedSweep run under DSIM_EXPLORE=guided (set by the BUILD target's env,
// no code change) finds a planted deep bug, reports it like a failing seed, and the
// replay command it prints gives the failing run back.
#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "sim/harness.h"
#include "tests/deep_bugs/deep_bugs.h"

namespace dsim::deep_bugs {
namespace {

constexpr uint64_t kBudget = 3000;

const DeepBug& Bug() { return Corpus()[0]; }  // partition_leader_change_clock_jump

// The sweep a user would write; only the logging is redirected for the checks.
SweepResult Sweep(std::ostream* log, const std::string& schedule_dir, bool buggy = true,
                  EnvLookup env = nullptr) {
  SweepOptions options{.seeds = kBudget,
                       .stop_after_failures = 1,
                       .report_to_gtest = false,
                       .log = log,
                       .schedule_dir = schedule_dir,
                       .test_name = "GuidedSweep.Bug",
                       .env = std::move(env)};
  return SeedSweep(options).Run(buggy ? Bug().buggy : Bug().fixed);
}

std::string TempDir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

// The schedule path in the report's "replay: ... DSIM_REPLAY=<path> ..." line.
std::optional<std::string> ReplayPath(const std::string& report) {
  for (absl::string_view line : absl::StrSplit(report, '\n')) {
    if (!absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "replay:")) continue;
    const size_t at = line.find("DSIM_REPLAY=");
    if (at == absl::string_view::npos) return std::nullopt;
    absl::string_view rest = line.substr(at + 12);
    return std::string(rest.substr(0, rest.find(' ')));
  }
  return std::nullopt;
}

TEST(GuidedSweep, TheEnvironmentTurnsGuidedModeOn) {
  const char* explore = std::getenv("DSIM_EXPLORE");
  ASSERT_TRUE(explore != nullptr && std::string(explore) == "guided")
      << "the BUILD target sets DSIM_EXPLORE=guided";
}

TEST(GuidedSweep, FindsTheDeepBugAndItsReplayCommandReproducesIt) {
  std::ostringstream log;
  const SweepResult result = Sweep(&log, TempDir());
  const std::string text = log.str();
  ASSERT_TRUE(result.config_error.ok()) << result.config_error;
  EXPECT_TRUE(result.guided);
  ASSERT_EQ(result.failed_seeds.size(), 1u) << text;
  EXPECT_LT(result.seeds_run, kBudget);
  std::cerr << text << "guided sweep found " << Bug().name << " in " << result.seeds_run << " runs\n";
  const SeedOutcome& failed = result.outcomes.back();
  EXPECT_TRUE(absl::StrContains(failed.status.message(), "DSIM_ALWAYS")) << failed.status;
  // Reported like a failing seed, with what the run was and how to get it back.
  EXPECT_TRUE(absl::StrContains(text, absl::StrCat("FAIL seed=", failed.seed))) << text;
  EXPECT_TRUE(absl::StrContains(text, "guided run ")) << text;
  EXPECT_TRUE(absl::StrContains(text, "guided runs, 1 failed")) << text;
  EXPECT_FALSE(absl::StrContains(text, "rerun: ")) << "a guided run's seed does not give it back";
  const std::optional<std::string> path = ReplayPath(text);
  ASSERT_TRUE(path.has_value()) << text;
  EXPECT_EQ(*path, failed.schedule_path);

  // The printed command: DSIM_REPLAY=<path> (DSIM_EXPLORE=guided may stay set: a replay
  // is one run).
  std::ostringstream replay_log;
  const SweepResult replayed = Sweep(&replay_log, "", true, [&](absl::string_view name) {
    if (name == "DSIM_REPLAY") return std::optional<std::string>(*path);
    if (name == "DSIM_EXPLORE") return std::optional<std::string>("guided");
    return std::optional<std::string>();
  });
  ASSERT_TRUE(replayed.config_error.ok()) << replayed.config_error;
  EXPECT_FALSE(replayed.guided);
  ASSERT_EQ(replayed.outcomes.size(), 1u);
  EXPECT_EQ(replayed.outcomes[0].status, failed.status) << replay_log.str();
  EXPECT_EQ(replayed.outcomes[0].fingerprint, failed.fingerprint);
}

TEST(GuidedSweep, IsDeterministicFromTheSweepSeed) {
  std::ostringstream a_log, b_log;
  const SweepResult a = Sweep(&a_log, ""), b = Sweep(&b_log, "");
  EXPECT_EQ(a.seeds_run, b.seeds_run);
  EXPECT_EQ(a.failed_seeds, b.failed_seeds);
  ASSERT_EQ(a.outcomes.size(), b.outcomes.size());
  for (size_t i = 0; i < a.outcomes.size(); ++i) {
    EXPECT_EQ(a.outcomes[i].fingerprint, b.outcomes[i].fingerprint) << "run " << i + 1;
  }
}

TEST(GuidedSweep, TheFixedTwinPassesTheSameBudget) {
  std::ostringstream log;
  const SweepResult result = [&] {
    SweepOptions options{.seeds = 300,
                         .report_to_gtest = false,
                         .log = &log,
                         .schedule_dir = "",
                         .test_name = "GuidedSweep.Fixed"};
    return SeedSweep(options).Run(Bug().fixed);
  }();
  EXPECT_TRUE(result.ok()) << log.str();
  EXPECT_TRUE(result.guided);
  EXPECT_EQ(result.seeds_run, 300u);
}

// Under Bazel sharding each shard runs its own guided search: its share of the budget,
// seeded by its own first seed, the same every time.
TEST(GuidedSweep, EachShardRunsItsOwnDeterministicSearch) {
  auto shard = [](int index) {
    std::ostringstream log;
    SweepOptions options{.seeds = 40, .report_to_gtest = false, .log = &log, .schedule_dir = ""};
    options.env = [index](absl::string_view name) -> std::optional<std::string> {
      if (name == "DSIM_EXPLORE") return "guided";
      if (name == "TEST_TOTAL_SHARDS") return "2";
      if (name == "TEST_SHARD_INDEX") return std::to_string(index);
      return std::nullopt;
    };
    return SeedSweep(options).Run(Bug().fixed);
  };
  const SweepResult a = shard(0), b = shard(1), a_again = shard(0);
  ASSERT_EQ(a.outcomes.size(), 20u);
  ASSERT_EQ(b.outcomes.size(), 20u);
  EXPECT_TRUE(a.guided && b.guided);
  EXPECT_EQ(a.total_shards, 2);
  EXPECT_NE(a.outcomes[0].seed, b.outcomes[0].seed);  // Different searches.
  for (size_t i = 0; i < a.outcomes.size(); ++i) {
    EXPECT_EQ(a.outcomes[i].seed, a_again.outcomes[i].seed);
    EXPECT_EQ(a.outcomes[i].fingerprint, a_again.outcomes[i].fingerprint);
  }
}

// DSIM_CHECK_DETERMINISM=1 replays every guided run's schedule: a body that depends on
// something outside the simulation (here a counter shared by runs) is caught.
TEST(GuidedSweep, CheckDeterminismReplaysEachRun) {
  auto sweep = [](bool leak) {
    std::ostringstream log;
    SweepOptions options{.seeds = 10, .report_to_gtest = false, .log = &log, .schedule_dir = ""};
    options.env = [](absl::string_view name) -> std::optional<std::string> {
      if (name == "DSIM_EXPLORE") return "guided";
      if (name == "DSIM_CHECK_DETERMINISM") return "1";
      return std::nullopt;
    };
    auto calls = std::make_shared<int>(0);
    return SeedSweep(options).Run([leak, calls](Simulation& sim) {
      const int n = leak ? ++*calls : 1;  // Differs between a run and its replay.
      sim.Spawn("t", [n] { dsim::SleepFor(absl::Milliseconds(n)); });
      return sim.Run().status();
    });
  };
  const SweepResult clean = sweep(false);
  EXPECT_TRUE(clean.ok());
  EXPECT_EQ(clean.seeds_run, 10u);
  const SweepResult leaky = sweep(true);
  ASSERT_FALSE(leaky.failed_seeds.empty());
  EXPECT_TRUE(leaky.outcomes[0].nondeterministic);
  EXPECT_TRUE(absl::StrContains(leaky.outcomes[0].status.message(), "nondeterminism"))
      << leaky.outcomes[0].status;
}

TEST(GuidedSweep, BadExplorationValuesAndContradictionsAreConfigErrors) {
  auto config_error = [](absl::string_view explore, absl::string_view strategy) {
    std::ostringstream log;
    SweepOptions options{.seeds = 2, .report_to_gtest = false, .log = &log};
    options.env = [=](absl::string_view name) -> std::optional<std::string> {
      if (name == "DSIM_EXPLORE") return std::string(explore);
      if (name == "DSIM_STRATEGY" && !strategy.empty()) return std::string(strategy);
      return std::nullopt;
    };
    return SeedSweep(options).Run([](Simulation&) { return absl::OkStatus(); }).config_error;
  };
  EXPECT_TRUE(absl::StrContains(config_error("sometimes", "").message(), "DSIM_EXPLORE"));
  EXPECT_TRUE(absl::StrContains(config_error("guided", "pct").message(), "contradict"));
  EXPECT_TRUE(config_error("seeds", "pct").ok());
}

}  // namespace
}  // namespace dsim::deep_bugs
