// The race corpus: every bug is findable within a small budget, and no fixed twin ever
// fails, under any strategy.
//
// The default run keeps budgets small (seconds). The "manual" target race_corpus_sweep
// reruns the same checks with --schedules=10000 per strategy and variant.
#include <cstdlib>
#include <memory>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "scheduler/strategies.h"
#include "tests/races/race_corpus.h"

namespace dsim::races {
namespace {

// Under ThreadSanitizer every fiber costs about 1.2 MiB of trace mappings, so every
// simulation is an order of magnitude slower: the default budgets shrink to fit the
// target's size (every bug is still found within a few dozen schedules, see
// //bench:race_finding). An explicit RACE_CORPUS_SCHEDULES is kept as given.
#if defined(__SANITIZE_THREAD__)
constexpr int kSanitizerDivisor = 5;
#else
constexpr int kSanitizerDivisor = 1;
#endif

int Schedules(int default_count) {
  const char* env = std::getenv("RACE_CORPUS_SCHEDULES");
  return env != nullptr ? std::atoi(env) : default_count / kSanitizerDivisor;
}

const char* const kSpecs[] = {"random", "roundrobin", "pct:1", "pct:2", "pct:3"};

// Schedule i of a spec: random walks get seed i; one PCT object serves every schedule
// (it learns k); round-robin is the same every time.
class SpecRunner {
 public:
  explicit SpecRunner(const std::string& spec) : spec_(spec) {}
  std::shared_ptr<Strategy> Next(int i) {
    if (spec_ == "random") return std::make_shared<RandomStrategy>(i + 1);
    if (shared_ == nullptr) shared_ = *MakeStrategy(spec_, 1);
    return shared_;
  }

 private:
  std::string spec_;
  std::shared_ptr<Strategy> shared_;
};

TEST(RaceCorpus, CoversAtLeastFourteenPatternsWithUniqueNames) {
  std::set<std::string> names;
  std::set<std::string> patterns;
  for (const RaceProgram& program : Corpus()) {
    names.insert(program.name);
    patterns.insert(program.pattern);
    EXPECT_GE(program.tasks, 2) << program.name;
    EXPECT_EQ(FindProgram(program.name), &program);
  }
  EXPECT_EQ(names.size(), Corpus().size());
  EXPECT_GE(patterns.size(), 14u);
  EXPECT_EQ(FindProgram("no such program"), nullptr);
}

TEST(RaceCorpus, EveryBugIsFoundByPctWithinTheBudget) {
  const int budget = Schedules(1000);
  for (const RaceProgram& program : Corpus()) {
    bool found = false;
    for (const char* spec : {"pct:1", "pct:2", "pct:3"}) {
      SpecRunner runner(spec);
      for (int i = 0; i < budget && !found; ++i) {
        found = program.run(Variant::kBuggy, RaceRunOptions{runner.Next(i)}).bug;
      }
    }
    EXPECT_TRUE(found) << program.name << " not found by PCT d<=3 in " << budget;
  }
}

TEST(RaceCorpus, EveryBugIsFoundByRandomWalkWithinTheBudget) {
  const int budget = Schedules(1000);
  for (const RaceProgram& program : Corpus()) {
    bool found = false;
    SpecRunner runner("random");
    for (int i = 0; i < budget && !found; ++i) {
      found = program.run(Variant::kBuggy, RaceRunOptions{runner.Next(i)}).bug;
    }
    EXPECT_TRUE(found) << program.name;
  }
}

TEST(RaceCorpus, FixedTwinsNeverFailUnderAnyStrategy) {
  const int budget = Schedules(300);
  for (const RaceProgram& program : Corpus()) {
    for (const char* spec : kSpecs) {
      SpecRunner runner(spec);
      for (int i = 0; i < budget; ++i) {
        const RaceOutcome outcome = program.run(Variant::kFixed, RaceRunOptions{runner.Next(i)});
        ASSERT_FALSE(outcome.bug) << program.name << " (fixed) failed under " << spec
                                  << ", schedule " << i << ": " << outcome.Signature();
      }
    }
  }
}

TEST(RaceCorpus, SignatureNamesTheFailureWithoutRunDetails) {
  RaceOutcome deadlock;
  deadlock.bug = true;
  deadlock.result.outcome = RunOutcome::kDeadlock;
  deadlock.result.steps = 17;
  EXPECT_EQ(deadlock.Signature(), "deadlock");
  RaceOutcome assertion;
  assertion.result.outcome = RunOutcome::kTaskFailed;
  assertion.result.failure = "pop from an empty stack";
  EXPECT_EQ(assertion.Signature(), "task failed: pop from an empty stack");
  RaceOutcome final_check;
  final_check.final_check_failure = "lost update";
  EXPECT_EQ(final_check.Signature(), "final check: lost update");
  EXPECT_EQ(RaceOutcome().Signature(), "");
}

}  // namespace
}  // namespace dsim::races
