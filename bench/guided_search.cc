// Guided search against plain seeds on planted deep bugs (tests/deep_bugs/): for each
// bug, how many runs each method needs to find it, with the same budget.
//
//   ./bazelw run -c opt //bench:guided_search -- --budget=3000
//
// Plain seeds run seeds 1, 2, 3, ... (each a fresh random run); guided search
// (sim/guided_search.h) runs from sweep seed --sweep_seed. Both stop at the first
// failure; a bug not found counts the whole budget. Each bug's fixed twin is then run
// under guided search with the same budget and must never fail. The last line is
//   guided found X of Y deep bugs in R runs; plain seeds found P of Y in S runs
#include <cstdint>
#include <iostream>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_format.h"
#include "sim/guided_search.h"
#include "sim/simulation.h"
#include "tests/deep_bugs/deep_bugs.h"

ABSL_FLAG(uint64_t, budget, 3000, "runs each method may spend on each bug");
ABSL_FLAG(uint64_t, sweep_seed, 1, "guided search's sweep seed");
ABSL_FLAG(bool, fixed, true, "also run the fixed twins under guided search");
ABSL_FLAG(std::string, debug_bug, "", "print every guided run of this bug");
ABSL_FLAG(uint64_t, first_seed, 1, "plain seeds start here");
ABSL_FLAG(uint64_t, rates, 0, "instead: run this many plain seeds of each bug and print how many fail");

namespace {

// Runs seeds first_seed, first_seed + 1, ... (budget of them) until one fails; the 1-based run that failed, if any.
std::optional<uint64_t> PlainRunsToBug(const dsim::deep_bugs::DeepBug& bug, uint64_t budget) {
  const uint64_t first_seed = absl::GetFlag(FLAGS_first_seed);
  for (uint64_t run = 1; run <= budget; ++run) {
    dsim::Simulation sim(dsim::SimulationOptions{.seed = first_seed + run - 1});
    absl::Status status = bug.buggy(sim);
    if (status.ok() && sim.first_failed_run().has_value()) status = sim.first_failed_run()->status();
    if (!status.ok()) return run;
  }
  return std::nullopt;
}

std::string Cell(const std::optional<uint64_t>& runs) {
  return runs.has_value() ? absl::StrCat(*runs) : "-";
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const uint64_t budget = absl::GetFlag(FLAGS_budget);
  const auto& corpus = dsim::deep_bugs::Corpus();
  if (const uint64_t seeds = absl::GetFlag(FLAGS_rates); seeds > 0) {
    for (const auto& bug : corpus) {
      uint64_t failed = 0;
      std::string first;
      const uint64_t first_seed = absl::GetFlag(FLAGS_first_seed);
      for (uint64_t seed = first_seed; seed < first_seed + seeds; ++seed) {
        dsim::Simulation sim(dsim::SimulationOptions{.seed = seed});
        absl::Status status = bug.buggy(sim);
        if (status.ok() && sim.first_failed_run().has_value()) status = sim.first_failed_run()->status();
        if (!status.ok() && failed++ == 0) first = std::string(status.message().substr(0, 120));
      }
      std::cout << absl::StrFormat("%-36s %d of %d seeds fail  %s\n", bug.name, failed, seeds, first);
    }
    return 0;
  }
  uint64_t guided_found = 0, plain_found = 0, guided_runs = 0, plain_runs = 0, fixed_failed = 0;
  std::cout << absl::StrFormat("%-36s %12s %12s %8s  %s\n", "bug", "plain", "guided", "corpus",
                               "needs");
  for (const auto& bug : corpus) {
    const std::optional<uint64_t> plain = PlainRunsToBug(bug, budget);
    dsim::GuidedSearch search({.sweep_seed = absl::GetFlag(FLAGS_sweep_seed), .budget_runs = budget});
    const dsim::GuidedSearchResult guided = search.Run(bug.buggy);
    if (bug.name == absl::GetFlag(FLAGS_debug_bug)) {
      for (const dsim::GuidedRun& run : guided.runs) {
        if (run.branched) std::cout << "run " << run.index << " prefix " << run.prefix << " after " << run.branch_key << "\n";
      }
      std::cout << guided.coverage.ReportText({});
    }
    std::optional<uint64_t> guided_at;
    if (guided.failure.has_value()) guided_at = guided.failure->run;
    plain_found += plain.has_value();
    guided_found += guided_at.has_value();
    plain_runs += plain.value_or(budget);
    guided_runs += guided_at.value_or(budget);
    std::cout << absl::StrFormat("%-36s %12s %12s %8d  %s\n", bug.name, Cell(plain), Cell(guided_at),
                                 guided.corpus_size, bug.conjunction)
              << std::flush;
    if (absl::GetFlag(FLAGS_fixed)) {
      dsim::GuidedSearch twin({.sweep_seed = absl::GetFlag(FLAGS_sweep_seed), .budget_runs = budget});
      const dsim::GuidedSearchResult fixed = twin.Run(bug.fixed);
      if (fixed.failure.has_value()) {
        ++fixed_failed;
        std::cout << "  FIXED TWIN FAILED at run " << fixed.failure->run << ": "
                  << fixed.failure->status << "\n";
      }
    }
  }
  if (absl::GetFlag(FLAGS_fixed)) std::cout << "fixed twins failed: " << fixed_failed << "\n";
  std::cout << "guided found " << guided_found << " of " << corpus.size() << " deep bugs in "
            << guided_runs << " runs; plain seeds found " << plain_found << " of " << corpus.size()
            << " in " << plain_runs << " runs\n";
  return 0;
}
