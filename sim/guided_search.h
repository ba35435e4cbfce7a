// GuidedSearch: spend part of a sweep's budget growing the runs that reached rare states,
// instead of starting every run from scratch (Antithesis's branching exploration).
//
// Example:
//
//   dsim::GuidedSearch search({.sweep_seed = 1, .budget_runs = 2000});
//   dsim::GuidedSearchResult result = search.Run([](dsim::Simulation& sim) {
//     Cluster cluster(sim);
//     sim.RunFor(absl::Seconds(10));
//     return cluster.Check();
//   });
//   if (result.failure.has_value()) {
//     // result.failure->run: how many runs it took; ->status: the failure;
//     // ->schedule: every decision of the failing run, for ReplayStrategy.
//   }
//
// How. Every run's coverage (sim/coverage.h: SOMETIMES/REACHABLE hits, BUGGIFY sites that
// fired, fault kinds applied) is compared with all runs so far. A run that reached
// something rare (a key no earlier run reached, one reached by at most rare_fraction of
// the runs, or a new combination of fired BUGGIFY sites and fault kinds) joins a corpus,
// with the decision index at which it first reached each key. After a warm-up of plain
// runs, a share of the budget (branch_fraction) goes to branching: pick a corpus entry
// (the one whose rarest key is rarest, by a small tournament), replay its decisions up to
// the moment it reached that key (sometimes a little further), then continue with a
// fresh random seed. A state that needs a conjunction of rare events (a partition during
// a leader change, then a clock jump) is then reached in steps: each rare step is kept
// and the next one is tried from there, instead of needing all of them in one run.
//
// Determinism. The search draws everything (fresh seeds, choices of entries and branch
// points) from its own Random(sweep_seed), and runs are sequential: the same sweep seed
// and body give the same sequence of runs. Replaying a prefix is lenient: when the
// program asks a decision of another kind or range than recorded (it took another path),
// the rest of the run is fresh.
#ifndef DSIM_SIM_GUIDED_SEARCH_H_
#define DSIM_SIM_GUIDED_SEARCH_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "scheduler/random.h"
#include "scheduler/schedule.h"
#include "scheduler/strategy.h"
#include "sim/coverage.h"
#include "sim/simulation.h"

namespace dsim {

struct GuidedSearchOptions {
  // Seeds the search itself (fresh run seeds, entry and branch-point choices).
  uint64_t sweep_seed = 1;
  // Runs to spend, in total.
  uint64_t budget_runs = 1000;
  // Plain runs before any branching.
  uint64_t warmup_runs = 20;
  // After the warm-up, the share of runs that branch from the corpus (the rest are
  // plain runs with fresh seeds, which keep discovering first steps).
  double branch_fraction = 0.75;
  // A key reached by at most this share of the runs so far counts as rare.
  double rare_fraction = 0.05;
  size_t corpus_max = 64;
  // Stop at the first failing run.
  bool stop_at_failure = true;
  // The template of every run's simulation (seed and strategy are the search's).
  SimulationOptions simulation;
  // Fail a run whose simulation had a run that was not ok(), as SeedSweep does.
  bool fail_on_failed_run = true;
};

// One run of the search.
struct GuidedRun {
  uint64_t index = 0;      // 1-based.
  uint64_t fresh_seed = 0; // Seeds the decisions after the prefix.
  bool branched = false;   // Replayed a corpus entry's prefix.
  size_t prefix = 0;       // Decisions replayed.
  std::string branch_key;  // The rare key it branched after ("" for a plain run).
  absl::Status status;
};

struct GuidedFailure {
  uint64_t run = 0;        // 1-based index of the failing run.
  absl::Status status;
  Schedule schedule;       // Every decision of the failing run.
};

// One run the search asks for (GuidedSearch::Next).
struct GuidedRunPlan {
  uint64_t index = 0;       // 1-based.
  uint64_t fresh_seed = 0;  // Seeds the decisions after the prefix.
  bool branched = false;
  size_t prefix = 0;        // Decisions to replay from the corpus entry.
  std::string branch_key;
  // The run's strategy, fresh for it: wrap it in a RecordingStrategy, since Learn
  // needs the run's schedule.
  std::shared_ptr<Strategy> strategy;
};

struct GuidedSearchResult {
  std::vector<GuidedRun> runs;
  std::optional<GuidedFailure> failure;
  size_t corpus_size = 0;
  // Coverage over every run of the search.
  SweepCoverage coverage;
};

class GuidedSearch {
 public:
  using Body = std::function<absl::Status(Simulation&)>;

  explicit GuidedSearch(GuidedSearchOptions options);
  GuidedSearchResult Run(const Body& body);

  // Step by step, for drivers that run each simulation themselves (SeedSweep under
  // DSIM_EXPLORE=guided): Next() plans the next run, Learn() takes what that run
  // reached and every decision it made. Run() is a loop of the two; the same calls in
  // the same order give the same plans.
  GuidedRunPlan Next();
  // Counts the run's keys; keeps the run in the corpus when it reached something rare.
  void Learn(const RunCoverage& coverage, Schedule schedule);
  size_t corpus_size() const { return corpus_.size(); }

 private:
  struct Entry;
  struct Plan;
  Plan NextPlan();
  size_t PickEntry();
  uint64_t Rarity(const Entry& entry) const;

  GuidedSearchOptions options_;
  Random rng_;
  std::vector<std::shared_ptr<Entry>> corpus_;
  std::map<std::string, uint64_t> hits_;  // Key -> runs that reached it.
  uint64_t runs_done_ = 0;
};

}  // namespace dsim

#endif  // DSIM_SIM_GUIDED_SEARCH_H_
