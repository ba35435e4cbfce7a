#include "scheduler/strategies.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "scheduler/internal/check.h"
#include "scheduler/schedule.h"

namespace dsim {
namespace {

// Initial priorities live above this; lowered ones are 1..d-1, below every initial one.
constexpr uint64_t kInitialPriorityBase = uint64_t{1} << 40;

constexpr absl::string_view kValidSpecs =
    "valid: random, roundrobin, pct, pct:<d>, pct:<d>:k=<steps>, replay:<path>, guided:<path>";

absl::Status BadSpec(absl::string_view spec, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("bad strategy spec \"", spec, "\": ", why, "; ", kValidSpecs));
}

// "pct", "pct:<d>", "pct:<d>:k=<steps>".
absl::StatusOr<PctOptions> ParsePct(absl::string_view spec) {
  PctOptions options;
  std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  DSIM_CHECK(!parts.empty() && parts[0] == "pct");
  if (parts.size() > 3) return BadSpec(spec, "too many fields");
  if (parts.size() >= 2 &&
      (!absl::SimpleAtoi(parts[1], &options.depth) || options.depth < 1 ||
       options.depth > PctOptions::kMaxDepth)) {
    return BadSpec(spec, absl::StrCat("depth must be 1..", PctOptions::kMaxDepth));
  }
  if (parts.size() == 3) {
    absl::string_view k = parts[2];
    if (!absl::ConsumePrefix(&k, "k=") || !absl::SimpleAtoi(k, &options.steps) ||
        options.steps == 0) {
      return BadSpec(spec, "expected k=<positive step count>");
    }
  }
  return options;
}

}  // namespace

// ---- RoundRobinStrategy ----------------------------------------------------------

uint64_t RoundRobinStrategy::Choose(const Decision& decision) {
  switch (decision.kind) {
    case DecisionKind::kValue:
      return decision.num_options == 0 ? rng_.NextBits() : rng_.Below(decision.num_options);
    case DecisionKind::kWakeOne:
    case DecisionKind::kTimerOrder: {
      // Oldest first: the smallest identity.
      const auto& c = decision.candidates;
      return std::min_element(c.begin(), c.end()) - c.begin();
    }
    case DecisionKind::kNextTask: {
      // The smallest id above the last one run, else the smallest id (wrap around).
      const auto& c = decision.candidates;
      size_t best = c.size();
      size_t smallest = 0;
      for (size_t i = 0; i < c.size(); ++i) {
        if (c[i] < c[smallest]) smallest = i;
        if (c[i] > last_ && (best == c.size() || c[i] < c[best])) best = i;
      }
      const size_t pick = best == c.size() ? smallest : best;
      last_ = c[pick];
      return pick;
    }
  }
  return 0;
}

std::string RoundRobinStrategy::Describe() const {
  return absl::StrCat("roundrobin(seed=", seed_, ")");
}

// ---- PctStrategy -----------------------------------------------------------------

PctStrategy::PctStrategy(uint64_t seed, PctOptions options)
    : seed_(seed), options_(options), rng_(seed) {
  DSIM_MISUSE(options.depth >= 1 && options.depth <= PctOptions::kMaxDepth,
              "PctStrategy depth must be 1..", PctOptions::kMaxDepth, ", got ", options.depth);
}

void PctStrategy::SetCalibratedSteps(uint64_t steps) {
  if (options_.steps != 0 || steps == 0) return;  // A k given in the spec wins.
  options_.steps = steps;
  calibrated_ = true;
}

void PctStrategy::OnYield(TaskId task) {
  if (!started_) return;  // Before the simulation's first decision: nothing to lower yet.
  PriorityOf(task) = yield_floor_--;
}

uint64_t PctStrategy::steps_estimate() const {
  if (options_.steps != 0) return options_.steps;
  return learned_steps_ != 0 ? learned_steps_ : PctOptions::kDefaultSteps;
}

void PctStrategy::StartSimulation() {
  started_ = true;
  choice_points_ = 0;
  last_chosen_ = kNoTask;
  priorities_.clear();
  change_points_.clear();
  // Below every initial priority, above the d-1 change-point priorities.
  yield_floor_ = kInitialPriorityBase - 1;
  run_steps_estimate_ = steps_estimate();
  // d-1 distinct points in [1, k], in draw order: the i-th drawn lowers to priority i+1.
  // The paper's assignment; with fewer than d-1 points available, every point is one.
  const uint64_t wanted =
      std::min<uint64_t>(static_cast<uint64_t>(options_.depth - 1), run_steps_estimate_);
  while (change_points_.size() < wanted) {
    const uint64_t point = 1 + rng_.Below(run_steps_estimate_);
    if (std::find(change_points_.begin(), change_points_.end(), point) == change_points_.end()) {
      change_points_.push_back(point);
    }
  }
}

uint64_t& PctStrategy::PriorityOf(TaskId task) {
  if (task >= priorities_.size()) priorities_.resize(task + 1, 0);
  uint64_t& priority = priorities_[task];
  // First sight: a uniform random key gives a uniformly random order among the tasks
  // seen so far, which is the paper's random permutation built up one task at a time.
  // Equal keys (probability ~2^-40 per pair) fall back to the lower id.
  if (priority == 0) priority = kInitialPriorityBase + (rng_.NextBits() >> 24);
  return priority;
}

size_t PctStrategy::HighestPriority(absl::Span<const uint64_t> candidates) {
  size_t best = 0;
  uint64_t best_priority = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const uint64_t priority = PriorityOf(candidates[i]);
    if (priority > best_priority ||
        (priority == best_priority && candidates[i] < candidates[best])) {
      best = i;
      best_priority = priority;
    }
  }
  return best;
}

uint64_t PctStrategy::Choose(const Decision& decision) {
  if (!started_ || decision.index <= last_index_) StartSimulation();
  last_index_ = decision.index;
  switch (decision.kind) {
    case DecisionKind::kValue:
      return decision.num_options == 0 ? rng_.NextBits() : rng_.Below(decision.num_options);
    case DecisionKind::kTimerOrder:
      return rng_.Below(decision.num_options);
    case DecisionKind::kWakeOne:
      return HighestPriority(decision.candidates);
    case DecisionKind::kNextTask:
      break;
  }
  ++choice_points_;
  if (decision.current != kNoTask) PriorityOf(decision.current);
  const auto point =
      std::find(change_points_.begin(), change_points_.end(), choice_points_);
  if (point != change_points_.end()) {
    // The task that just ran drops below everything. From the run loop (no current
    // task), the task that ran last stands in for it.
    const TaskId lowered = decision.current != kNoTask ? decision.current : last_chosen_;
    if (lowered != kNoTask) PriorityOf(lowered) = 1 + (point - change_points_.begin());
  }
  const size_t pick = HighestPriority(decision.candidates);
  last_chosen_ = decision.candidates[pick];
  DSIM_DCHECK(pick < decision.num_options);
  return pick;
}

void PctStrategy::OnRunEnd(uint64_t steps) {
  // RunFor in a loop ends several runs per simulation: choice_points_ accumulates.
  learned_steps_ = std::max(learned_steps_, choice_points_);
}

std::string PctStrategy::Describe() const {
  return absl::StrCat("pct(d=", options_.depth, ",k=", steps_estimate(),
                      calibrated_ ? ",calibrated" : options_.steps == 0 ? ",learned" : "",
                      ",seed=", seed_, ")");
}

uint64_t CalibratePctSteps(int depth, int runs,
                           const std::function<void(std::shared_ptr<Strategy>, uint64_t seed)>&
                               run_one) {
  uint64_t steps = 0;
  for (int i = 1; i <= runs; ++i) {
    auto pct = std::make_shared<PctStrategy>(i, PctOptions{.depth = depth});
    run_one(pct, i);
    steps = std::max(steps, pct->learned_steps());
  }
  return steps;
}

// ---- Factory ---------------------------------------------------------------------

absl::StatusOr<std::shared_ptr<Strategy>> MakeStrategy(absl::string_view spec, uint64_t seed) {
  if (spec.empty() || spec == "random") return std::make_shared<RandomStrategy>(seed);
  if (spec == "roundrobin" || spec == "round-robin") {
    return std::make_shared<RoundRobinStrategy>(seed);
  }
  if (spec == "pct" || absl::StartsWith(spec, "pct:")) {
    absl::StatusOr<PctOptions> options = ParsePct(spec);
    if (!options.ok()) return options.status();
    return std::make_shared<PctStrategy>(seed, *options);
  }
  absl::string_view path = spec;
  if (absl::ConsumePrefix(&path, "replay:")) {
    if (path.empty()) return BadSpec(spec, "replay needs a file path");
    absl::StatusOr<Schedule> schedule = Schedule::Load(std::string(path));
    if (!schedule.ok()) return schedule.status();
    return std::make_shared<ReplayStrategy>(*std::move(schedule));
  }
  if (absl::ConsumePrefix(&path, "guided:")) {
    if (path.empty()) return BadSpec(spec, "guided needs a file path");
    absl::StatusOr<Schedule> schedule = Schedule::Load(std::string(path));
    if (!schedule.ok()) return schedule.status();
    return std::make_shared<GuidedReplayStrategy>(*std::move(schedule),
                                                  std::make_shared<RandomStrategy>(seed));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown strategy \"", spec, "\"; ", kValidSpecs));
}

}  // namespace dsim
