// Shrinking: a smaller schedule that fails the same way, and a readable interleaving.
#include <memory>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "scheduler/schedule.h"
#include "scheduler/scheduler.h"
#include "scheduler/shrink.h"
#include "tests/races/race_corpus.h"

namespace dsim {
namespace {

using races::FindProgram;
using races::RaceOutcome;
using races::RaceProgram;
using races::RaceRunOptions;
using races::Variant;

// The first random-walk schedule of `program` that fails with at least `preemptions`.
Schedule FailingWithPreemptions(const RaceProgram& program, uint64_t preemptions,
                                std::string* signature) {
  for (uint64_t seed = 1; seed < 5000; ++seed) {
    auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(seed));
    const RaceOutcome outcome = program.run(Variant::kBuggy, RaceRunOptions{recorder});
    if (outcome.bug && recorder->schedule().Stats().preemptions >= preemptions) {
      *signature = outcome.Signature();
      return recorder->TakeSchedule();
    }
  }
  ADD_FAILURE() << program.name << ": no failing schedule with " << preemptions
                << " preemptions";
  return Schedule();
}

TEST(ShrinkSchedule, KeepsTheFailureAndAtLeastHalvesThePreemptions) {
  for (const char* name : {"bank_audit", "circular_buffer", "class_lock", "two_sections",
                           "reorder_4", "publish_before_init"}) {
    const RaceProgram& program = *FindProgram(name);
    std::string signature;
    const Schedule failing = FailingWithPreemptions(program, 3, &signature);
    absl::StatusOr<ShrinkResult> shrunk =
        ShrinkSchedule(failing, races::SameFailure(program, signature));
    ASSERT_TRUE(shrunk.ok()) << name << ": " << shrunk.status();
    EXPECT_EQ(shrunk->before.preemptions, failing.Stats().preemptions) << name;
    EXPECT_LE(2 * shrunk->after.preemptions, shrunk->before.preemptions) << name;
    EXPECT_LE(shrunk->after.context_switches, shrunk->before.context_switches) << name;

    // The shrunk schedule is a real schedule of the program, and it still fails so.
    auto replay = std::make_shared<ReplayStrategy>(shrunk->shrunk);
    const RaceOutcome outcome = program.run(Variant::kBuggy, RaceRunOptions{replay});
    EXPECT_TRUE(replay->status().ok()) << name << ": " << replay->status();
    EXPECT_EQ(outcome.Signature(), signature) << name;
  }
}

TEST(ShrinkSchedule, StaysWithinItsRunBudget) {
  const RaceProgram& program = *FindProgram("circular_buffer");
  std::string signature;
  const Schedule failing = FailingWithPreemptions(program, 5, &signature);
  absl::StatusOr<ShrinkResult> shrunk = ShrinkSchedule(
      failing, races::SameFailure(program, signature), ShrinkOptions{.max_runs = 10});
  ASSERT_TRUE(shrunk.ok()) << shrunk.status();
  EXPECT_LE(shrunk->runs, 10);
}

TEST(ShrinkSchedule, RefusesAScheduleThatDoesNotFail) {
  const RaceProgram& program = *FindProgram("bank_audit");
  auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(1));
  ASSERT_FALSE(program.run(Variant::kFixed, RaceRunOptions{recorder}).bug);
  absl::StatusOr<ShrinkResult> shrunk =
      ShrinkSchedule(recorder->schedule(), races::SameFailure(program, "deadlock"));
  EXPECT_EQ(shrunk.status().code(), absl::StatusCode::kFailedPrecondition);
}

// A program whose failure does not depend on a labelled value it draws: the shrinker
// should reset the value to 0, the "no fault" encoding.
bool FailsWhateverTheValue(std::shared_ptr<Strategy> strategy, SchedulerListener* observer) {
  Scheduler scheduler(SchedulerOptions{.strategy = strategy});
  if (observer != nullptr) scheduler.AddListener(observer);
  scheduler.Spawn("client", [] {
    for (int i = 0; i < 4; ++i) Scheduler::Current()->ChooseValue(10, "fault.delay");
    throw std::runtime_error("boom");
  });
  return scheduler.Run().outcome == RunOutcome::kTaskFailed;
}

TEST(ShrinkSchedule, ResetsBoundedValuesToZero) {
  auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(3));
  ASSERT_TRUE(FailsWhateverTheValue(recorder, nullptr));
  ASSERT_GT(recorder->schedule().Stats().nonzero_values, 0u);
  absl::StatusOr<ShrinkResult> shrunk = ShrinkSchedule(recorder->schedule(), FailsWhateverTheValue);
  ASSERT_TRUE(shrunk.ok()) << shrunk.status();
  EXPECT_EQ(shrunk->after.nonzero_values, 0u);
  // Drawn values that nothing annotated as applied are not faults.
  EXPECT_EQ(shrunk->faults_before, 0u);
  EXPECT_EQ(shrunk->faults_after, 0u);
}

TEST(DescribeInterleaving, NamesTasksLocationsAndPreemptions) {
  const RaceProgram& program = *FindProgram("reorder_4");
  std::string signature;
  const Schedule failing = FailingWithPreemptions(program, 2, &signature);
  absl::StatusOr<ShrinkResult> shrunk =
      ShrinkSchedule(failing, races::SameFailure(program, signature));
  ASSERT_TRUE(shrunk.ok()) << shrunk.status();
  const std::string& text = shrunk->interleaving;
  EXPECT_TRUE(absl::StartsWith(text, "interleaving: 5 tasks")) << text;
  EXPECT_TRUE(absl::StrContains(text, "\"checker\"#5 runs")) << text;
  EXPECT_TRUE(absl::StrContains(text, "race_corpus.cc:")) << text;
  EXPECT_TRUE(absl::StrContains(text, "** preempted **")) << text;
  EXPECT_TRUE(absl::StrContains(text, "finishes")) << text;
}

// A run that draws fault chances the way the network does (a value at the top of its
// range is a fault) and applies none, annotates a real fault once, then fails.
bool DrawsChancesAppliesOneFault(std::shared_ptr<Strategy> strategy, SchedulerListener* observer) {
  Scheduler scheduler(SchedulerOptions{.strategy = strategy});
  if (observer != nullptr) scheduler.AddListener(observer);
  scheduler.Spawn("model", [&scheduler] {
    constexpr uint64_t kRange = uint64_t{1} << 24;
    for (int i = 0; i < 10; ++i) {
      // Never a fault: the chance is 1 in 2^24, and the values drawn are what they are.
      if (scheduler.ChooseValue(kRange, "fault.drop") >= kRange - 1) {
        scheduler.Annotate({.category = "fault.drop", .detail = "dropped"});
      }
    }
    scheduler.Annotate({.category = "fault.crash", .detail = "the one applied fault"});
    throw std::runtime_error("failed");
  });
  return scheduler.Run().outcome == RunOutcome::kTaskFailed;
}

TEST(ShrinkSchedule, CountsAppliedFaultsNotNonzeroDraws) {
  auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(3));
  ASSERT_TRUE(DrawsChancesAppliesOneFault(recorder, nullptr));
  absl::StatusOr<ShrinkResult> shrunk =
      ShrinkSchedule(recorder->schedule(), DrawsChancesAppliesOneFault);
  ASSERT_TRUE(shrunk.ok()) << shrunk.status();
  EXPECT_EQ(shrunk->faults_before, 1u);
  EXPECT_EQ(shrunk->faults_after, 1u);
}

TEST(ShrinkSchedule, StopsWhenAskedAndReportsEachImprovement) {
  const RaceProgram& program = *FindProgram("circular_buffer");
  std::string signature;
  const Schedule failing = FailingWithPreemptions(program, 3, &signature);
  int improvements = 0;
  uint64_t last_preemptions = failing.Stats().preemptions;
  ShrinkOptions options;
  options.on_improvement = [&](const Schedule& best, uint64_t, int runs) {
    ++improvements;
    EXPECT_LE(best.Stats().preemptions, last_preemptions);
    last_preemptions = best.Stats().preemptions;
    EXPECT_GT(runs, 0);
  };
  absl::StatusOr<ShrinkResult> full =
      ShrinkSchedule(failing, races::SameFailure(program, signature), options);
  ASSERT_TRUE(full.ok());
  EXPECT_GT(improvements, 0);
  EXPECT_EQ(full->shrunk.Stats().preemptions, last_preemptions) << "the last one reported is the result";
  EXPECT_FALSE(full->stopped);

  options.on_improvement = nullptr;
  options.should_stop = [](int runs) { return runs >= 3; };
  absl::StatusOr<ShrinkResult> stopped =
      ShrinkSchedule(failing, races::SameFailure(program, signature), options);
  ASSERT_TRUE(stopped.ok());
  EXPECT_TRUE(stopped->stopped);
  EXPECT_LE(stopped->runs, 3 + 1) << "plus the interleaving's replay";
}

}  // namespace
}  // namespace dsim
