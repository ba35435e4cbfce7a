#include "sim/harness.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cctype>
#include <deque>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "scheduler/internal/check.h"
#include "scheduler/schedule.h"
#include "scheduler/shrink.h"
#include "scheduler/strategies.h"
#include "sim/internal/progress.h"
#include "sim/internal/sweep_config.h"

namespace dsim {

SeedList SeedList::Shard(uint64_t index, uint64_t total) const {
  DSIM_CHECK(total > 0 && index < total);
  if (index >= count_) return SeedList(first_, 0, stride_);
  return SeedList(first_ + index * stride_, (count_ - index + total - 1) / total, stride_ * total);
}

absl::StatusOr<SeedList> SeedsFromEnvironment(uint64_t default_count, uint64_t first_seed,
                                              const EnvLookup& env) {
  return internal::ResolveSeedList(default_count, first_seed, env != nullptr ? env : ProcessEnv());
}

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
  uint64_t pct_steps = 0;  // PCT's k calibrated for this sweep (CalibratePctSteps), or 0.
};

// One simulation of one seed, kept alive until it has been summarized or compared.
struct SimRun {
  std::unique_ptr<Simulation> sim;
  absl::Status status;
  std::shared_ptr<RecordingStrategy> recorder;  // Null when not recording.
  std::shared_ptr<ReplayStrategy> replay;       // Null unless DSIM_REPLAY.
  bool diverged = false;                        // The replay diverged during the body.
};

// A seed's outcome and, for a failing seed, the schedule of its failing run (recorded,
// or the one replayed), for saving and shrinking.
struct SeedRun {
  SeedOutcome outcome;
  std::optional<Schedule> schedule;
  // A run of a guided search (DSIM_EXPLORE=guided): its schedule, recorded as it ran,
  // is how it comes back (replayed); its seed alone is not.
  bool guided = false;
  std::string guided_plan;  // "prefix of 812 decisions of an earlier run, then seed 7".
  // What the body attached for a failure report (Simulation::AttachArtifact).
  std::vector<Simulation::Artifact> artifacts;
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

// Runs the body once, on a fresh simulation of `seed` driven by `strategy`, with
// `listener` (may be null) attached before the body starts.
SimRun RunWith(const SweepContext& ctx, uint64_t seed, std::shared_ptr<Strategy> strategy,
               bool keep_all_events, SchedulerListener* listener) {
  SimulationOptions options = ctx.options.simulation;
  options.seed = seed;
  // The spec is informational once there is an object; keep it truthful for the body.
  options.strategy = ctx.config.replay != nullptr ? "replay:" + ctx.config.replay_path
                                                  : ctx.config.strategy;
  options.strategy_object = std::move(strategy);
  if (keep_all_events) options.trace.keep_all_events = true;
  SimRun run;
  run.sim = std::make_unique<Simulation>(std::move(options));
  if (listener != nullptr) run.sim->scheduler().AddListener(listener);
  run.status = CallBody(ctx.body, *run.sim);
  const std::optional<RunResult>& failed_run = run.sim->first_failed_run();
  if (run.status.ok() && ctx.options.fail_on_failed_run && failed_run.has_value()) {
    run.status = failed_run->status();
  }
  return run;
}

// A diverged replay fails the seed with the divergence, whatever the body made of the
// rest of the run: past the divergence the choices were fallbacks, not the recording.
absl::Status WithReplayStatus(const ReplayStrategy& replay, const absl::Status& body_status) {
  const absl::Status diverged = replay.status();
  if (diverged.ok()) return body_status;
  std::string message = absl::StrCat(
      diverged.message(),
      "\nthe code no longer fits this schedule; rerun the seed (DSIM_SEED) to record a new one");
  if (!body_status.ok() && !absl::StrContains(body_status.message(), diverged.message())) {
    absl::StrAppend(&message, "\nthe body then returned: ", body_status.ToString());
  }
  return absl::FailedPreconditionError(message);
}

// The seed's run as the sweep makes it: under the DSIM_REPLAY schedule, or under the
// spec's strategy, recorded if `record`.
SimRun RunSimulation(const SweepContext& ctx, uint64_t seed, bool keep_all_events,
                     bool record = false) {
  std::shared_ptr<Strategy> strategy;
  std::shared_ptr<ReplayStrategy> replay;
  std::shared_ptr<RecordingStrategy> recorder;
  if (ctx.config.replay != nullptr) {
    replay = std::make_shared<ReplayStrategy>(*ctx.config.replay);
    strategy = replay;
  } else {
    absl::StatusOr<std::shared_ptr<Strategy>> made = MakeStrategy(ctx.config.strategy, seed);
    DSIM_CHECK(made.ok(), "strategy spec \"", ctx.config.strategy, "\" failed for seed ", seed,
               " after it was validated: ", made.status().message());
    strategy = *std::move(made);
    if (auto* pct = dynamic_cast<PctStrategy*>(strategy.get()); pct != nullptr) {
      pct->SetCalibratedSteps(ctx.pct_steps);
    }
    if (record) {
      recorder = std::make_shared<RecordingStrategy>(std::move(strategy), seed);
      strategy = recorder;
    }
  }
  SimRun run = RunWith(ctx, seed, std::move(strategy), keep_all_events, nullptr);
  run.recorder = std::move(recorder);
  run.replay = std::move(replay);
  if (run.replay != nullptr) {
    run.diverged = !run.replay->status().ok();
    run.status = WithReplayStatus(*run.replay, run.status);
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

// The blocked tasks a report shows, each with its host. A deadlock shows every blocked
// task; any other failure only the non-daemon ones (server loops blocked on accept are
// the normal state of a run), with a count of the daemons left out.
std::string BlockedTasks(Simulation& sim) {
  const bool deadlock = sim.first_failed_run().has_value() &&
                        sim.first_failed_run()->outcome == RunOutcome::kDeadlock;
  std::string out;
  size_t daemons_left_out = 0;
  for (const TaskReport& task : sim.LiveTaskReports()) {
    if (!task.blocked) continue;
    if (task.daemon && !deadlock) {
      ++daemons_left_out;
      continue;
    }
    absl::StrAppend(&out, "    ", task.ToString(), "\n");
  }
  if (out.empty()) out = "    (none)\n";
  if (daemons_left_out > 0) {
    absl::StrAppend(&out, "    (and ", daemons_left_out, " blocked daemon task",
                    daemons_left_out == 1 ? "" : "s", ", not shown: this is not a deadlock)\n");
  }
  return out;
}

bool IsRandomDraw(const TraceEvent& event) {
  return event.kind == TraceEventKind::kDecision &&
         static_cast<DecisionKind>(event.code) == DecisionKind::kValue;
}

// The index of the event the failure happened at: a broken invariant's mark, else the
// end of the first failed run, else (the body's own verdict) the end of the body.
uint64_t FailureEvent(const Simulation& sim) {
  if (!sim.violation().empty()) return sim.violation_event();
  if (sim.first_failed_run().has_value()) return sim.first_failure_event();
  return sim.trace().event_count();
}

// Up to `lines` lines of trace around the failure: mostly before it, a few after, each
// run of random draws collapsed into one line. When the trace no longer holds the
// failure, the simulation's copy of the events before it is used.
std::string EventsAroundFailure(const Simulation& sim, size_t lines) {
  const Trace& trace = sim.trace();
  const uint64_t failure = FailureEvent(sim);
  const uint64_t total = trace.event_count();
  const uint64_t after = std::min<uint64_t>(4, lines / 4);
  std::vector<TraceEvent> events;
  for (const TraceEvent& event : trace.events()) {
    if (event.index <= failure + after) events.push_back(event);
  }
  if (failure < total && (events.empty() || events.front().index > failure)) {
    events = sim.events_before_failure();
  }
  if (events.empty() || lines == 0) return "    (no events retained)\n";
  // Walk backwards from the end, collapsing random draws, until `lines` lines are made.
  std::vector<std::string> out;
  size_t i = events.size();
  while (i > 0 && out.size() < lines) {
    const TraceEvent& event = events[i - 1];
    if (!IsRandomDraw(event)) {
      std::string line = trace.Describe(event);
      if (event.index == failure && failure < total) line += "   <-- the failure";
      out.push_back(std::move(line));
      --i;
      continue;
    }
    size_t first = i - 1;
    while (first > 0 && IsRandomDraw(events[first - 1])) --first;
    const size_t draws = i - first;
    out.push_back(draws == 1 ? trace.Describe(event)
                             : absl::StrCat("#", events[first].index, "..#", event.index, " ",
                                            draws, " random draws (\"", event.what, "\" ...)"));
    i = first;
  }
  std::string text;
  for (auto it = out.rbegin(); it != out.rend(); ++it) absl::StrAppend(&text, "    ", *it, "\n");
  const uint64_t shown_end = events.back().index + 1;
  if (shown_end < total) {
    absl::StrAppend(&text, "    ... ", total - shown_end,
                    " later events (teardown, later runs) not shown\n");
  }
  return text;
}

// The first lines of a report: what failed, and the run's totals.
std::string ReportHead(const SeedOutcome& outcome) {
  std::string out = absl::StrCat("FAIL seed=", outcome.seed, " strategy=", outcome.strategy,
                                 ": ", FirstLine(outcome.status.message()), "\n");
  absl::StrAppend(&out, "  failure:\n", Indent(outcome.status.ToString(), "    "), "\n");
  absl::StrAppend(&out, "  virtual time: ", FormatVirtualTime(outcome.end_time_ns), ", ",
                  outcome.steps, " steps, ", outcome.events, " events, fingerprint ",
                  absl::StrFormat("%016x", outcome.fingerprint), "\n");
  return out;
}

// The report's body, written while the simulation is still alive.
std::string FailureReport(SimRun& run, const SeedOutcome& outcome, size_t summary_events) {
  Simulation& sim = *run.sim;
  std::string out = ReportHead(outcome);
  if (!sim.swarm_description().empty()) {
    absl::StrAppend(&out, "  swarm: ", sim.swarm_description(), "\n");
  }
  absl::StrAppend(&out, "  events around the failure (random draws collapsed):\n",
                  EventsAroundFailure(sim, summary_events));
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
  outcome.coverage = run.sim->coverage().Summary();
  if (!run.status.ok()) outcome.report = FailureReport(run, outcome, summary_events);
  return outcome;
}

// A replay that ran clean but left recorded decisions unused: the program now ends
// sooner than the recorded one. Known only after teardown, so reported without the
// simulation's events.
void CheckReplayComplete(const SimRun& run, SeedOutcome& outcome) {
  if (run.replay == nullptr || run.diverged) return;
  const absl::Status complete = run.replay->CheckComplete();
  if (complete.ok()) return;
  if (!outcome.status.ok()) {
    absl::StrAppend(&outcome.report, "  also: ", FirstLine(complete.message()), "\n");
    return;
  }
  outcome.status = complete;
  outcome.report = ReportHead(outcome);
}

// Tears the simulation down first: unwinding tasks may still make decisions, and a
// replay's completeness is known only after that. A failing replay that used its whole
// schedule keeps it, for DSIM_SHRINK.
void FinishRun(SimRun& run, SeedRun& seed_run) {
  run.sim.reset();
  CheckReplayComplete(run, seed_run.outcome);
  if (seed_run.outcome.status.ok() || run.replay == nullptr) return;
  if (run.replay->CheckComplete().ok()) seed_run.schedule = run.replay->schedule();
}

SeedRun RunSeed(const SweepContext& ctx, uint64_t seed) {
  const bool check = ctx.config.check_determinism;
  SimRun first = RunSimulation(ctx, seed, /*keep_all_events=*/check);
  SeedRun seed_run;
  if (check) {
    SimRun second = RunSimulation(ctx, seed, /*keep_all_events=*/true);
    absl::Status mismatch = CompareRuns(first, second, seed);
    if (!mismatch.ok()) first.status = mismatch;
    seed_run.outcome = Summarize(first, seed, ctx.options.summary_events);
    seed_run.outcome.nondeterministic = !mismatch.ok();
  } else {
    seed_run.outcome = Summarize(first, seed, ctx.options.summary_events);
  }
  if (!seed_run.outcome.status.ok()) seed_run.artifacts = first.sim->artifacts();
  FinishRun(first, seed_run);
  return seed_run;
}

// DSIM_CHECK_DETERMINISM=1 under DSIM_EXPLORE=guided: a replay of the run's schedule
// must give the same event stream and result (a guided run comes back only that way).
void CheckGuidedRun(const SweepContext& ctx, const Schedule& schedule, SeedRun& seed_run) {
  SeedOutcome& outcome = seed_run.outcome;
  SimRun again = RunWith(ctx, outcome.seed, std::make_shared<ReplayStrategy>(schedule),
                         /*keep_all_events=*/false, nullptr);
  const uint64_t fingerprint = again.sim->trace().fingerprint();
  if (fingerprint == outcome.fingerprint && again.status == outcome.status) return;
  const absl::Status first = outcome.status;
  again.status = absl::FailedPreconditionError(absl::StrCat(
      "nondeterminism: a replay of guided run's schedule (seed ", outcome.seed,
      ") differs from the run (fingerprints ",
      absl::StrFormat("%016x vs %016x", outcome.fingerprint, fingerprint),
      ")\nrun result: ", first.ToString(), "\nreplay result: ", again.status.ToString(),
      "\nreplay its saved schedule with DSIM_REPLAY and DSIM_CHECK_DETERMINISM=1 to find "
      "where two runs part"));
  outcome = Summarize(again, outcome.seed, ctx.options.summary_events);  // The replay's events.
  outcome.nondeterministic = true;
  absl::StrAppend(&outcome.report, "  ", seed_run.guided_plan, "\n");
  seed_run.artifacts = again.sim->artifacts();
}

// DSIM_EXPLORE=guided: this shard's budget of runs as a guided search, each run recorded
// (the search learns from every decision). Results in run order.
std::vector<SeedRun> RunGuided(const SweepContext& ctx, const std::string& label,
                               uint64_t* runs_done) {
  const SeedList& seeds = ctx.config.shard_seeds;
  GuidedSearchOptions options = ctx.options.guided;
  options.sweep_seed = seeds.empty() ? ctx.options.first_seed : seeds[0];
  options.budget_runs = seeds.size();
  options.simulation = ctx.options.simulation;
  GuidedSearch search(options);
  const bool keep_all = seeds.size() <= SweepResult::kMaxKeptOutcomes;
  internal::ProgressLine progress(label, seeds.size(), ctx.config.progress);
  std::vector<SeedRun> runs;
  uint64_t failures = 0;
  *runs_done = 0;
  for (uint64_t i = 0; i < seeds.size(); ++i) {
    if (ctx.options.stop_after_failures != 0 && failures >= ctx.options.stop_after_failures) break;
    GuidedRunPlan plan = search.Next();
    auto recorder = std::make_shared<RecordingStrategy>(plan.strategy, plan.fresh_seed);
    SimRun run = RunWith(ctx, plan.fresh_seed, recorder, /*keep_all_events=*/false, nullptr);
    SeedRun seed_run;
    seed_run.guided = true;
    seed_run.guided_plan =
        plan.branched ? absl::StrCat("guided run ", plan.index, ": a prefix of ", plan.prefix,
                                     " decisions of an earlier run that reached \"",
                                     plan.branch_key, "\", then seed ", plan.fresh_seed)
                      : absl::StrCat("guided run ", plan.index, ": seed ", plan.fresh_seed,
                                     " from the start");
    seed_run.outcome = Summarize(run, plan.fresh_seed, ctx.options.summary_events);
    if (!seed_run.outcome.status.ok()) {
      seed_run.artifacts = run.sim->artifacts();
      absl::StrAppend(&seed_run.outcome.report, "  ", seed_run.guided_plan, "\n");
    }
    run.sim.reset();  // Teardown's decisions belong to the schedule too.
    Schedule schedule = recorder->TakeSchedule();
    if (ctx.config.check_determinism) CheckGuidedRun(ctx, schedule, seed_run);
    const bool failed = !seed_run.outcome.status.ok();
    if (failed) {
      seed_run.schedule = schedule;
      ++failures;
    }
    search.Learn(seed_run.outcome.coverage, std::move(schedule));
    ++*runs_done;
    progress.SeedDone(failed);
    if (keep_all || failed) runs.push_back(std::move(seed_run));
  }
  return runs;
}

// Runs this shard's seeds on `config.jobs` threads; results in seed-list order. A sweep
// too large to keep every outcome keeps only the failing seeds' (`seeds_run` counts all).
std::vector<SeedRun> RunSeeds(const SweepContext& ctx, const std::string& label,
                              uint64_t* seeds_run) {
  const SeedList& seeds = ctx.config.shard_seeds;
  const bool keep_all = seeds.size() <= SweepResult::kMaxKeptOutcomes;
  std::vector<std::optional<SeedRun>> slots(keep_all ? seeds.size() : 0);
  std::mutex failed_mu;
  std::map<uint64_t, SeedRun> failed_runs;  // By position, when not keeping all.
  std::atomic<uint64_t> next{0};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> failures{0};
  internal::ProgressLine progress(label, seeds.size(), ctx.config.progress);
  const uint64_t stop_after = ctx.options.stop_after_failures;
  auto worker = [&] {
    for (;;) {
      if (stop_after != 0 && failures.load() >= stop_after) return;
      const uint64_t i = next.fetch_add(1);
      if (i >= seeds.size()) return;
      SeedRun run = RunSeed(ctx, seeds[i]);
      const bool failed = !run.outcome.status.ok();
      if (failed) failures.fetch_add(1);
      if (keep_all) {
        slots[i] = std::move(run);
      } else if (failed) {
        std::lock_guard<std::mutex> lock(failed_mu);
        failed_runs.emplace(i, std::move(run));
      }
      done.fetch_add(1);
      progress.SeedDone(failed);
    }
  };
  const uint64_t threads = std::min<uint64_t>(ctx.config.jobs, seeds.size());
  if (threads <= 1) {
    worker();  // On the caller's thread: no thread, and gtest asserts in bodies work.
  } else {
    std::vector<std::thread> pool;
    for (uint64_t t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (std::thread& thread : pool) thread.join();
  }
  *seeds_run = done.load();
  std::vector<SeedRun> runs;
  for (std::optional<SeedRun>& slot : slots) {
    if (slot.has_value()) runs.push_back(*std::move(slot));
  }
  for (auto& [position, run] : failed_runs) runs.push_back(std::move(run));
  return runs;
}

std::string CurrentTestName(const SweepOptions& options) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (info == nullptr) return options.test_name;
  return absl::StrCat(info->test_suite_name(), ".", info->name());
}

// How a report names a file it wrote. Under Bazel, a file in the outputs directory is
// named inside the zip Bazel will have made of it by the time anyone reads the report.
std::string ShownPath(const SweepConfig& config, const std::string& path) {
  const std::string dir = config.outputs_dir + "/";
  if (config.test_target.empty() || config.outputs_dir.empty() || !absl::StartsWith(path, dir)) {
    return path;
  }
  return absl::StrCat(path.substr(dir.size()), " in ", internal::OutputsZipPath(config.outputs_dir));
}

// The trace files a seed's report writes: DSIM_TRACE's (for a single seed, or each
// failing one), and, for a failure, two in TEST_UNDECLARED_OUTPUTS_DIR.
std::vector<std::string> TracePaths(const SweepConfig& config, const SeedOutcome& outcome,
                                    const std::string& test_name) {
  const bool failed = !outcome.status.ok();
  std::vector<std::string> paths;
  if (!config.trace_path.empty() && (config.all_seeds.size() == 1 || failed)) {
    paths.push_back(config.all_seeds.size() == 1 ? config.trace_path
                                                 : internal::PathForSeed(config.trace_path, outcome.seed));
  }
  if (failed && !config.outputs_dir.empty()) {
    const std::string base =
        absl::StrCat(config.outputs_dir, "/", internal::FileStem(config, test_name, outcome.seed));
    paths.push_back(base + ".json");
    paths.push_back(base + ".txt");
  }
  return paths;
}

// A guided run's traces, from a replay of its recorded schedule (its seed alone would
// not give the run back). The replay is checked to be the failing run.
std::string RerunGuidedForReport(const SweepContext& ctx, const SeedRun& run,
                                 const std::vector<std::string>& paths) {
  if (paths.empty() || !run.schedule.has_value()) return "";
  auto replay = std::make_shared<ReplayStrategy>(*run.schedule);
  SimRun again = RunWith(ctx, run.outcome.seed, replay, /*keep_all_events=*/true, nullptr);
  std::string lines;
  if (again.sim->trace().fingerprint() != run.outcome.fingerprint || again.status.ok()) {
    absl::StrAppend(&lines, "  WARNING: replaying the guided run's schedule gave a different "
                    "event stream or no failure: the simulation is nondeterministic\n");
  }
  for (const std::string& path : paths) {
    absl::Status written = again.sim->trace().WriteFile(path);
    absl::StrAppend(&lines, "  trace: ", written.ok() ? ShownPath(ctx.config, path) : written.ToString(),
                    "\n");
  }
  return lines;
}

// Reruns a seed for its report when traces or its schedule are wanted: with every
// trace event kept, and, for a failing seed, under a RecordingStrategy. Sweeps run
// seeds unrecorded because recording costs a third of a CPU-bound sweep's time, and
// determinism makes this the same run; the fingerprint and the failure are checked,
// not assumed, and a schedule of some other run is never kept. Returns report lines.
std::string RerunForReport(const SweepContext& ctx, SeedRun& run, const std::string& test_name) {
  const SweepConfig& config = ctx.config;
  const SeedOutcome& outcome = run.outcome;
  const std::vector<std::string> paths = TracePaths(config, outcome, test_name);
  if (run.guided) return RerunGuidedForReport(ctx, run, paths);
  const bool record = config.record && config.replay == nullptr && !outcome.status.ok();
  if (paths.empty() && !record) return "";
  SimRun again = RunSimulation(ctx, outcome.seed, /*keep_all_events=*/!paths.empty(), record);
  std::string lines;
  const bool same_run = again.sim->trace().fingerprint() == outcome.fingerprint;
  if (!same_run) {
    absl::StrAppend(&lines, "  WARNING: rerunning seed ", outcome.seed,
                    " gave a different event stream: the simulation is nondeterministic; "
                    "rerun with DSIM_CHECK_DETERMINISM=1 to find where",
                    record ? "; no schedule saved: it would not be the failing run's" : "", "\n");
  }
  for (const std::string& path : paths) {
    absl::Status written = again.sim->trace().WriteFile(path);
    absl::StrAppend(&lines, "  trace: ", written.ok() ? ShownPath(config, path) : written.ToString(),
                    "\n");
  }
  const bool failed_again = !again.status.ok();
  again.sim.reset();  // Teardown's decisions belong to the schedule too.
  if (!record || !same_run) return lines;
  if (failed_again) {
    run.schedule = again.recorder->TakeSchedule();
  } else {
    absl::StrAppend(&lines, "  WARNING: rerunning seed ", outcome.seed,
                    " gave the same events but passed: the body depends on something outside "
                    "the simulation; no schedule saved\n");
  }
  return lines;
}

std::string SummaryLine(const SweepResult& result, const std::string& test_name) {
  std::string line = absl::StrCat(
      "dsim sweep", test_name.empty() ? "" : " ", test_name, ": ", result.seeds_run,
      result.guided ? (result.seeds_run == 1 ? " guided run" : " guided runs")
                    : (result.seeds_run == 1 ? " seed run" : " seeds run"));
  if (result.total_shards > 1) {
    absl::StrAppend(&line, " (shard ", result.shard_index + 1, "/", result.total_shards, " of ",
                    result.total_seeds, ")");
  }
  absl::StrAppend(&line, ", ", result.failed_seeds.size(), " failed");
  if (!result.failed_seeds.empty()) {
    absl::StrAppend(&line, result.guided ? " (runs' seeds " : " (seeds ",
                    absl::StrJoin(result.failed_seeds, ", "), ")");
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

// Where one file of a failing seed was written.
struct SavedFile {
  std::string outputs_path;  // In TEST_UNDECLARED_OUTPUTS_DIR, or "".
  std::string stable_path;   // In the schedule directory, or "".
  std::string lines;         // Report lines: the paths, or why a write failed.
};

using FileWriter = std::function<absl::Status(const std::string& path)>;

absl::Status WriteText(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// The report line for one write: "  <what>: <where><detail>", or why it failed.
std::string SavedLine(const SweepConfig& config, absl::string_view what, const std::string& path,
                      const absl::Status& written, absl::string_view detail) {
  if (!written.ok()) return absl::StrCat("  ", what, ": not saved: ", written.ToString(), "\n");
  return absl::StrCat("  ", what, ": ", ShownPath(config, path), detail, "\n");
}

// Writes `name` to the outputs directory and to the stable schedule directory (made if
// missing), whichever are configured. `what` and `detail` go into the report lines.
SavedFile SaveFile(const SweepConfig& config, const std::string& name, absl::string_view what,
                   absl::string_view detail, const FileWriter& write) {
  SavedFile saved;
  if (!config.outputs_dir.empty()) {
    const std::string path = absl::StrCat(config.outputs_dir, "/", name);
    const absl::Status written = write(path);
    if (written.ok()) saved.outputs_path = path;
    absl::StrAppend(&saved.lines, SavedLine(config, what, path, written, detail));
  }
  if (!config.schedule_dir.empty()) {
    std::error_code ignored;  // A failure to make it shows as a failure to write.
    std::filesystem::create_directories(config.schedule_dir, ignored);
    const std::string path = absl::StrCat(config.schedule_dir, "/", name);
    const absl::Status written = write(path);
    if (written.ok()) saved.stable_path = path;
    absl::StrAppend(&saved.lines, SavedLine(config, what, path, written, detail));
  }
  return saved;
}

// The command that replays a saved file: from the stable copy if there is one; under
// Bazel otherwise out of outputs.zip, which is all that is left once the test ends.
std::string ReplayLine(const SweepConfig& config, const SavedFile& saved, const std::string& name,
                       absl::string_view label, const std::string& test_name) {
  if (!saved.stable_path.empty()) {
    return absl::StrCat("  ", label, ": ", internal::ReplayCommand(config, saved.stable_path, test_name),
                        "\n");
  }
  if (saved.outputs_path.empty()) return "";
  if (config.test_target.empty()) {
    return absl::StrCat("  ", label, ": ",
                        internal::ReplayCommand(config, saved.outputs_path, test_name), "\n");
  }
  const std::string unzipped = absl::StrCat("/tmp/", name);
  return absl::StrCat("  ", label, ": unzip -o ",
                      internal::ShellWord(internal::OutputsZipPath(config.outputs_dir)), " ",
                      internal::ShellWord(name), " -d /tmp && ",
                      internal::ReplayCommand(config, unzipped, test_name), "\n");
}

// " (decisions 812, preemptions 31, context switches 97)".
std::string ScheduleSummary(const Schedule& schedule) {
  const ScheduleStats stats = schedule.Stats();
  return absl::StrCat(" (decisions ", stats.decisions, ", preemptions ", stats.preemptions,
                      ", context switches ", stats.context_switches, ")");
}

// Saves a failing seed's schedule (when it has one) where SaveFile puts files; the
// lines say where and how big it is.
SavedFile SaveSchedule(const SweepConfig& config, SeedRun& run, const std::string& name) {
  if (!run.schedule.has_value()) return {};
  const Schedule& schedule = *run.schedule;
  SavedFile saved = SaveFile(config, name, "schedule", ScheduleSummary(schedule),
                             [&](const std::string& path) { return schedule.Save(path); });
  run.outcome.schedule_path = !saved.stable_path.empty() ? saved.stable_path : saved.outputs_path;
  return saved;
}

// The failure's identity while shrinking: the status code and the message's first line
// with every number masked, so "got 3" and "got 1" match but a deadlock does not match
// a stale read.
std::string FailureSignature(const absl::Status& status) {
  std::string out = absl::StrCat(absl::StatusCodeToString(status.code()), ": ");
  bool in_number = false;
  for (char c : FirstLine(status.message())) {
    const bool digit = std::isdigit(static_cast<unsigned char>(c)) != 0;
    if (!digit) out += c;
    if (digit && !in_number) out += '#';
    in_number = digit;
  }
  return out;
}

// When this process started, near enough: Bazel's TEST_TIMEOUT counts from there.
const std::chrono::steady_clock::time_point kProcessStart = std::chrono::steady_clock::now();

// When shrinking must stop to leave the test time to write its results before Bazel's
// TEST_TIMEOUT kills it: 80% of the timeout, and at least 10 s before it.
std::optional<std::chrono::steady_clock::time_point> ShrinkDeadline(const SweepConfig& config) {
  if (config.test_timeout_seconds <= 0) return std::nullopt;
  const double seconds = std::min(0.8 * config.test_timeout_seconds,
                                  config.test_timeout_seconds - 10.0);
  return kProcessStart + std::chrono::milliseconds(static_cast<int64_t>(std::max(0.0, seconds) * 1000));
}

// Shrinks a failing seed's schedule by rerunning the body under the shrinker's
// strategies, and saves the result and its interleaving beside the original. Every
// improvement is saved at once and printed, so a test killed mid-way leaves its best.
std::string ShrinkFailure(const SweepContext& ctx, SeedRun& run, const std::string& test_name) {
  if (!run.schedule.has_value()) return "  shrink: no schedule of this run to shrink\n";
  const std::string want = FailureSignature(run.outcome.status);
  const uint64_t seed = run.outcome.seed;
  const FailingRun still_fails = [&](std::shared_ptr<Strategy> strategy,
                                     SchedulerListener* observer) {
    // The simulation is torn down before this returns, so teardown's decisions are
    // part of the recorded attempt, as they are of the original.
    SimRun attempt = RunWith(ctx, seed, std::move(strategy), false, observer);
    return !attempt.status.ok() && FailureSignature(attempt.status) == want;
  };
  const std::string stem = internal::FileStem(ctx.config, test_name, seed) + ".shrunk";
  std::ostream& log = ctx.options.log != nullptr ? *ctx.options.log : std::cerr;
  const ScheduleStats original = run.schedule->Stats();
  const auto deadline = ShrinkDeadline(ctx.config);
  ShrinkOptions options;
  options.max_runs = ctx.config.shrink_max_runs;
  options.should_stop = [deadline](int) {
    return deadline.has_value() && std::chrono::steady_clock::now() >= *deadline;
  };
  options.on_improvement = [&](const Schedule& best, uint64_t faults, int runs) {
    const ScheduleStats stats = best.Stats();
    log << absl::StrFormat(
        "dsim shrink seed %d: run %d/%d, preemptions %d -> %d, decisions %d -> %d, faults %d\n",
        seed, runs, options.max_runs, original.preemptions, stats.preemptions,
        original.decisions, stats.decisions, faults);
    SaveFile(ctx.config, stem + ".dsched", "", "",
             [&](const std::string& path) { return best.Save(path); });
  };
  absl::StatusOr<ShrinkResult> shrunk = ShrinkSchedule(*run.schedule, still_fails, options);
  if (!shrunk.ok()) return absl::StrCat("  shrink: ", shrunk.status().ToString(), "\n");
  std::string lines = absl::StrFormat(
      "  shrunk (%d runs%s): preemptions %d -> %d, context switches %d -> %d, faults %d -> %d, "
      "decisions %d -> %d\n",
      shrunk->runs,
      shrunk->stopped ? ", stopped early to finish before TEST_TIMEOUT" : "",
      shrunk->before.preemptions, shrunk->after.preemptions,
      shrunk->before.context_switches, shrunk->after.context_switches, shrunk->faults_before,
      shrunk->faults_after, shrunk->before.decisions, shrunk->after.decisions);
  const SavedFile schedule =
      SaveFile(ctx.config, stem + ".dsched", "shrunk schedule", "",
               [&](const std::string& path) { return shrunk->shrunk.Save(path); });
  const SavedFile text =
      SaveFile(ctx.config, stem + ".txt", "shrunk interleaving", "",
               [&](const std::string& path) { return WriteText(path, shrunk->interleaving); });
  run.outcome.shrunk_schedule_path =
      !schedule.stable_path.empty() ? schedule.stable_path : schedule.outputs_path;
  absl::StrAppend(&lines, schedule.lines, text.lines,
                  ReplayLine(ctx.config, schedule, stem + ".dsched", "replay shrunk", test_name));
  return lines;
}

// The report's tail for a failing seed: saved traces and schedule, the commands that
// bring the failure back, and shrinking. Under DSIM_REPLAY the schedule is the user's
// file already, and replaying it again is the way back.
std::string CompleteReport(const SweepContext& ctx, SeedRun& run, const std::string& test_name) {
  const SweepConfig& config = ctx.config;
  SeedOutcome& outcome = run.outcome;
  std::string lines = RerunForReport(ctx, run, test_name);
  const std::string stem = internal::FileStem(config, test_name, outcome.seed);
  for (const Simulation::Artifact& artifact : run.artifacts) {
    absl::StrAppend(&lines, SaveFile(config, absl::StrCat(stem, ".", artifact.name),
                                     artifact.name, "", [&](const std::string& path) {
                                       return WriteText(path, artifact.contents);
                                     }).lines);
  }
  const std::string name = stem + ".dsched";
  const SavedFile schedule =
      config.replay != nullptr ? SavedFile{} : SaveSchedule(config, run, name);
  absl::StrAppend(&lines, schedule.lines);
  if (!config.outputs_dir.empty() && !config.test_target.empty()) {
    const std::string zip = internal::ShellWord(internal::OutputsZipPath(config.outputs_dir));
    absl::StrAppend(&lines, "  (Bazel zips the test's outputs when it ends; to unpack them: unzip -o ",
                    zip, " -d /tmp/dsim-outputs)\n");
  }
  if (config.replay != nullptr) {
    absl::StrAppend(&lines, "  replay: ",
                    internal::ReplayCommand(config, config.replay_path, test_name), "\n");
  } else if (run.guided) {
    // The seed alone does not give a guided run back: only its schedule does.
    absl::StrAppend(&lines, ReplayLine(config, schedule, name, "replay", test_name));
  } else {
    absl::StrAppend(&lines, "  rerun: ",
                    internal::RerunCommand(config, outcome.seed, test_name, outcome.nondeterministic),
                    "\n", ReplayLine(config, schedule, name, "replay", test_name));
  }
  if (config.shrink) absl::StrAppend(&lines, ShrinkFailure(ctx, run, test_name));
  return lines;
}

// Completes the reports of failing seeds (traces, schedules, commands) and emits them.
void ReportFailures(const SweepContext& ctx, std::vector<SeedRun>& runs,
                    const std::string& test_name) {
  size_t detailed = 0;
  std::vector<uint64_t> undetailed;
  for (SeedRun& run : runs) {
    if (run.outcome.status.ok()) continue;
    if (detailed++ >= ctx.options.detailed_failures) {
      undetailed.push_back(run.outcome.seed);
      continue;
    }
    absl::StrAppend(&run.outcome.report, CompleteReport(ctx, run, test_name));
    Emit(ctx.options, run.outcome.report);
  }
  if (!undetailed.empty()) {
    Emit(ctx.options, absl::StrCat("FAIL ", undetailed.size(), " more seeds also failed: ",
                                   absl::StrJoin(undetailed, ", ")));
  }
}

// Sums the seeds' coverage, prints the report, writes it as JSON for the merge tool,
// and fails the sweep on a never-hit site when asked to.
void ReportCoverage(const SweepOptions& options, const SweepConfig& config, const EnvLookup& env,
                    const std::string& test_name, SweepResult& result, std::ostream& log) {
  for (const SeedOutcome& outcome : result.outcomes) result.coverage.Add(outcome.coverage);
  CoverageOptions coverage = options.coverage;
  if (std::optional<std::string> fail = env("DSIM_COVERAGE_FAIL"); fail.has_value()) {
    coverage.fail_on_never_hit = *fail == "1";
  }
  result.never_hit = result.coverage.NeverHit(coverage);
  if (coverage.report && !result.outcomes.empty()) log << result.coverage.ReportText(coverage);
  if (!config.outputs_dir.empty() && !result.outcomes.empty()) {
    std::string name = absl::StrCat(
        "dsim_coverage.", absl::StrReplaceAll(test_name.empty() ? "sweep" : test_name, {{"/", "_"}}));
    if (result.total_shards > 1) {
      absl::StrAppend(&name, ".shard-", result.shard_index, "-of-", result.total_shards);
    }
    const std::string path = absl::StrCat(config.outputs_dir, "/", name, ".json");
    const absl::Status written =
        WriteText(path, result.coverage.ToJson(test_name, result.shard_index, result.total_shards));
    if (!written.ok()) log << "dsim coverage: " << written << "\n";
  }
  const bool whole_sweep = result.total_shards <= 1;
  if (coverage.fail_on_never_hit && whole_sweep && !result.never_hit.empty()) {
    Emit(options, absl::StrCat("dsim coverage: never hit in ", result.coverage.seeds(), " seeds: ",
                               absl::StrJoin(result.never_hit, ", ")));
    result.coverage_error = absl::FailedPreconditionError(
        absl::StrCat("coverage: never hit: ", absl::StrJoin(result.never_hit, ", ")));
  }
}

// PCT's k for a sweep whose spec gives none (see CalibratePctSteps). The calibration
// runs' outcomes, and any GoogleTest failures their bodies report, are discarded.
uint64_t CalibratePct(const SweepOptions& options, const SweepConfig& config,
                      const SeedSweep::Body& body) {
  if (config.replay != nullptr) return 0;
  absl::StatusOr<std::shared_ptr<Strategy>> probe = MakeStrategy(config.strategy, 1);
  const auto* pct = probe.ok() ? dynamic_cast<const PctStrategy*>(probe->get()) : nullptr;
  if (pct == nullptr || pct->steps_fixed()) return 0;
  const SweepContext calibration{options, config, body};
  ::testing::TestPartResultArray ignored;
  ::testing::ScopedFakeTestPartResultReporter intercept(
      ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &ignored);
  return CalibratePctSteps(pct->depth(), kPctCalibrationRuns,
                           [&](std::shared_ptr<Strategy> strategy, uint64_t seed) {
                             RunWith(calibration, seed, std::move(strategy), false, nullptr);
                           });
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
  const SweepContext ctx{options_, *config, body,
                         config->guided ? 0 : CalibratePct(options_, *config, body)};
  const std::string label = test_name.empty() ? "dsim sweep" : test_name;
  result.guided = config->guided;
  std::vector<SeedRun> runs = config->guided ? RunGuided(ctx, label, &result.seeds_run)
                                             : RunSeeds(ctx, label, &result.seeds_run);
  for (const SeedRun& run : runs) {
    if (!run.outcome.status.ok()) result.failed_seeds.push_back(run.outcome.seed);
  }
  ReportFailures(ctx, runs, test_name);
  // The wall time includes the reports' reruns and shrinking: what the test spent.
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // A passing single seed still writes the trace DSIM_TRACE asks for.
  if (result.failed_seeds.empty() && config->all_seeds.size() == 1 && !runs.empty()) {
    std::string lines = RerunForReport(ctx, runs[0], test_name);
    if (!lines.empty()) (options_.log ? *options_.log : std::cerr) << lines;
  }
  for (SeedRun& run : runs) result.outcomes.push_back(std::move(run.outcome));
  std::ostream& log = options_.log != nullptr ? *options_.log : std::cerr;
  ReportCoverage(options_, *config, env, test_name, result, log);
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
