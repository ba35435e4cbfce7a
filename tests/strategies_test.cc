// PCT, round-robin and the strategy factory: the properties each strategy promises.
#include <cmath>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "scheduler/schedule.h"
#include "scheduler/strategies.h"
#include "tests/races/race_corpus.h"

namespace dsim {
namespace {

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
  constexpr int kRuns = 2000;
  const PctSample sample = SamplePct(*FindProgram("use_before_init"), 1, kRuns);
  EXPECT_GE(sample.rate, BoundWithMargin(sample.tasks, sample.max_choice_points, 1, kRuns));
}

TEST(PctStrategy, FindsDepthTwoDeadlockAtLeastAsOftenAsTheBound) {
  // lock_order deadlocks when each task takes its first lock before the other takes its
  // second: two ordering constraints, depth 2, rate >= 1/(n k).
  constexpr int kRuns = 2000;
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

}  // namespace
}  // namespace dsim
