// The demo (//sim:demo) as a specification: it is deterministic per seed, its planted
// bug is found by a 200-seed sweep (the history is not linearizable) and reproduced by
// the seed printed for it, the correct store survives the same sweep, and its trace is
// valid Chrome JSON. CorrectStorePassesEvery200SeedsUnderFaults also pins the fix of a
// put whose retry took effect a second time (seed 145 fails without it).
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler.h"
#include "sim/demo/history.h"
#include "sim/demo/scenario.h"
#include "sim/harness.h"
#include "tests/internal/mini_json.h"

namespace dsim::demo {
namespace {

constexpr uint64_t kSweepSeeds = 200;

absl::Time At(int milliseconds) { return Scheduler::Epoch() + absl::Milliseconds(milliseconds); }

Operation Put(int client, std::string value, Version version, int start_ms, int end_ms) {
  return {.client = client, .kind = Operation::Kind::kPut, .key = "x", .start = At(start_ms),
          .end = At(end_ms), .ok = true, .value = std::move(value), .version = version};
}

Operation Get(int client, std::string value, Version version, int start_ms, int end_ms) {
  return {.client = client, .kind = Operation::Kind::kGet, .key = "x", .start = At(start_ms),
          .end = At(end_ms), .ok = true, .value = std::move(value), .version = version};
}

// ---- The checker --------------------------------------------------------------------

TEST(DemoChecker, FlagsAReadOlderThanAWriteThatCompletedBeforeIt) {
  History history;
  history.Record(Put(1, "a", {1, 1}, 0, 10));
  history.Record(Put(1, "b", {2, 1}, 20, 30));
  history.Record(Get(2, "a", {1, 1}, 40, 50));
  const absl::Status verdict = history.Check();
  EXPECT_FALSE(verdict.ok());
  EXPECT_TRUE(absl::StrContains(verdict.message(), "not linearizable")) << verdict;
}

TEST(DemoChecker, AllowsAnOldValueForAReadConcurrentWithTheWrite) {
  History history;
  history.Record(Put(1, "a", {1, 1}, 0, 10));
  history.Record(Put(1, "b", {2, 1}, 20, 60));  // Still running when the read began.
  history.Record(Get(2, "a", {1, 1}, 40, 50));
  EXPECT_TRUE(history.Check().ok());
}

TEST(DemoChecker, FlagsAReadOlderThanAnEarlierRead) {
  History history;
  history.Record(Put(1, "a", {1, 1}, 0, 10));
  history.Record(Put(1, "b", {2, 1}, 20, 100));  // Outcome pending throughout.
  history.Record(Get(2, "b", {2, 1}, 30, 40));
  history.Record(Get(2, "a", {1, 1}, 50, 60));
  EXPECT_FALSE(history.Check().ok());
}

TEST(DemoChecker, FlagsAValueNobodyWrote) {
  History history;
  history.Record(Get(2, "ghost", {9, 3}, 40, 50));
  EXPECT_FALSE(history.Check().ok());
}

TEST(DemoChecker, FlagsAWriteThatTakesEffectTwice) {
  // What the store did before Put kept its version across retries: client 1's put of
  // "a" half-succeeded, was read, was overwritten by "b", and its retry, under a newer
  // version, brought "a" back. Every read returned a version at least as new as any
  // before it, so a checker that trusts the store's versions passes this history;
  // linearizability of the values does not.
  History history;
  history.Record(Put(1, "a", {4, 1}, 0, 100));   // Retried; its last version is 4.
  history.Record(Get(2, "a", {1, 1}, 10, 20));   // The first attempt's copy.
  history.Record(Put(2, "b", {2, 2}, 30, 40));
  history.Record(Get(2, "a", {4, 1}, 110, 120));
  const absl::Status verdict = history.Check();
  EXPECT_FALSE(verdict.ok());
  EXPECT_TRUE(absl::StrContains(verdict.message(), "not linearizable")) << verdict;
}

TEST(DemoChecker, UnavailablePutMayTakeEffectLater) {
  History history;
  Operation put = Put(1, "a", {}, 0, 10);
  put.ok = false;  // Timed out: it may still be applied.
  history.Record(put);
  history.Record(Get(2, "", {}, 20, 30));        // Not yet...
  history.Record(Get(2, "a", {1, 1}, 40, 50));   // ...now it is.
  EXPECT_TRUE(history.Check().ok()) << history.Check();
}

// ---- Determinism ----------------------------------------------------------------------

TEST(Demo, SameSeedGivesIdenticalSummaryAndTraceFingerprint) {
  for (bool bug : {false, true}) {
    const DemoResult first = RunDemo({.seed = 7, .bug = bug});
    const DemoResult second = RunDemo({.seed = 7, .bug = bug});
    EXPECT_EQ(first.summary, second.summary);
    EXPECT_EQ(first.trace_fingerprint, second.trace_fingerprint);
    EXPECT_GT(first.operations_ok, 0);
    EXPECT_EQ(first.faults, 4);  // Partition, heal, crash, restart.
  }
}

TEST(Demo, DifferentSeedsGiveDifferentRuns) {
  EXPECT_NE(RunDemo({.seed = 1}).trace_fingerprint, RunDemo({.seed = 2}).trace_fingerprint);
}

TEST(Demo, SweepResultsDoNotDependOnTheNumberOfThreads) {
  const std::vector<DemoResult> serial = RunDemoSeeds({.seed = 1, .bug = true}, 8, 1);
  const std::vector<DemoResult> parallel = RunDemoSeeds({.seed = 1, .bug = true}, 8, 2);
  ASSERT_EQ(serial.size(), parallel.size());
  for (size_t i = 0; i < serial.size(); ++i) {
    EXPECT_EQ(serial[i].seed, 1 + i);
    EXPECT_EQ(serial[i].summary, parallel[i].summary);
  }
}

// ---- The planted bug, and its absence ------------------------------------------------------

TEST(Demo, PlantedBugIsFoundWithin200SeedsAndThePrintedSeedReproducesIt) {
  const std::vector<DemoResult> sweep = RunDemoSeeds({.seed = 1, .bug = true}, kSweepSeeds, 0);
  std::optional<DemoResult> failed;
  int failures = 0;
  for (const DemoResult& result : sweep) {
    if (result.status.ok()) continue;
    ++failures;
    if (!failed.has_value()) failed = result;
  }
  ASSERT_TRUE(failed.has_value()) << "no seed of " << kSweepSeeds << " found the bug";
  EXPECT_LT(failures, static_cast<int>(kSweepSeeds)) << "the bug must depend on the seed";
  EXPECT_TRUE(absl::StartsWith(failed->fail_line, absl::StrCat("FAIL seed=", failed->seed, " ")))
      << failed->fail_line;

  // The failure comes with the checker's page and the history.
  EXPECT_TRUE(absl::StrContains(failed->html, "not linearizable")) << failed->seed;
  EXPECT_TRUE(absl::StrContains(failed->html, "<svg")) << failed->seed;
  EXPECT_GT(failed->history.size(), 100u);

  // What `--seed=<N> --bug` runs: a fresh simulation for the printed seed.
  const DemoResult rerun = RunDemo({.seed = failed->seed, .bug = true});
  EXPECT_FALSE(rerun.status.ok());
  EXPECT_EQ(rerun.fail_line, failed->fail_line);
  EXPECT_EQ(rerun.summary, failed->summary);
  EXPECT_EQ(rerun.trace_fingerprint, failed->trace_fingerprint);
}

TEST(Demo, CorrectStorePassesEvery200SeedsUnderFaults) {
  for (const DemoResult& result : RunDemoSeeds({.seed = 1}, kSweepSeeds, 0)) {
    EXPECT_TRUE(result.status.ok()) << result.summary << result.status;
    EXPECT_TRUE(result.html.empty());
    EXPECT_EQ(result.faults, 4) << result.summary;
  }
}

TEST(Demo, FailingSeedUnderASweepSavesTheLinearizabilityPageAndPrintsItsPath) {
  // Find a failing seed first, then sweep just that one, as a test would.
  uint64_t failing = 0;
  for (const DemoResult& result : RunDemoSeeds({.seed = 1, .bug = true}, 40, 0)) {
    if (!result.status.ok()) {
      failing = result.seed;
      break;
    }
  }
  ASSERT_NE(failing, 0u);
  const std::string dir = absl::StrCat(::testing::TempDir(), "artifacts");
  std::filesystem::create_directories(dir);
  std::ostringstream log;
  SweepOptions options;
  options.seeds = 1;
  options.first_seed = failing;
  options.simulation = DemoSimulationOptions({});
  options.report_to_gtest = false;
  options.log = &log;
  options.record_schedules = false;
  const std::map<std::string, std::string> env = {{"DSIM_SCHEDULE_DIR", dir}};
  options.env = [env](absl::string_view name) -> std::optional<std::string> {
    auto it = env.find(std::string(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  const SweepResult swept = SeedSweep(options).Run([](Simulation& sim) {
    return RunDemoScenario(sim, {.bug = true}).status;
  });
  ASSERT_EQ(swept.failed_seeds.size(), 1u) << log.str();
  // The report names the page, saved where the harness saves every failing seed's
  // files, under the seed's file stem.
  const std::string marker = "  linearizability.html: ";
  const size_t at = log.str().find(marker);
  ASSERT_NE(at, std::string::npos) << log.str();
  const size_t begin = at + marker.size();
  const std::string page = log.str().substr(begin, log.str().find('\n', begin) - begin);
  EXPECT_TRUE(absl::StartsWith(page, dir + "/")) << page;
  const std::string suffix = absl::StrCat(".seed-", failing, ".linearizability.html");
  ASSERT_TRUE(absl::EndsWith(page, suffix)) << page;
  std::ifstream file(page);
  ASSERT_TRUE(file.good()) << page;
  std::stringstream html;
  html << file.rdbuf();
  EXPECT_TRUE(absl::StrContains(html.str(), "not linearizable"));
  const std::string stem = page.substr(0, page.size() - std::string(".linearizability.html").size());
  EXPECT_TRUE(std::filesystem::exists(stem + ".history.edn")) << stem;
}

// ---- The trace ---------------------------------------------------------------------------

TEST(Demo, TraceOutWritesChromeJsonThatParses) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/demo_trace.json");
  const DemoResult result = RunDemo({.seed = 3, .trace_path = path});
  ASSERT_TRUE(result.status.ok()) << result.status;

  std::ifstream file(path);
  ASSERT_TRUE(file.good()) << path;
  std::stringstream text;
  text << file.rdbuf();
  const std::optional<testing::Json> root = testing::JsonParser(text.str()).Parse();
  ASSERT_TRUE(root.has_value()) << "not JSON: " << path;
  const testing::Json* events = root->Find("traceEvents");
  ASSERT_NE(events, nullptr);
  EXPECT_GT(events->items.size(), 1000u);
  // The faults show up in the trace, not only in the summary.
  EXPECT_TRUE(absl::StrContains(text.str(), "fault.partition"));
  EXPECT_TRUE(absl::StrContains(text.str(), "fault.crash"));
}

TEST(Demo, WritingATraceDoesNotChangeTheRun) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/demo_trace_5.json");
  EXPECT_EQ(RunDemo({.seed = 5, .trace_path = path}).summary, RunDemo({.seed = 5}).summary);
}

}  // namespace
}  // namespace dsim::demo
