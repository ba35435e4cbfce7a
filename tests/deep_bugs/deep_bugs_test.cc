// The quick version of //bench:guided_search: guided search finds every planted deep
// bug within the budget, in fewer runs in total than plain seeds; the fixed twins never
// fail; and a search is deterministic.
#include <gtest/gtest.h>

#include <iostream>
#include <memory>

#include "absl/strings/match.h"
#include "scheduler/schedule.h"

#include "sim/guided_search.h"
#include "tests/deep_bugs/deep_bugs.h"

namespace dsim::deep_bugs {
namespace {

constexpr uint64_t kBudget = 3000;

uint64_t PlainRunsToBug(const DeepBug& bug) {
  for (uint64_t seed = 1; seed <= kBudget; ++seed) {
    Simulation sim(SimulationOptions{.seed = seed});
    absl::Status status = bug.buggy(sim);
    if (!status.ok() || sim.first_failed_run().has_value()) return seed;
  }
  return kBudget;
}

TEST(DeepBugs, GuidedSearchFindsEveryBugInFewerRunsThanPlainSeeds) {
  uint64_t guided_total = 0, plain_total = 0;
  for (const DeepBug& bug : Corpus()) {
    GuidedSearchResult result = GuidedSearch({.sweep_seed = 1, .budget_runs = kBudget}).Run(bug.buggy);
    ASSERT_TRUE(result.failure.has_value()) << bug.name << " not found in " << kBudget << " runs";
    EXPECT_TRUE(absl::StrContains(result.failure->status.message(), "DSIM_ALWAYS"))
        << result.failure->status;
    guided_total += result.failure->run;
    const uint64_t plain = PlainRunsToBug(bug);
    plain_total += plain;
    std::cerr << bug.name << ": guided " << result.failure->run << ", plain " << plain << "\n";
  }
  EXPECT_LT(guided_total, plain_total);
}

TEST(DeepBugs, FailingScheduleReplaysTheBug) {
  const DeepBug& bug = Corpus()[0];
  GuidedSearchResult result = GuidedSearch({.sweep_seed = 1, .budget_runs = kBudget}).Run(bug.buggy);
  ASSERT_TRUE(result.failure.has_value());
  Simulation sim(SimulationOptions{
      .strategy_object = std::make_shared<ReplayStrategy>(result.failure->schedule)});
  absl::Status status = bug.buggy(sim);
  EXPECT_EQ(status.message(), result.failure->status.message());
}

TEST(DeepBugs, FixedTwinsNeverFailUnderGuidedSearch) {
  for (const DeepBug& bug : Corpus()) {
    GuidedSearchResult result = GuidedSearch({.sweep_seed = 7, .budget_runs = 200}).Run(bug.fixed);
    EXPECT_FALSE(result.failure.has_value())
        << bug.name << ": " << result.failure->status << " at run " << result.failure->run;
  }
}

TEST(DeepBugs, SameSweepSeedGivesTheSameSequenceOfRuns) {
  const DeepBug& bug = Corpus()[1];
  auto search = [&] {
    return GuidedSearch({.sweep_seed = 3, .budget_runs = 200, .stop_at_failure = false}).Run(bug.buggy);
  };
  GuidedSearchResult a = search(), b = search();
  ASSERT_EQ(a.runs.size(), b.runs.size());
  int branched = 0;
  for (size_t i = 0; i < a.runs.size(); ++i) {
    EXPECT_EQ(a.runs[i].fresh_seed, b.runs[i].fresh_seed);
    EXPECT_EQ(a.runs[i].prefix, b.runs[i].prefix);
    EXPECT_EQ(a.runs[i].branch_key, b.runs[i].branch_key);
    EXPECT_EQ(a.runs[i].status, b.runs[i].status);
    branched += a.runs[i].branched;
  }
  EXPECT_GT(branched, 80);
  EXPECT_EQ(a.corpus_size, b.corpus_size);
}

}  // namespace
}  // namespace dsim::deep_bugs
