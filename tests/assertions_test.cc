// Named assertions, BUGGIFY sites and the sweep's coverage report.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/schedule.h"
#include "scheduler/strategies.h"
#include "sim/assertions.h"
#include "sim/buggify.h"
#include "sim/coverage.h"
#include "sim/harness.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

EnvLookup NoEnv() {
  return [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
}

SweepOptions Quiet(std::ostringstream* log, uint64_t seeds) {
  SweepOptions options;
  options.seeds = seeds;
  options.report_to_gtest = false;
  options.record_schedules = false;
  options.log = log;
  options.env = NoEnv();
  options.schedule_dir = "";
  return options;
}

TEST(Assertions, AlwaysThatFailsFailsTheRunWithNameAndLocation) {
  Simulation sim(SimulationOptions{.seed = 1});
  sim.Spawn("t", [] {
    dsim::SleepFor(absl::Milliseconds(1));
    DSIM_ALWAYS(1 + 1 == 3, "arithmetic holds");
    dsim::SleepFor(absl::Milliseconds(1));
  });
  RunResult result = sim.Run();
  ASSERT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_TRUE(absl::StrContains(result.failure,
                                "DSIM_ALWAYS(\"arithmetic holds\") failed at assertions_test.cc:"))
      << result.failure;
  EXPECT_EQ(sim.coverage().first_violation().substr(0, 21), "DSIM_ALWAYS(\"arithmet");
}

TEST(Assertions, AlwaysThatHoldsDoesNothing) {
  Simulation sim(SimulationOptions{.seed = 1});
  sim.Spawn("t", [] { DSIM_ALWAYS(true, "truth"); });
  EXPECT_TRUE(sim.Run().ok());
}

TEST(Assertions, UnreachableReachedFailsTheRun) {
  Simulation sim(SimulationOptions{.seed = 1});
  sim.Spawn("t", [] { DSIM_UNREACHABLE("the impossible branch"); });
  RunResult result = sim.Run();
  ASSERT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_TRUE(absl::StrContains(
      result.failure, "DSIM_UNREACHABLE(\"the impossible branch\") reached at assertions_test.cc:"))
      << result.failure;
}

TEST(Assertions, OutsideASimulationTheyDoNothing) {
  DSIM_ALWAYS(false, "outside always");
  DSIM_UNREACHABLE("outside unreachable");
  DSIM_SOMETIMES(true, "outside sometimes");
  EXPECT_FALSE(DSIM_BUGGIFY);
}

TEST(Assertions, SitesAreRegisteredBeforeTheyRunWithSourceIndependentKeys) {
  std::vector<std::string> keys;
  for (const Site* site : RegisteredSites()) keys.push_back(SiteKey(*site) + " @" + SiteLocation(*site));
  auto has = [&](absl::string_view prefix) {
    return std::any_of(keys.begin(), keys.end(),
                       [&](const std::string& k) { return absl::StartsWith(k, prefix); });
  };
  EXPECT_TRUE(has("reachable never reached anywhere @assertions_test.cc:"));
  EXPECT_TRUE(has("buggify assertions_test.cc:"));  // Unnamed: basename and line, no directory.
  if (keys.empty()) {
    DSIM_REACHABLE("never reached anywhere");  // Registered although never executed.
  }
}

// A body whose SOMETIMES holds in about half the seeds, and whose REACHABLE site is
// reached only when the seed's first draw is below 1/8.
absl::Status CoinBody(Simulation& sim) {
  sim.Spawn("coin", [&sim] {
    const uint64_t coin = sim.random().Below(8);
    DSIM_SOMETIMES(coin < 4, "coin lands low");
    if (coin == 0) DSIM_REACHABLE("coin lands on zero");
  });
  return sim.Run().status();
}

TEST(Coverage, CountsSeedsThatHitEachProperty) {
  std::ostringstream log;
  SweepResult result = SeedSweep(Quiet(&log, 200)).Run(CoinBody);
  ASSERT_TRUE(result.ok()) << log.str();
  const uint64_t low = result.coverage.SeedsHit("sometimes coin lands low");
  const uint64_t zero = result.coverage.SeedsHit("reachable coin lands on zero");
  EXPECT_GT(low, 70u);
  EXPECT_LT(low, 130u);
  EXPECT_GT(zero, 10u);
  EXPECT_LT(zero, 45u);
  EXPECT_TRUE(absl::StrContains(log.str(), absl::StrCat("hit in ", low, " of 200 seeds")))
      << log.str();
}

TEST(Coverage, NeverHitPropertyIsAWarningOrOnRequestAFailure) {
  std::ostringstream log;
  SweepOptions options = Quiet(&log, 20);
  options.coverage.files = {"assertions_test.cc"};
  auto body = [](Simulation& sim) -> absl::Status {
    sim.Spawn("t", [] { DSIM_SOMETIMES(false, "the moon is square"); });
    return sim.Run().status();
  };
  SweepResult warned = SeedSweep(options).Run(body);
  EXPECT_TRUE(warned.ok());
  EXPECT_TRUE(absl::StrContains(log.str(), "WARNING: sometimes the moon is square")) << log.str();
  EXPECT_TRUE(absl::StrContains(log.str(), "was never hit in 20 seeds")) << log.str();

  options.coverage.fail_on_never_hit = true;
  SweepResult failed = SeedSweep(options).Run(body);
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(absl::StrContains(failed.coverage_error.message(), "sometimes the moon is square"));
}

TEST(Coverage, FaultKindsAreCountedPerSeed) {
  std::ostringstream log;
  auto body = [](Simulation& sim) -> absl::Status {
    Host& a = sim.AddHost({.name = "a", .start = [] {}, .addresses = {"10.0.0.1"}});
    Host& b = sim.AddHost({.name = "b", .start = [] {}, .addresses = {"10.0.0.2"}});
    if (sim.random().Below(2) == 0) sim.Partition({a.id()}, {b.id()});
    return sim.Run().status();
  };
  SweepResult result = SeedSweep(Quiet(&log, 40)).Run(body);
  ASSERT_TRUE(result.ok()) << log.str();
  const uint64_t partitioned = result.coverage.SeedsFault("fault.partition");
  EXPECT_GT(partitioned, 8u);
  EXPECT_LT(partitioned, 32u);
  EXPECT_TRUE(absl::StrContains(log.str(), "fault.partition")) << log.str();
}

TEST(Coverage, JsonRoundTripsAndShardsMerge) {
  SweepCoverage a, b;
  RunCoverage one;
  one.properties_hit = {"sometimes x"};
  one.buggify_fired = {"buggify f.cc:3"};
  one.buggify_enabled = {"buggify f.cc:3"};
  one.faults = {"fault.partition"};
  a.Add(one);
  a.Add(RunCoverage{});
  b.Add(one);
  const std::string dir = ::testing::TempDir();
  std::ofstream(dir + "/a.json") << a.ToJson("T.t", 0, 2);
  std::ofstream(dir + "/b.json") << b.ToJson("T.t \"quoted\"", 1, 2);
  absl::StatusOr<SweepCoverage> merged = MergeCoverageFiles({dir + "/a.json", dir + "/b.json"});
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->seeds(), 3u);
  EXPECT_EQ(merged->SeedsHit("sometimes x"), 2u);
  EXPECT_EQ(merged->SeedsBuggifyFired("buggify f.cc:3"), 2u);
  EXPECT_EQ(merged->SeedsFault("fault.partition"), 2u);
  EXPECT_FALSE(MergeCoverageFiles({dir + "/missing.json"}).ok());
}

int BuggifyFirings(Simulation& sim, int reaches) {
  int fired = 0;
  sim.Spawn("t", [&] {
    for (int i = 0; i < reaches; ++i) fired += DSIM_BUGGIFY ? 1 : 0;
  });
  EXPECT_TRUE(sim.Run().ok());
  return fired;
}

TEST(Buggify, SiteIsOnInAQuarterOfRunsAndFiresAQuarterOfTheTime) {
  int runs_on = 0, fired = 0;
  constexpr int kRuns = 2000, kReaches = 40;
  for (int seed = 1; seed <= kRuns; ++seed) {
    Simulation sim(SimulationOptions{.seed = static_cast<uint64_t>(seed)});
    const int n = BuggifyFirings(sim, kReaches);
    runs_on += sim.coverage().Summary().buggify_enabled.size();
    fired += n;
  }
  EXPECT_NEAR(runs_on / double(kRuns), 0.25, 0.04);
  EXPECT_NEAR(fired / double(runs_on * kReaches), 0.25, 0.03);
}

TEST(Buggify, ProbabilitiesAreConfigurableAndOffMeansNeverAndNoDecision) {
  SimulationOptions always{.seed = 3};
  always.buggify_sites = {.enabled = true, .site_probability = 1, .fire_probability = 1};
  Simulation on(always);
  EXPECT_EQ(BuggifyFirings(on, 10), 10);
  SimulationOptions off{.seed = 3};
  off.buggify_sites.enabled = false;
  Simulation never(off);
  EXPECT_EQ(BuggifyFirings(never, 10), 0);
  EXPECT_EQ(never.scheduler().decisions(), 0u);
}

TEST(Buggify, ReplayReproducesEveryChoiceAndZeroedDecisionsTurnSitesOff) {
  // Find a seed where the site fires, record it, replay it.
  for (uint64_t seed = 1; seed < 200; ++seed) {
    auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(seed), seed);
    int fired = 0;
    {
      Simulation sim(SimulationOptions{.seed = seed, .strategy_object = recorder});
      fired = BuggifyFirings(sim, 20);
    }
    if (fired == 0) continue;
    Schedule schedule = recorder->TakeSchedule();
    Simulation replay(SimulationOptions{
        .seed = seed, .strategy_object = std::make_shared<ReplayStrategy>(schedule)});
    EXPECT_EQ(BuggifyFirings(replay, 20), fired);
    // Every buggify choice is a "fault.*" value whose 0 means no: a strategy that
    // answers 0 everywhere (where shrinking goes) switches the site off.
    class Zero final : public Strategy {
     public:
      uint64_t Choose(const Decision&) override { return 0; }
      std::string Describe() const override { return "zero"; }
    };
    Simulation zero(SimulationOptions{.seed = seed, .strategy_object = std::make_shared<Zero>()});
    EXPECT_EQ(BuggifyFirings(zero, 20), 0);
    return;
  }
  FAIL() << "no seed fired";
}

TEST(Buggify, FiringsAreCountedInTheCoverageReport) {
  std::ostringstream log;
  auto body = [](Simulation& sim) -> absl::Status {
    sim.Spawn("t", [] {
      for (int i = 0; i < 10; ++i) (void)DSIM_BUGGIFY_NAMED("short timeout");
    });
    return sim.Run().status();
  };
  SweepResult result = SeedSweep(Quiet(&log, 100)).Run(body);
  const uint64_t fired = result.coverage.SeedsBuggifyFired("buggify short timeout");
  EXPECT_GT(fired, 8u);
  EXPECT_LT(fired, 35u);
  EXPECT_TRUE(absl::StrContains(log.str(), "buggify short timeout")) << log.str();
}

}  // namespace
}  // namespace dsim
