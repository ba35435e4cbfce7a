// Race-finding benchmark: how quickly each strategy finds each bug of the race corpus
// (tests/races), whether the fixed twins stay clean, and how much shrinking simplifies
// a failing random-walk schedule.
//
//   ./bazelw run -c opt //bench:race_finding -- --schedules=10000
//
// For every program and every strategy (random walk; PCT with d = 1, 2, 3) it runs the
// buggy program and its fixed twin for --schedules schedules each. Random walk uses seed
// i for schedule i; each PCT column uses one PctStrategy object for all its schedules, so
// it learns the step estimate k from the runs before (--pct=per_seed and
// --pct=calibrated build PCT per schedule instead, as a SeedSweep does). Columns:
//   tasks, steps     tasks spawned; mean scheduling steps of a random-walk run
//   <strategy>       schedules until the first failure (1 = the first), and the share of
//                    schedules that failed; "-" when none did
//   fixed            failures of the fixed twin over every strategy and schedule
//   shrink           preemptions (and context switches) of the first failing random-walk
//                    schedule, before -> after shrinking
// The last line is "found X of Y bugs; fixed versions failed: Z", where X counts the
// programs some strategy found a failure in and Z the fixed twins that failed at all.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "scheduler/schedule.h"
#include "scheduler/shrink.h"
#include "scheduler/strategies.h"
#include "tests/races/race_corpus.h"

ABSL_FLAG(int, schedules, 10000, "schedules per program, strategy and variant");
ABSL_FLAG(std::string, programs, "", "comma-separated program names; empty runs all");
ABSL_FLAG(bool, shrink, true, "shrink the first failing random-walk schedule of each program");
ABSL_FLAG(int, shrink_runs, 1000, "run budget of each shrink");
ABSL_FLAG(bool, verbose, false, "print each shrunk interleaving and fixed-twin failures");
ABSL_FLAG(std::string, pct, "shared",
          "how PCT columns build their strategy: shared (one object learns k across the "
          "schedules), per_seed (a fresh object per schedule with the default k = 64, as "
          "SeedSweep built it before calibration), calibrated (a fresh object per schedule "
          "with k calibrated once, as SeedSweep builds it now)");

namespace dsim::races {
namespace {

struct Column {
  std::string name;  // "random", "pct d=2"
  int depth = 0;     // 0 for random walk.
};

struct Sweep {
  std::optional<int> first_failure;  // 1-based schedule number.
  int failures = 0;
  uint64_t steps = 0;                // Summed over all runs.
  std::optional<Schedule> first_failing_schedule;
  std::string first_signature;
  std::string sample_failure;  // For fixed twins: what went wrong first.
};

std::shared_ptr<Strategy> MakeColumnStrategy(const Column& column, int schedule,
                                             std::shared_ptr<PctStrategy>* pct,
                                             uint64_t calibrated_k) {
  if (column.depth == 0) return std::make_shared<RandomStrategy>(schedule + 1);
  const std::string mode = absl::GetFlag(FLAGS_pct);
  if (mode == "per_seed" || mode == "calibrated") {
    auto fresh = std::make_shared<PctStrategy>(schedule + 1, PctOptions{.depth = column.depth});
    fresh->SetCalibratedSteps(calibrated_k);  // 0 (per_seed): keeps the default.
    return fresh;
  }
  if (*pct == nullptr) *pct = std::make_shared<PctStrategy>(1, PctOptions{.depth = column.depth});
  return *pct;
}

// Runs `schedules` schedules of one program variant under one column's strategy.
Sweep RunSweep(const RaceProgram& program, Variant variant, const Column& column, int schedules,
               bool record_first_failure) {
  Sweep sweep;
  std::shared_ptr<PctStrategy> pct;
  uint64_t calibrated_k = 0;
  if (column.depth > 0 && absl::GetFlag(FLAGS_pct) == "calibrated") {
    calibrated_k = CalibratePctSteps(column.depth, kPctCalibrationRuns,
                                     [&](std::shared_ptr<Strategy> strategy, uint64_t) {
                                       program.run(variant, RaceRunOptions{strategy});
                                     });
  }
  for (int i = 0; i < schedules; ++i) {
    std::shared_ptr<Strategy> strategy = MakeColumnStrategy(column, i, &pct, calibrated_k);
    std::shared_ptr<RecordingStrategy> recorder;
    if (record_first_failure && !sweep.first_failure.has_value()) {
      recorder = std::make_shared<RecordingStrategy>(strategy, i + 1);
      strategy = recorder;
    }
    const RaceOutcome outcome = program.run(variant, RaceRunOptions{strategy});
    sweep.steps += outcome.result.steps;
    if (!outcome.bug) continue;
    ++sweep.failures;
    if (sweep.first_failure.has_value()) continue;
    sweep.first_failure = i + 1;
    sweep.first_signature = outcome.Signature();
    sweep.sample_failure = outcome.Signature();
    if (recorder != nullptr) sweep.first_failing_schedule = recorder->TakeSchedule();
  }
  return sweep;
}

std::string Cell(const Sweep& sweep, int schedules) {
  if (!sweep.first_failure.has_value()) return "-";
  return absl::StrFormat("%d %.1f%%", *sweep.first_failure,
                         100.0 * sweep.failures / std::max(schedules, 1));
}

struct ShrinkCell {
  std::string text = "-";
  bool halved = false;     // At least halved the preemptions.
  bool reducible = false;  // Had more than one preemption to begin with.
};

ShrinkCell ShrinkFirstFailure(const RaceProgram& program, const Sweep& random_sweep) {
  ShrinkCell cell;
  if (!random_sweep.first_failing_schedule.has_value()) return cell;
  absl::StatusOr<ShrinkResult> result =
      ShrinkSchedule(*random_sweep.first_failing_schedule,
                     SameFailure(program, random_sweep.first_signature),
                     ShrinkOptions{.max_runs = absl::GetFlag(FLAGS_shrink_runs)});
  if (!result.ok()) {
    cell.text = "error";
    std::fprintf(stderr, "%s: %s\n", program.name, std::string(result.status().message()).c_str());
    return cell;
  }
  cell.text = absl::StrFormat("%d->%d (%d->%d)", result->before.preemptions,
                              result->after.preemptions, result->before.context_switches,
                              result->after.context_switches);
  cell.reducible = result->before.preemptions > 1;
  cell.halved = cell.reducible && 2 * result->after.preemptions <= result->before.preemptions;
  if (absl::GetFlag(FLAGS_verbose)) {
    std::printf("\n%s, shrunk in %d runs (%s):\n%s\n", program.name, result->runs,
                result->after.ToString().c_str(), result->interleaving.c_str());
  }
  return cell;
}

int Main() {
  const int schedules = absl::GetFlag(FLAGS_schedules);
  const std::vector<Column> columns = {
      {"random", 0}, {"pct d=1", 1}, {"pct d=2", 2}, {"pct d=3", 3}};
  std::vector<const RaceProgram*> programs;
  const std::string filter = absl::GetFlag(FLAGS_programs);
  for (const RaceProgram& program : Corpus()) {
    if (filter.empty()) {
      programs.push_back(&program);
      continue;
    }
    for (absl::string_view name : absl::StrSplit(filter, ',')) {
      if (name == program.name) programs.push_back(&program);
    }
  }
  const absl::Time start = absl::Now();  // Wall time of the benchmark itself only.
  std::printf("race_finding: %d schedules per program, strategy and variant\n\n", schedules);
  std::printf("%-20s %5s %6s | %-13s | %-13s | %-13s | %-13s | %5s | %s\n", "program", "tasks",
              "steps", "random", "pct d=1", "pct d=2", "pct d=3", "fixed",
              "shrink: preemptions (switches)");
  int found = 0;
  int found_by_pct = 0;
  int fixed_failed = 0;
  int shrunk = 0;
  int halved = 0;
  for (const RaceProgram* program : programs) {
    std::vector<std::string> cells;
    Sweep random_sweep;
    bool any = false;
    bool by_pct = false;
    for (const Column& column : columns) {
      Sweep sweep = RunSweep(*program, Variant::kBuggy, column, schedules, column.depth == 0);
      any |= sweep.first_failure.has_value();
      by_pct |= column.depth > 0 && sweep.first_failure.has_value();
      cells.push_back(Cell(sweep, schedules));
      if (column.depth == 0) random_sweep = std::move(sweep);
    }
    int fixed_failures = 0;
    for (const Column& column : columns) {
      const Sweep sweep = RunSweep(*program, Variant::kFixed, column, schedules, false);
      fixed_failures += sweep.failures;
      if (sweep.failures > 0 && absl::GetFlag(FLAGS_verbose)) {
        std::printf("FIXED %s failed under %s: %s\n", program->name, column.name.c_str(),
                    sweep.sample_failure.c_str());
      }
    }
    ShrinkCell shrink;
    if (absl::GetFlag(FLAGS_shrink)) shrink = ShrinkFirstFailure(*program, random_sweep);
    found += any;
    found_by_pct += by_pct;
    fixed_failed += fixed_failures > 0;
    shrunk += shrink.reducible;
    halved += shrink.halved;
    const double mean_steps =
        static_cast<double>(random_sweep.steps) / std::max(schedules, 1);
    std::printf("%-20s %5d %6.1f | %-13s | %-13s | %-13s | %-13s | %5d | %s\n", program->name,
                program->tasks, mean_steps, cells[0].c_str(), cells[1].c_str(),
                cells[2].c_str(), cells[3].c_str(), fixed_failures, shrink.text.c_str());
    std::fflush(stdout);
  }
  std::printf("\nPCT (d <= 3) found %d of %zu bugs; shrinking halved the preemptions of %d of %d "
              "failing random-walk schedules with more than one; %.1f s\n",
              found_by_pct, programs.size(), halved, shrunk,
              absl::ToDoubleSeconds(absl::Now() - start));
  std::printf("found %d of %zu bugs; fixed versions failed: %d\n", found, programs.size(),
              fixed_failed);
  return 0;
}

}  // namespace
}  // namespace dsim::races

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return dsim::races::Main();
}
