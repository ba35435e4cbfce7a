// SharedAccess markers: scheduling points only when the simulation enables them.
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "scheduler/scheduler.h"
#include "scheduler/shared_access.h"

namespace dsim {
namespace {

class DecisionCounter final : public SchedulerListener {
 public:
  void OnDecision(const Decision& decision, uint64_t chosen) override { ++decisions; }
  void OnAnnotation(const Annotation& a) override {
    annotations.push_back(std::string(a.category) + " " + std::string(a.detail));
  }
  int decisions = 0;
  std::vector<std::string> annotations;
};

// Two tasks increment a counter with a marked read and a marked write. Returns the final
// count; 1 means an update was lost.
int RacyIncrements(bool points, uint64_t seed, DecisionCounter* counter = nullptr) {
  int value = 0;
  Scheduler scheduler(SchedulerOptions{.seed = seed, .shared_access_points = points});
  if (counter != nullptr) scheduler.AddListener(counter);
  for (int i = 0; i < 2; ++i) {
    scheduler.Spawn("incr", [&] {
      DSIM_SHARED_ACCESS("value");
      const int seen = value;
      DSIM_SHARED_ACCESS("value");
      value = seen + 1;
    });
  }
  EXPECT_TRUE(scheduler.Run().ok());
  return value;
}

TEST(SharedAccess, IsNoSchedulingPointByDefault) {
  DecisionCounter counter;
  for (uint64_t seed = 1; seed <= 200; ++seed) ASSERT_EQ(RacyIncrements(false, seed), 2);
  RacyIncrements(false, 1, &counter);
  EXPECT_EQ(counter.decisions, 1);  // Only which task starts.
  EXPECT_TRUE(counter.annotations.empty());
}

TEST(SharedAccess, WhenEnabledLetsTheStrategyExposeALostUpdate) {
  int lost = 0;
  for (uint64_t seed = 1; seed <= 200; ++seed) lost += RacyIncrements(true, seed) == 1;
  EXPECT_GT(lost, 0);
  EXPECT_LT(lost, 200);
}

TEST(SharedAccess, WhenEnabledAnnotatesWhatAndWhere) {
  DecisionCounter counter;
  RacyIncrements(true, 1, &counter);
  EXPECT_GT(counter.decisions, 1);
  ASSERT_EQ(counter.annotations.size(), 4u);
  EXPECT_TRUE(absl::StartsWith(counter.annotations[0], "sched.access value at shared_access_test.cc:"))
      << counter.annotations[0];
}

TEST(SharedAccess, OutsideATaskOrASimulationDoesNothing) {
  SharedAccess("no simulation");  // Must neither crash nor block.
  Scheduler scheduler(SchedulerOptions{.shared_access_points = true});
  bool fired = false;
  scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1), [&] {
    SharedAccess("in a timer callback");  // Callbacks cannot switch.
    fired = true;
  });
  EXPECT_TRUE(scheduler.RunFor(absl::Seconds(2)).ok());
  EXPECT_TRUE(fired);
}

}  // namespace
}  // namespace dsim
