#include "sim/guided_search.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/internal/check.h"

namespace dsim {
namespace {

// Replays a prefix of a recorded schedule while the program still asks the same
// decisions, then decides like RandomStrategy(seed).
class PrefixStrategy final : public Strategy {
 public:
  PrefixStrategy(std::shared_ptr<const Schedule> prefix, size_t length, uint64_t seed)
      : prefix_(std::move(prefix)), length_(length), fresh_(seed), seed_(seed) {}

  uint64_t Choose(const Decision& d) override {
    if (d.index < length_ && !diverged_) {
      const ScheduleEntry& e = (*prefix_)[d.index];
      if (std::optional<uint64_t> choice = Fits(e, d); choice.has_value()) return *choice;
      diverged_ = true;
    }
    return fresh_.Choose(d);
  }
  std::string Describe() const override {
    return absl::StrCat("guided(prefix=", length_, ",seed=", seed_, ")");
  }

 private:
  // The recorded choice, if the program asks what was recorded.
  static std::optional<uint64_t> Fits(const ScheduleEntry& e, const Decision& d) {
    if (e.kind != d.kind || e.num_options != d.num_options) return std::nullopt;
    if (d.kind == DecisionKind::kValue) return e.chosen;
    const uint64_t id = e.chosen_id();
    for (size_t i = 0; i < d.candidates.size(); ++i) {
      if (d.candidates[i] == id) return i;
    }
    return std::nullopt;
  }

  std::shared_ptr<const Schedule> prefix_;
  size_t length_;
  RandomStrategy fresh_;
  uint64_t seed_;
  bool diverged_ = false;
};

// "combo fired buggify x + fault.drop": the set of BUGGIFY sites fired and fault kinds
// applied in one run, as one key.
std::string ComboKey(const RunCoverage& coverage) {
  std::vector<std::string> parts;
  for (const std::string& k : coverage.buggify_fired) parts.push_back(k);
  for (const std::string& k : coverage.faults) parts.push_back(k);
  if (parts.size() < 2) return "";
  return absl::StrCat("combo ", absl::StrJoin(parts, " + "));
}

}  // namespace

struct GuidedSearch::Entry {
  std::shared_ptr<const Schedule> schedule;
  // The keys it was kept for, and the decision count when it first reached each.
  std::vector<std::pair<std::string, uint64_t>> keys;
  // Runs branched from it so far: an entry whose branches keep finding nothing new
  // loses priority (its state may be a dead end, e.g. too late in the run).
  uint64_t branches = 0;
};

struct GuidedSearch::Plan {
  uint64_t fresh_seed = 0;
  std::shared_ptr<const Schedule> prefix;  // Null: a plain run.
  size_t prefix_length = 0;
  std::string branch_key;
};

GuidedSearch::GuidedSearch(GuidedSearchOptions options)
    : options_(std::move(options)), rng_(options_.sweep_seed) {
  DSIM_MISUSE(options_.branch_fraction >= 0 && options_.branch_fraction <= 1 &&
                  options_.rare_fraction >= 0 && options_.rare_fraction <= 1,
              "GuidedSearchOptions fractions must lie in [0, 1]");
  DSIM_MISUSE(options_.corpus_max > 0, "GuidedSearchOptions::corpus_max must be positive");
}

uint64_t GuidedSearch::Rarity(const Entry& entry) const {
  uint64_t rarest = std::numeric_limits<uint64_t>::max();
  for (const auto& [key, decision] : entry.keys) {
    auto it = hits_.find(key);
    rarest = std::min(rarest, it == hits_.end() ? 0 : it->second);
  }
  return rarest;
}

// A tournament of three: the entry whose rarest key is rarest, counting the branches
// already taken from it (earliest on ties).
size_t GuidedSearch::PickEntry() {
  auto score = [&](size_t i) { return Rarity(*corpus_[i]) + 4 * corpus_[i]->branches; };
  size_t best = rng_.Below(corpus_.size());
  for (int i = 0; i < 2; ++i) {
    const size_t other = rng_.Below(corpus_.size());
    if (score(other) < score(best)) best = other;
  }
  return best;
}

GuidedSearch::Plan GuidedSearch::NextPlan() {
  Plan plan;
  plan.fresh_seed = rng_.NextBits();
  const bool branch = runs_done_ >= options_.warmup_runs && !corpus_.empty() &&
                      rng_.Bernoulli(options_.branch_fraction);
  if (!branch) return plan;
  Entry& entry = *corpus_[PickEntry()];
  ++entry.branches;
  // Branch after one of its keys: the rarest, or now and then another one.
  size_t pick = 0;
  for (size_t i = 1; i < entry.keys.size(); ++i) {
    const uint64_t a = hits_[entry.keys[i].first], b = hits_[entry.keys[pick].first];
    if (a < b) pick = i;
  }
  if (entry.keys.size() > 1 && rng_.Below(4) == 0) pick = rng_.Below(entry.keys.size());
  const auto& [key, decision] = entry.keys[pick];
  plan.prefix = entry.schedule;
  plan.branch_key = key;
  const size_t total = entry.schedule->size();
  plan.prefix_length = std::min<size_t>(decision, total);
  switch (rng_.Below(4)) {
    case 0:  // Keep more of the run after the key than the moment it was reached.
      plan.prefix_length += rng_.Below(total - plan.prefix_length + 1);
      break;
    case 1:  // Or less: the key again, reached another way, or an earlier state.
      plan.prefix_length = rng_.Below(plan.prefix_length + 1);
      break;
    default:  // Right after the key.
      break;
  }
  return plan;
}

GuidedRunPlan GuidedSearch::Next() {
  Plan plan = NextPlan();
  GuidedRunPlan run{.index = runs_done_ + 1,
                    .fresh_seed = plan.fresh_seed,
                    .branched = plan.prefix != nullptr,
                    .prefix = plan.prefix_length,
                    .branch_key = plan.branch_key};
  run.strategy = plan.prefix != nullptr
                     ? std::static_pointer_cast<Strategy>(std::make_shared<PrefixStrategy>(
                           plan.prefix, plan.prefix_length, plan.fresh_seed))
                     : std::static_pointer_cast<Strategy>(
                           std::make_shared<RandomStrategy>(plan.fresh_seed));
  return run;
}

void GuidedSearch::Learn(const RunCoverage& coverage, Schedule schedule) {
  ++runs_done_;  // Runs so far, this one included.
  const double rare_hits = options_.rare_fraction * static_cast<double>(runs_done_);
  auto entry = std::make_shared<Entry>();
  std::vector<std::string> keys = coverage.AllKeys();
  const std::string combo = ComboKey(coverage);
  if (!combo.empty()) keys.push_back(combo);
  for (const std::string& key : keys) {
    uint64_t& hits = hits_[key];
    const bool rare = hits == 0 || static_cast<double>(hits) <= rare_hits;
    ++hits;
    if (!rare) continue;
    uint64_t decision = 0;
    if (key == combo) {
      for (const auto& [k, d] : coverage.first_hit_decision) decision = std::max(decision, d);
    } else if (auto it = coverage.first_hit_decision.find(key); it != coverage.first_hit_decision.end()) {
      decision = it->second;
    } else {
      decision = schedule.size();
    }
    entry->keys.emplace_back(key, decision);
  }
  if (entry->keys.empty()) return;
  entry->schedule = std::make_shared<const Schedule>(std::move(schedule));
  if (corpus_.size() < options_.corpus_max) {
    corpus_.push_back(std::move(entry));
    return;
  }
  // Full: replace the entry whose rarest key has become the most common.
  size_t worst = 0;
  for (size_t i = 1; i < corpus_.size(); ++i) {
    if (Rarity(*corpus_[i]) > Rarity(*corpus_[worst])) worst = i;
  }
  corpus_[worst] = std::move(entry);
}

GuidedSearchResult GuidedSearch::Run(const Body& body) {
  DSIM_MISUSE(body != nullptr, "GuidedSearch::Run with an empty body");
  GuidedSearchResult result;
  for (uint64_t index = 1; index <= options_.budget_runs; ++index) {
    GuidedRunPlan plan = Next();
    auto recorder = std::make_shared<RecordingStrategy>(plan.strategy, plan.fresh_seed);
    SimulationOptions options = options_.simulation;
    options.seed = plan.fresh_seed;
    options.strategy_object = recorder;
    GuidedRun run{.index = index,
                  .fresh_seed = plan.fresh_seed,
                  .branched = plan.branched,
                  .prefix = plan.prefix,
                  .branch_key = plan.branch_key};
    RunCoverage coverage;
    {
      Simulation sim(options);
      try {
        run.status = body(sim);
      } catch (const std::exception& e) {
        run.status = absl::InternalError(absl::StrCat("the body threw: ", e.what()));
      }
      if (run.status.ok() && options_.fail_on_failed_run && sim.first_failed_run().has_value()) {
        run.status = sim.first_failed_run()->status();
      }
      coverage = sim.coverage().Summary();
    }
    result.coverage.Add(coverage);
    Schedule schedule = recorder->TakeSchedule();
    const bool failed = !run.status.ok();
    if (failed && !result.failure.has_value()) {
      result.failure = GuidedFailure{.run = index, .status = run.status, .schedule = schedule};
    }
    Learn(coverage, std::move(schedule));
    result.runs.push_back(std::move(run));
    if (failed && options_.stop_at_failure) break;
  }
  result.corpus_size = corpus_.size();
  return result;
}

}  // namespace dsim
