// The standard-C++ race programs under //posix: the race machinery finds each planted
// bug, a recorded failing schedule replays, shrinking keeps the failure, and the fixed
// twins never fail.
#include "tests/races/std_races.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "scheduler/schedule.h"
#include "scheduler/shrink.h"
#include "scheduler/strategies.h"

namespace dsim::races {
namespace {

constexpr int kSchedules = 300;

class StdRaces : public ::testing::TestWithParam<RaceProgram> {};

TEST_P(StdRaces, PctFindsTheBugAndTheFixedTwinNeverFails) {
  const RaceProgram& program = GetParam();
  auto pct = std::make_shared<PctStrategy>(/*seed=*/1, PctOptions{.depth = 3});
  int found_at = 0;
  for (int i = 1; i <= kSchedules && found_at == 0; ++i) {
    if (program.run(Variant::kBuggy, {pct}).bug) found_at = i;
  }
  EXPECT_GT(found_at, 0) << program.name << ": bug not found in " << kSchedules << " schedules";
  for (int seed = 1; seed <= kSchedules; ++seed) {
    auto random = std::make_shared<RandomStrategy>(seed);
    RaceOutcome outcome = program.run(Variant::kFixed, {random});
    ASSERT_FALSE(outcome.bug) << program.name << " fixed failed at seed " << seed << ": "
                              << outcome.result.ToString() << outcome.final_check_failure;
  }
}

TEST_P(StdRaces, FailingScheduleReplaysAndShrinks) {
  const RaceProgram& program = GetParam();
  std::shared_ptr<RecordingStrategy> recorder;
  RaceOutcome failing;
  for (uint64_t seed = 1; seed <= kSchedules; ++seed) {
    recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(seed), seed);
    failing = program.run(Variant::kBuggy, {recorder});
    if (failing.bug) break;
  }
  ASSERT_TRUE(failing.bug) << program.name;
  const Schedule schedule = recorder->schedule();
  // Replay: the same failure, decision by decision.
  RaceOutcome replayed = program.run(Variant::kBuggy, {std::make_shared<ReplayStrategy>(schedule)});
  EXPECT_TRUE(replayed.bug);
  EXPECT_EQ(replayed.Signature(), failing.Signature());
  EXPECT_EQ(replayed.result.ToString(), failing.result.ToString());
  // Shrink: a schedule that still fails the same way, no longer than the original.
  absl::StatusOr<ShrinkResult> shrunk =
      ShrinkSchedule(schedule, SameFailure(program, failing.Signature()));
  ASSERT_TRUE(shrunk.ok()) << shrunk.status();
  EXPECT_LE(shrunk->after.preemptions, shrunk->before.preemptions);
  RaceOutcome again =
      program.run(Variant::kBuggy, {std::make_shared<ReplayStrategy>(shrunk->shrunk)});
  EXPECT_EQ(again.Signature(), failing.Signature());
}

INSTANTIATE_TEST_SUITE_P(Corpus, StdRaces, ::testing::ValuesIn(StdCorpus()),
                         [](const ::testing::TestParamInfo<RaceProgram>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace dsim::races
