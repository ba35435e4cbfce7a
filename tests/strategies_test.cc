// PCT, round-robin and the strategy factory: the properties each strategy promises.
#include <cmath>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"
#include "scheduler/schedule.h"
#include "scheduler/strategies.h"
#include "sim/harness.h"
#include "tests/races/race_corpus.h"

namespace dsim {
namespace {

// Under ThreadSanitizer every fiber costs about 1.2 MiB of trace mappings, so sampled
// tests run fewer schedules (their statistical margins widen with fewer runs, so the
// checks stay sound) to fit the target's size.
#if defined(__SANITIZE_THREAD__)
constexpr int kSanitizerDivisor = 4;
#else
constexpr int kSanitizerDivisor = 1;
#endif

using races::FindProgram;
using races::RaceProgram;
using races::RaceRunOptions;
using races::Variant;

// Runs `runs` schedules of a buggy program under one PCT object; returns the failure
// rate and the largest number of choice points (kNextTask decisions) in a run.
struct PctSample {
  double rate = 0;
  uint64_t max_choice_points = 0;
  int tasks = 0;
};

PctSample SamplePct(const RaceProgram& program, int depth, int runs) {
  auto pct = std::make_shared<PctStrategy>(/*seed=*/42, PctOptions{.depth = depth});
  PctSample sample;
  sample.tasks = program.tasks;
  int failures = 0;
  for (int i = 0; i < runs; ++i) {
    auto recorder = std::make_shared<RecordingStrategy>(pct);
    failures += program.run(Variant::kBuggy, RaceRunOptions{recorder}).bug;
    sample.max_choice_points =
        std::max(sample.max_choice_points, recorder->schedule().Stats().task_choices);
  }
  sample.rate = static_cast<double>(failures) / runs;
  return sample;
}

// The PCT bound 1/(n k^(d-1)), less four standard deviations of a rate measured over
// `runs` runs, so the comparison is a sound statistical test and not a coin flip.
double BoundWithMargin(int tasks, uint64_t k, int depth, int runs) {
  const double bound = 1.0 / (tasks * std::pow(static_cast<double>(k), depth - 1));
  return bound - 4 * std::sqrt(bound * (1 - bound) / runs);
}

TEST(PctStrategy, FindsDepthOneOrderViolationAtLeastAsOftenAsTheBound) {
  // use_before_init fails when the worker runs before the loader: one ordering
  // constraint, so depth 1, and PCT promises a rate of at least 1/n.
  constexpr int kRuns = 2000 / kSanitizerDivisor;
  const PctSample sample = SamplePct(*FindProgram("use_before_init"), 1, kRuns);
  EXPECT_GE(sample.rate, BoundWithMargin(sample.tasks, sample.max_choice_points, 1, kRuns));
}

TEST(PctStrategy, FindsDepthTwoDeadlockAtLeastAsOftenAsTheBound) {
  // lock_order deadlocks when each task takes its first lock before the other takes its
  // second: two ordering constraints, depth 2, rate >= 1/(n k).
  constexpr int kRuns = 2000 / kSanitizerDivisor;
  const PctSample sample = SamplePct(*FindProgram("lock_order"), 2, kRuns);
  EXPECT_GE(sample.rate, BoundWithMargin(sample.tasks, sample.max_choice_points, 2, kRuns));
  EXPECT_GT(sample.rate, 0.0);
}

TEST(PctStrategy, DepthTwoFindsWhatDepthOneCannot) {
  // With d = 1 there is no change point: the highest-priority task runs until it blocks,
  // so the two locks are always taken by one task before the other starts.
  EXPECT_EQ(SamplePct(*FindProgram("lock_order"), 1, 300).rate, 0.0);
  EXPECT_GT(SamplePct(*FindProgram("lock_order"), 2, 300).rate, 0.0);
}

TEST(PctStrategy, PreemptsOnlyAtChangePointsWhenNoTaskWakes) {
  // The highest-priority runnable task always runs, so a running task loses the CPU to
  // another runnable one only at a change point (d-1 per run), or when a task of higher
  // priority becomes runnable. The buggy reorder_4 takes no locks and spawns nothing
  // while running, so nothing wakes: at most d-1 preemptions.
  for (int depth = 1; depth <= 3; ++depth) {
    auto pct = std::make_shared<PctStrategy>(7, PctOptions{.depth = depth});
    for (int i = 0; i < 200; ++i) {
      auto recorder = std::make_shared<RecordingStrategy>(pct);
      FindProgram("reorder_4")->run(Variant::kBuggy, RaceRunOptions{recorder});
      ASSERT_LE(recorder->schedule().Stats().preemptions, static_cast<uint64_t>(depth - 1))
          << "depth " << depth << " run " << i;
    }
  }
}

TEST(PctStrategy, LearnsTheStepEstimateFromEarlierRuns) {
  auto pct = std::make_shared<PctStrategy>(3, PctOptions{.depth = 3});
  EXPECT_EQ(pct->steps_estimate(), PctOptions::kDefaultSteps);
  uint64_t longest = 0;
  for (int i = 0; i < 20; ++i) {
    auto recorder = std::make_shared<RecordingStrategy>(pct);
    FindProgram("circular_buffer")->run(Variant::kFixed, RaceRunOptions{recorder});
    longest = std::max(longest, recorder->schedule().Stats().task_choices);
    EXPECT_EQ(pct->steps_estimate(), longest) << "after run " << i;
  }
}

TEST(PctStrategy, GivenStepEstimateIsKept) {
  auto pct = std::make_shared<PctStrategy>(3, PctOptions{.depth = 2, .steps = 500});
  FindProgram("circular_buffer")->run(Variant::kFixed, RaceRunOptions{pct});
  EXPECT_EQ(pct->steps_estimate(), 500u);
  EXPECT_EQ(pct->Describe(), "pct(d=2,k=500,seed=3)");
}

TEST(PctStrategy, SameSeedGivesTheSameSchedules) {
  const auto record = [](uint64_t seed) {
    auto pct = std::make_shared<PctStrategy>(seed, PctOptions{.depth = 3});
    std::vector<Schedule> schedules;
    for (int i = 0; i < 5; ++i) {
      auto recorder = std::make_shared<RecordingStrategy>(pct);
      FindProgram("token_ring")->run(Variant::kFixed, RaceRunOptions{recorder});
      schedules.push_back(recorder->TakeSchedule());
    }
    return schedules;
  };
  EXPECT_EQ(record(11), record(11));
  EXPECT_NE(record(11), record(12));
}

TEST(MakeStrategy, BuildsEverySpecInTheList) {
  for (const char* spec : {"random", "roundrobin", "pct", "pct:1", "pct:3", "pct:2:k=100"}) {
    absl::StatusOr<std::shared_ptr<Strategy>> strategy = MakeStrategy(spec, 5);
    ASSERT_TRUE(strategy.ok()) << spec << ": " << strategy.status();
    EXPECT_FALSE(FindProgram("token_ring")->run(Variant::kFixed, RaceRunOptions{*strategy}).bug)
        << spec;
  }
  EXPECT_EQ((*MakeStrategy("pct:2:k=100", 5))->Describe(), "pct(d=2,k=100,seed=5)");
  EXPECT_EQ((*MakeStrategy("pct", 5))->Describe(), "pct(d=3,k=64,learned,seed=5)");
}

TEST(MakeStrategy, RejectsMalformedSpecsWithTheValidForms) {
  for (const char* spec : {"pct:0", "pct:17", "pct:x", "pct:2:q=5", "pct:2:k=0", "pct:1:2:3",
                           "replay:", "bogus"}) {
    absl::StatusOr<std::shared_ptr<Strategy>> strategy = MakeStrategy(spec, 1);
    ASSERT_FALSE(strategy.ok()) << spec;
    EXPECT_EQ(strategy.status().code(), absl::StatusCode::kInvalidArgument) << spec;
    EXPECT_TRUE(absl::StrContains(strategy.status().message(), "pct:<d>:k=<steps>")) << spec;
  }
}

TEST(MakeStrategy, ReplayOfAMissingFileIsNotFound) {
  absl::StatusOr<std::shared_ptr<Strategy>> strategy =
      MakeStrategy("replay:/nonexistent/dir/x.dsched", 1);
  EXPECT_EQ(strategy.status().code(), absl::StatusCode::kNotFound);
}

TEST(RoundRobinStrategy, FixedTwinsPassAndRunsRepeat) {
  for (const races::RaceProgram& program : races::Corpus()) {
    auto a = std::make_shared<RecordingStrategy>(std::make_shared<RoundRobinStrategy>(1));
    auto b = std::make_shared<RecordingStrategy>(std::make_shared<RoundRobinStrategy>(1));
    EXPECT_FALSE(program.run(Variant::kFixed, RaceRunOptions{a}).bug) << program.name;
    program.run(Variant::kFixed, RaceRunOptions{b});
    EXPECT_EQ(a->schedule(), b->schedule()) << program.name;
  }
}


// ---- PCT and yields, spawn and join as scheduling points, calibration -------------------

// Two tasks spin on a flag with Yield while a third must run to set it. Under PCT
// without yield handling the two spinners hand the CPU to each other forever whenever
// both outrank the setter.
RunOutcome SpinAndYieldUnderPct(uint64_t seed) {
  bool flag = false;
  Scheduler scheduler(SchedulerOptions{
      .seed = seed,
      .strategy = std::make_shared<PctStrategy>(seed, PctOptions{.depth = 1}),
      .max_steps = 20000});
  for (int i = 0; i < 2; ++i) {
    scheduler.Spawn(absl::StrCat("spinner-", i), [&] {
      while (!flag) dsim::Yield();
    });
  }
  scheduler.Spawn("setter", [&] {
    dsim::SchedulingPoint();
    flag = true;
  });
  return scheduler.Run().outcome;
}

TEST(PctStrategy, YieldLowersPrioritySoSpinAndYieldLoopsFinish) {
  for (uint64_t seed = 1; seed <= 200 / kSanitizerDivisor; ++seed) {
    ASSERT_EQ(SpinAndYieldUnderPct(seed), RunOutcome::kCompleted) << "seed " << seed;
  }
}

// Records whether each task decision came from a yield.
class YieldFlagRecorder final : public Strategy {
 public:
  uint64_t Choose(const Decision& d) override {
    if (d.kind == DecisionKind::kNextTask) flags.push_back(d.from_yield);
    return 0;
  }
  std::string Describe() const override { return "yield-flags"; }
  std::vector<bool> flags;
};

TEST(Strategy, DecisionsSayWhenTheyComeFromAYield) {
  auto recorder = std::make_shared<YieldFlagRecorder>();
  Scheduler scheduler(SchedulerOptions{.strategy = recorder});
  for (int i = 0; i < 3; ++i) {
    scheduler.Spawn(absl::StrCat("t", i), [] {
      dsim::Yield();
      dsim::SchedulingPoint();
    });
  }
  ASSERT_TRUE(scheduler.Run().ok());
  int from_yield = 0, other = 0;
  for (bool f : recorder->flags) (f ? from_yield : other)++;
  EXPECT_GT(from_yield, 0);
  EXPECT_GT(other, 0);
}

TEST(Scheduler, SpawnIsASchedulingPointSoTheChildMayRunFirst) {
  int child_first = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    bool parent_went_on = false;
    scheduler.Spawn("parent", [&] {
      dsim::Spawn("child", [&] { child_first += !parent_went_on; });
      parent_went_on = true;
    });
    ASSERT_TRUE(scheduler.Run().ok());
  }
  EXPECT_GT(child_first, 0);
  EXPECT_LT(child_first, 50);
}

TEST(Scheduler, JoiningAFinishedTaskIsStillASchedulingPoint) {
  int other_ran_in_join = 0;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    bool other_ran = false;
    TaskHandle done = scheduler.Spawn("done", [] {});
    scheduler.Spawn("joiner", [&] {
      while (!done.done()) dsim::Yield();
      scheduler.Spawn("other", [&] { other_ran = true; });
      // The spawn above may already have let "other" run; count only the join.
      const bool before = other_ran;
      done.Join();
      other_ran_in_join += !before && other_ran;
    });
    ASSERT_TRUE(scheduler.Run().ok());
  }
  EXPECT_GT(other_ran_in_join, 0);
}

// A program with a known number of choice points per run.
void RunTwoTasksWithPoints(std::shared_ptr<Strategy> strategy, uint64_t max_steps) {
  Scheduler scheduler(SchedulerOptions{.strategy = strategy, .max_steps = max_steps});
  for (int i = 0; i < 2; ++i) {
    scheduler.Spawn(absl::StrCat("t", i), [] {
      for (int j = 0; j < 30; ++j) dsim::SchedulingPoint();
    });
  }
  scheduler.Run();
}

TEST(PctStrategy, RunsStoppedAtTheStepLimitTeachNothing) {
  auto pct = std::make_shared<PctStrategy>(1, PctOptions{.depth = 2});
  RunTwoTasksWithPoints(pct, /*max_steps=*/10);
  EXPECT_EQ(pct->learned_steps(), 0u);
  RunTwoTasksWithPoints(pct, /*max_steps=*/0);
  EXPECT_GT(pct->learned_steps(), 30u);
  EXPECT_EQ(pct->steps_estimate(), pct->learned_steps());
}

TEST(PctStrategy, CalibrationTakesTheLongestCountingRunAndFixesK) {
  int calls = 0;
  const uint64_t k = CalibratePctSteps(3, 4, [&](std::shared_ptr<Strategy> s, uint64_t seed) {
    ++calls;
    EXPECT_EQ(seed, static_cast<uint64_t>(calls));
    RunTwoTasksWithPoints(s, seed == 2 ? 10 : 0);  // Seed 2 hits the step limit.
  });
  EXPECT_EQ(calls, 4);
  EXPECT_GT(k, 30u);
  EXPECT_LT(k, 64u);
  PctStrategy pct(7, PctOptions{.depth = 3});
  pct.SetCalibratedSteps(k);
  EXPECT_EQ(pct.steps_estimate(), k);
  EXPECT_TRUE(absl::StrContains(pct.Describe(), absl::StrCat("k=", k, ",calibrated")));
  PctStrategy given(7, PctOptions{.depth = 3, .steps = 5});
  given.SetCalibratedSteps(k);  // A k from the spec wins.
  EXPECT_EQ(given.steps_estimate(), 5u);
}


// A sweep under "pct:2" calibrates k once, from fixed seeds, and every seed uses it: a
// seed run alone (DSIM_SEED) gets the same k and the same run.
TEST(PctStrategy, ASweepSharesOneCalibratedKAcrossItsSeeds) {
  auto sweep_of = [](uint64_t first_seed, uint64_t seeds) {
    SweepOptions options;
    options.seeds = seeds;
    options.first_seed = first_seed;
    options.simulation.strategy = "pct:2";
    options.report_to_gtest = false;
    std::ostringstream log;
    options.log = &log;
    options.env = [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
    return SeedSweep(options).Run([](Simulation& sim) {
      int counter = 0;
      for (int t = 0; t < 3; ++t) {
        sim.Spawn(absl::StrCat("t", t), [&] {
          for (int i = 0; i < 20; ++i) {
            dsim::SchedulingPoint();
            ++counter;
          }
        });
      }
      return sim.Run().status();
    });
  };
  const SweepResult all = sweep_of(1, 6);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all.outcomes.size(), 6u);
  std::string k;
  for (const SeedOutcome& outcome : all.outcomes) {
    EXPECT_TRUE(absl::StrContains(outcome.strategy, ",calibrated,")) << outcome.strategy;
    const std::string this_k = outcome.strategy.substr(0, outcome.strategy.find(",calibrated"));
    if (k.empty()) k = this_k;
    EXPECT_EQ(this_k, k);
  }
  EXPECT_NE(k, "pct(d=2,k=64");  // Not the default: 3 tasks make far more choice points.
  const SweepResult alone = sweep_of(5, 1);
  ASSERT_EQ(alone.outcomes.size(), 1u);
  EXPECT_EQ(alone.outcomes[0].strategy, all.outcomes[4].strategy);
  EXPECT_EQ(alone.outcomes[0].fingerprint, all.outcomes[4].fingerprint);
}

}  // namespace
}  // namespace dsim
