#include "sim/harness.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "scheduler/internal/check.h"
#include "scheduler/strategies.h"
#include "sim/internal/progress.h"
#include "sim/internal/sweep_config.h"

namespace dsim {

EnvLookup ProcessEnv() {
  return [](absl::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

namespace {

using internal::SweepConfig;

// Everything a worker needs to run seeds; read-only while workers run.
struct SweepContext {
  const SweepOptions& options;
  const SweepConfig& config;
  const SeedSweep::Body& body;
};

// One simulation of one seed, kept alive until it has been summarized or compared.
struct SimRun {
  std::unique_ptr<Simulation> sim;
  absl::Status status;
};

void TouchFile(const std::string& path) {
  if (path.empty()) return;
  std::ofstream touch(path, std::ios::app);
}

absl::Status CallBody(const SeedSweep::Body& body, Simulation& sim) {
  try {
    return body(sim);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("the body threw: ", e.what()));
  } catch (...) {
    return absl::InternalError("the body threw an exception not derived from std::exception");
  }
}

SimRun RunSimulation(const SweepContext& ctx, uint64_t seed, bool keep_all_events) {
  SimulationOptions options = ctx.options.simulation;
  options.seed = seed;
  options.strategy = ctx.config.strategy;
  if (keep_all_events) options.trace.keep_all_events = true;
  SimRun run;
  run.sim = std::make_unique<Simulation>(std::move(options));
  run.status = CallBody(ctx.body, *run.sim);
  const std::optional<RunResult>& failed_run = run.sim->first_failed_run();
  if (run.status.ok() && ctx.options.fail_on_failed_run && failed_run.has_value()) {
    run.status = failed_run->status();
  }
  return run;
}

// A failure when the two runs of one seed differ in their event streams or results.
absl::Status CompareRuns(const SimRun& first, const SimRun& second, uint64_t seed) {
  std::optional<TraceDivergence> divergence =
      FirstDivergence(first.sim->trace(), second.sim->trace());
  if (divergence.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "nondeterminism: two runs of seed ", seed, " differ (fingerprints ",
        absl::StrFormat("%016x vs %016x", first.sim->trace().fingerprint(),
                        second.sim->trace().fingerprint()),
        ").\n", divergence->ToString(), "\nrun 1 result: ", first.status.ToString(),
        "\nrun 2 result: ", second.status.ToString()));
  }
  if (first.status != second.status) {
    return absl::FailedPreconditionError(absl::StrCat(
        "nondeterminism: two runs of seed ", seed,
        " had identical event streams but different results (the body itself depends "
        "on something outside the simulation)\nrun 1 result: ",
        first.status.ToString(), "\nrun 2 result: ", second.status.ToString()));
  }
  return absl::OkStatus();
}

std::string Indent(absl::string_view text, absl::string_view prefix) {
  std::string out = absl::StrCat(prefix, absl::StrReplaceAll(text, {{"\n", absl::StrCat("\n", prefix)}}));
  while (!out.empty() && (out.back() == ' ')) out.pop_back();
  return out;
}

std::string FirstLine(absl::string_view text) {
  return std::string(text.substr(0, text.find('\n')));
}

std::string BlockedTasks(Simulation& sim) {
  std::string out;
  for (const TaskReport& task : sim.scheduler().LiveTaskReports()) {
    if (task.blocked) absl::StrAppend(&out, "    ", task.ToString(), "\n");
  }
  return out.empty() ? "    (none)\n" : out;
}

// The report's body, written while the simulation is still alive.
std::string FailureReport(SimRun& run, uint64_t seed, size_t summary_events) {
  Simulation& sim = *run.sim;
  const Trace& trace = sim.trace();
  std::string out = absl::StrCat("FAIL seed=", seed, " strategy=", sim.strategy_description(),
                                 ": ", FirstLine(run.status.message()), "\n");
  absl::StrAppend(&out, "  failure:\n", Indent(run.status.ToString(), "    "), "\n");
  absl::StrAppend(&out, "  virtual time: ",
                  FormatVirtualTime(absl::ToInt64Nanoseconds(sim.Now() - Scheduler::Epoch())),
                  ", ", sim.scheduler().steps(), " steps, ", trace.event_count(),
                  " events, fingerprint ", absl::StrFormat("%016x", trace.fingerprint()), "\n");
  absl::StrAppend(&out, "  last ", std::min<uint64_t>(summary_events, trace.events().size()),
                  " events:\n", Indent(trace.LastEventsText(summary_events), "    "), "\n");
  absl::StrAppend(&out, "  blocked tasks:\n", BlockedTasks(sim));
  return out;
}

SeedOutcome Summarize(SimRun& run, uint64_t seed, size_t summary_events) {
  SeedOutcome outcome;
  outcome.seed = seed;
  outcome.status = run.status;
  outcome.fingerprint = run.sim->trace().fingerprint();
  outcome.events = run.sim->trace().event_count();
  outcome.steps = run.sim->scheduler().steps();
  outcome.end_time_ns = absl::ToInt64Nanoseconds(run.sim->Now() - Scheduler::Epoch());
  outcome.strategy = run.sim->strategy_description();
  if (!run.status.ok()) outcome.report = FailureReport(run, seed, summary_events);
  return outcome;
}

SeedOutcome RunSeed(const SweepContext& ctx, uint64_t seed) {
  const bool check = ctx.config.check_determinism;
  SimRun first = RunSimulation(ctx, seed, /*keep_all_events=*/check);
  if (check) {
    SimRun second = RunSimulation(ctx, seed, /*keep_all_events=*/true);
    absl::Status mismatch = CompareRuns(first, second, seed);
    if (!mismatch.ok()) first.status = mismatch;
    SeedOutcome outcome = Summarize(first, seed, ctx.options.summary_events);
    outcome.nondeterministic = !mismatch.ok();
    return outcome;
  }
  return Summarize(first, seed, ctx.options.summary_events);
}

// Runs this shard's seeds on `config.jobs` threads; outcomes in seed-list order.
std::vector<SeedOutcome> RunSeeds(const SweepContext& ctx, const std::string& label) {
  const std::vector<uint64_t>& seeds = ctx.config.shard_seeds;
  std::vector<std::optional<SeedOutcome>> slots(seeds.size());
  std::atomic<size_t> next{0};
  std::atomic<uint64_t> failures{0};
  internal::ProgressLine progress(label, seeds.size(), ctx.config.progress);
  const uint64_t stop_after = ctx.options.stop_after_failures;
  auto worker = [&] {
    for (;;) {
      if (stop_after != 0 && failures.load() >= stop_after) return;
      const size_t i = next.fetch_add(1);
      if (i >= seeds.size()) return;
      slots[i] = RunSeed(ctx, seeds[i]);
      const bool failed = !slots[i]->status.ok();
      if (failed) failures.fetch_add(1);
      progress.SeedDone(failed);
    }
  };
  const size_t threads = std::min<size_t>(ctx.config.jobs, seeds.size());
  if (threads <= 1) {
    worker();  // On the caller's thread: no thread, and gtest asserts in bodies work.
  } else {
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (std::thread& thread : pool) thread.join();
  }
  std::vector<SeedOutcome> outcomes;
  for (std::optional<SeedOutcome>& slot : slots) {
    if (slot.has_value()) outcomes.push_back(*std::move(slot));
  }
  return outcomes;
}

std::string CurrentTestName(const SweepOptions& options) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return options.test_name;
  return absl::StrCat(info->test_suite_name(), ".", info->name());
}

// Saves traces of a seed (rerun with every event kept) where the environment asks:
// DSIM_TRACE, and, for failures, TEST_UNDECLARED_OUTPUTS_DIR. Returns report lines.
std::string SaveTraces(const SweepContext& ctx, const SeedOutcome& outcome,
                       const std::string& test_name) {
  const SweepConfig& config = ctx.config;
  const bool failed = !outcome.status.ok();
  std::vector<std::string> paths;
  if (!config.trace_path.empty() && (config.all_seeds.size() == 1 || failed)) {
    paths.push_back(config.all_seeds.size() == 1 ? config.trace_path
                                                 : internal::PathForSeed(config.trace_path, outcome.seed));
  }
  if (failed && !config.outputs_dir.empty()) {
    const std::string base = absl::StrCat(config.outputs_dir, "/",
                                          absl::StrReplaceAll(test_name.empty() ? "sweep" : test_name,
                                                              {{"/", "_"}}),
                                          ".seed-", outcome.seed);
    paths.push_back(base + ".json");
    paths.push_back(base + ".txt");
  }
  if (paths.empty()) return "";
  SimRun again = RunSimulation(ctx, outcome.seed, /*keep_all_events=*/true);
  std::string lines;
  if (again.sim->trace().fingerprint() != outcome.fingerprint) {
    absl::StrAppend(&lines, "  WARNING: rerunning seed ", outcome.seed,
                    " gave a different event stream: the simulation is nondeterministic; "
                    "rerun with DSIM_CHECK_DETERMINISM=1 to find where\n");
  }
  for (const std::string& path : paths) {
    absl::Status written = again.sim->trace().WriteFile(path);
    absl::StrAppend(&lines, "  trace: ", written.ok() ? path : written.ToString(), "\n");
  }
  return lines;
}

std::string SummaryLine(const SweepResult& result, const std::string& test_name) {
  std::string line = absl::StrCat("dsim sweep", test_name.empty() ? "" : " ", test_name, ": ",
                                  result.outcomes.size(),
                                  result.outcomes.size() == 1 ? " seed run" : " seeds run");
  if (result.total_shards > 1) {
    absl::StrAppend(&line, " (shard ", result.shard_index + 1, "/", result.total_shards, " of ",
                    result.total_seeds, ")");
  }
  absl::StrAppend(&line, ", ", result.failed_seeds.size(), " failed");
  if (!result.failed_seeds.empty()) {
    absl::StrAppend(&line, " (seeds ", absl::StrJoin(result.failed_seeds, ", "), ")");
  }
  absl::StrAppend(&line, absl::StrFormat(", %d job%s, %.2fs wall", result.jobs,
                                         result.jobs == 1 ? "" : "s", result.wall_seconds));
  return line;
}

void Emit(const SweepOptions& options, const std::string& message) {
  if (options.report_to_gtest &&
      ::testing::UnitTest::GetInstance()->current_test_info() != nullptr) {
    ADD_FAILURE() << message;
    return;
  }
  std::ostream& log = options.log != nullptr ? *options.log : std::cerr;
  log << message << (message.empty() || message.back() == '\n' ? "" : "\n");
}

// Completes the reports of failing seeds (traces, rerun command) and emits them.
void ReportFailures(const SweepContext& ctx, SweepResult& result, const std::string& test_name) {
  size_t detailed = 0;
  std::vector<uint64_t> undetailed;
  for (SeedOutcome& outcome : result.outcomes) {
    if (outcome.status.ok()) continue;
    if (detailed++ >= ctx.options.detailed_failures) {
      undetailed.push_back(outcome.seed);
      continue;
    }
    absl::StrAppend(&outcome.report, SaveTraces(ctx, outcome, test_name), "  rerun: ",
                    internal::RerunCommand(ctx.config, outcome.seed, test_name,
                                           outcome.nondeterministic),
                    "\n");
    Emit(ctx.options, outcome.report);
  }
  if (!undetailed.empty()) {
    Emit(ctx.options, absl::StrCat("FAIL ", undetailed.size(), " more seeds also failed: ",
                                   absl::StrJoin(undetailed, ", ")));
  }
}

}  // namespace

SeedSweep::SeedSweep(SweepOptions options) : options_(std::move(options)) {
  DSIM_MISUSE(options_.simulation.strategy_object == nullptr,
              "SweepOptions::simulation.strategy_object is set, but seeds cannot share one "
              "strategy object; give a spec in SweepOptions::simulation.strategy instead");
}

SweepResult SeedSweep::Run(const Body& body) {
  DSIM_MISUSE(body != nullptr, "SeedSweep::Run with an empty body");
  const auto start = std::chrono::steady_clock::now();
  const EnvLookup env = options_.env != nullptr ? options_.env : ProcessEnv();
  const std::string test_name = CurrentTestName(options_);
  SweepResult result;
  absl::StatusOr<SweepConfig> config = internal::ResolveSweepConfig(options_, env);
  if (config.ok()) {
    // Fail fast and clearly on a bad spec, instead of aborting in the first Simulation.
    absl::StatusOr<std::shared_ptr<Strategy>> probe = MakeStrategy(config->strategy, 1);
    if (!probe.ok()) config = probe.status();
  }
  if (!config.ok()) {
    result.config_error = config.status();
    Emit(options_, absl::StrCat("dsim sweep: ", config.status().ToString()));
    return result;
  }
  TouchFile(config->shard_status_file);
  result.total_seeds = config->all_seeds.size();
  result.jobs = config->jobs;
  if (config->split_seeds) {
    result.total_shards = config->total_shards;
    result.shard_index = config->shard_index;
  }
  const SweepContext ctx{options_, *config, body};
  result.outcomes = RunSeeds(ctx, test_name.empty() ? "dsim sweep" : test_name);
  for (const SeedOutcome& outcome : result.outcomes) {
    if (!outcome.status.ok()) result.failed_seeds.push_back(outcome.seed);
  }
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ReportFailures(ctx, result, test_name);
  // A passing single seed still writes the trace DSIM_TRACE asks for.
  if (result.failed_seeds.empty() && config->all_seeds.size() == 1 &&
      !result.outcomes.empty()) {
    std::string lines = SaveTraces(ctx, result.outcomes[0], test_name);
    if (!lines.empty()) (options_.log ? *options_.log : std::cerr) << lines;
  }
  std::ostream& log = options_.log != nullptr ? *options_.log : std::cerr;
  log << SummaryLine(result, test_name) << "\n";
  if (config->total_shards > 1 && !config->split_seeds) {
    log << "dsim sweep: GoogleTest is sharding test cases, so this sweep ran all its seeds "
           "in this shard; link //sim:harness_main to split seeds across shards\n";
  }
  return result;
}

void TakeOverTestSharding() {
  const char* total = std::getenv("TEST_TOTAL_SHARDS");
  if (total == nullptr) return;
  unsetenv("GTEST_TOTAL_SHARDS");
  unsetenv("GTEST_SHARD_INDEX");
  const char* status_file = std::getenv("TEST_SHARD_STATUS_FILE");
  if (status_file != nullptr) TouchFile(status_file);
}

}  // namespace dsim
