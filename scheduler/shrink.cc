#include "scheduler/shrink.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/internal/check.h"
#include "scheduler/random.h"

namespace dsim {
namespace {

// ---- The guided strategy -----------------------------------------------------------

// What to do at one decision of the base schedule.
enum class Edit : uint8_t {
  kFollow,     // The recorded choice, if it still fits.
  kNoPreempt,  // Keep running the current task if it can run.
  kDefault,    // The default policy.
  kZero,       // Value 0.
  kAllOnes,    // The largest value (all-one bits for a 64-bit draw).
};

// How a live decision finds its entry in the base schedule.
enum class Alignment : uint8_t {
  kByIndex,         // Entry i for decision i.
  kByTaskPosition,  // See GuidedStrategy.
};

// Follows a base schedule with edits, and the default policy where it has nothing to say.
//
// Decisions are matched to the base schedule by index, or by a key that survives edits
// elsewhere: (kind, running task, how many decisions of that kind that task has made so
// far). Removing one task's preemption shifts every later decision index, but not the
// positions of other tasks' decisions in their own code, so the rest of the schedule
// still lands where it did. Decisions with no running task (the run loop, timer
// callbacks) share one counter per kind. Neither alignment wins everywhere, so the
// search tries both.
class GuidedStrategy final : public Strategy {
 public:
  GuidedStrategy(const Schedule& base, const std::vector<Edit>& edits, size_t prefix,
                 Alignment alignment, uint64_t seed)
      : alignment_(alignment), tail_rng_(seed) {
    DSIM_CHECK(edits.size() == base.size());
    std::map<std::pair<int, TaskId>, uint64_t> ordinals;
    for (size_t i = 0; i < base.size(); ++i) {
      const ScheduleEntry& e = base[i];
      const Key key = KeyOf(&ordinals, i, e.kind, e.current);
      if (i >= prefix) continue;
      switch (edits[i]) {
        case Edit::kFollow: directives_[key] = e.chosen_id(); break;
        case Edit::kNoPreempt:
        case Edit::kDefault: break;  // No directive: the default policy decides.
        case Edit::kZero: directives_[key] = 0; break;
        case Edit::kAllOnes:
          directives_[key] = e.num_options == 0 ? ~uint64_t{0} : e.num_options - 1;
          break;
      }
    }
  }

  uint64_t Choose(const Decision& d) override {
    const Key key = KeyOf(&ordinals_, d.index, d.kind, d.current);
    const auto it = directives_.find(key);
    if (it == directives_.end()) return Default(d);
    if (d.kind == DecisionKind::kValue) {
      const bool fits = d.num_options == 0 || it->second < d.num_options;
      return fits ? it->second : Default(d);
    }
    const std::optional<size_t> index = IndexOf(d.candidates, it->second);
    return index.has_value() ? *index : Default(d);
  }

  std::string Describe() const override {
    return absl::StrCat("shrink-guided(", directives_.size(), " directives)");
  }

 private:
  using Key = std::tuple<int, TaskId, uint64_t>;

  Key KeyOf(std::map<std::pair<int, TaskId>, uint64_t>* ordinals, uint64_t index,
            DecisionKind kind, TaskId current) const {
    const int k = static_cast<int>(kind);
    if (alignment_ == Alignment::kByIndex) return Key(k, kNoTask, index);
    return Key(k, current, (*ordinals)[{k, current}]++);
  }

  static std::optional<size_t> IndexOf(absl::Span<const uint64_t> ids, uint64_t id) {
    const auto it = std::find(ids.begin(), ids.end(), id);
    if (it == ids.end()) return std::nullopt;
    return static_cast<size_t>(it - ids.begin());
  }

  // The least eventful choice: no preemption, the oldest waiter and timer, value 0.
  uint64_t Default(const Decision& d) {
    switch (d.kind) {
      case DecisionKind::kValue:
        return d.num_options == 0 ? tail_rng_.NextBits() : 0;
      case DecisionKind::kNextTask: {
        const std::optional<size_t> current = IndexOf(d.candidates, d.current);
        if (current.has_value()) return *current;
        return std::min_element(d.candidates.begin(), d.candidates.end()) - d.candidates.begin();
      }
      case DecisionKind::kWakeOne:
        return 0;  // Waiters come oldest first.
      case DecisionKind::kTimerOrder:
        return std::min_element(d.candidates.begin(), d.candidates.end()) - d.candidates.begin();
    }
    return 0;
  }

  // Ordered containers: looked up only, but cheap and never hashed on addresses.
  std::map<Key, uint64_t> directives_;
  std::map<std::pair<int, TaskId>, uint64_t> ordinals_;
  Alignment alignment_;
  Random tail_rng_;
};

// ---- Costs -------------------------------------------------------------------------

// Counts the faults models report (Annotation categories starting with "fault").
class FaultCounter final : public SchedulerListener {
 public:
  void OnAnnotation(const Annotation& annotation) override {
    if (absl::StartsWith(annotation.category, "fault")) ++faults_;
  }
  uint64_t faults() const { return faults_; }

 private:
  uint64_t faults_ = 0;
};

struct Candidate {
  Schedule schedule;
  uint64_t faults = 0;  // Applied faults: the annotated ones.

  // Lexicographic: what shrinking reduces, most important first.
  auto Cost() const {
    const ScheduleStats s = schedule.Stats();
    return std::make_tuple(s.preemptions, faults, s.context_switches, s.last_step, s.decisions,
                           s.nonzero_values);
  }
};

// ---- The search --------------------------------------------------------------------

class Shrinker {
 public:
  Shrinker(const FailingRun& still_fails, const ShrinkOptions& options)
      : still_fails_(still_fails), options_(options) {}

  absl::StatusOr<ShrinkResult> Run(const Schedule& failing) {
    std::optional<Candidate> first =
        Try(failing, std::vector<Edit>(failing.size(), Edit::kFollow), failing.size());
    if (!first.has_value()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the failing schedule (", failing.size(),
                       " decisions) does not fail when replayed; nothing to shrink"));
    }
    ShrinkResult result;
    result.original = first->schedule;
    result.before = first->schedule.Stats();
    result.faults_before = first->faults;
    base_ = *std::move(first);
    bool improved = true;
    while (improved && BudgetLeft()) {
      improved = false;
      improved |= Truncate();
      improved |= EditSites(&Shrinker::Preemptions, Edit::kNoPreempt);
      improved |= EditSites(&Shrinker::FreeChoices, Edit::kDefault);
      improved |= EditSites(&Shrinker::BoundedValues, Edit::kZero);
      improved |= EditSites(&Shrinker::WideValues, Edit::kZero);
      improved |= EditSites(&Shrinker::WideValues, Edit::kAllOnes);
    }
    result.shrunk = base_.schedule;
    result.after = base_.schedule.Stats();
    result.faults_after = base_.faults;
    result.runs = runs_;
    result.stopped = stopped_;
    absl::StatusOr<std::string> interleaving = DescribeInterleaving(result.shrunk, still_fails_);
    result.interleaving = interleaving.ok() ? *std::move(interleaving)
                                            : std::string(interleaving.status().message());
    return result;
  }

 private:
  bool BudgetLeft() {
    if (stopped_ || runs_ >= options_.max_runs) return false;
    // The first run, which reproduces the failure, always runs: without it there is
    // no result at all.
    if (runs_ > 0 && options_.should_stop != nullptr && options_.should_stop(runs_)) {
      stopped_ = true;
    }
    return !stopped_;
  }

  // Runs the program under `base` with `edits` and `prefix`; the re-recorded schedule if
  // it still fails.
  std::optional<Candidate> Try(const Schedule& base, const std::vector<Edit>& edits,
                               size_t prefix, Alignment alignment = Alignment::kByIndex) {
    if (!BudgetLeft()) return std::nullopt;
    ++runs_;
    auto guided =
        std::make_shared<GuidedStrategy>(base, edits, prefix, alignment, options_.tail_seed);
    auto recorder = std::make_shared<RecordingStrategy>(guided, base.seed());
    FaultCounter counter;
    if (!still_fails_(recorder, &counter)) return std::nullopt;
    Candidate candidate{recorder->TakeSchedule(), 0};
    candidate.faults = counter.faults();
    return candidate;
  }

  bool Accept(std::optional<Candidate> candidate) {
    if (!candidate.has_value() || !(candidate->Cost() < base_.Cost())) return false;
    base_ = *std::move(candidate);
    if (options_.on_improvement != nullptr) {
      options_.on_improvement(base_.schedule, base_.faults, runs_);
    }
    return true;
  }

  // Pass 1: the shortest prefix that still fails, by binary search. Failure need not be
  // monotone in the prefix; the search still returns some failing prefix.
  bool Truncate() {
    const Schedule base = base_.schedule;
    const std::vector<Edit> follow(base.size(), Edit::kFollow);
    size_t lo = 0;
    size_t hi = base.size();
    std::optional<Candidate> best;
    while (lo < hi && BudgetLeft()) {
      const size_t mid = lo + (hi - lo) / 2;
      std::optional<Candidate> candidate = Try(base, follow, mid);
      if (candidate.has_value() && !(base_.Cost() < candidate->Cost())) {
        hi = mid;
        best = std::move(candidate);
      } else {
        lo = mid + 1;
      }
    }
    return Accept(std::move(best));
  }

  // Passes 2-4: delta debugging over the sites a selector picks in the base schedule.
  // Edits all sites at once, then each half and each half's complement, then quarters
  // ... down to single sites, under both alignments. Restarts on the new base after
  // every accepted candidate.
  bool EditSites(std::vector<size_t> (Shrinker::*select)() const, Edit edit) {
    bool improved = false;
    std::vector<size_t> sites = (this->*select)();
    size_t chunk = sites.size();
    while (chunk >= 1 && !sites.empty() && BudgetLeft()) {
      if (TryChunks(sites, chunk, edit)) {
        improved = true;
        sites = (this->*select)();
        chunk = std::min(chunk, sites.size());
      } else {
        chunk = chunk == 1 ? 0 : (chunk + 1) / 2;
      }
    }
    return improved;
  }

  // Tries each chunk of `sites`, and each chunk's complement; true once one is accepted.
  bool TryChunks(const std::vector<size_t>& sites, size_t chunk, Edit edit) {
    const bool complements = chunk < sites.size() && 2 * chunk < sites.size() + chunk;
    for (size_t start = 0; start < sites.size() && BudgetLeft(); start += chunk) {
      const size_t end = std::min(sites.size(), start + chunk);
      for (const bool complement : {false, true}) {
        if (complement && !complements) continue;
        const Schedule base = base_.schedule;
        std::vector<Edit> edits(base.size(), Edit::kFollow);
        for (size_t i = 0; i < sites.size(); ++i) {
          const bool in_chunk = i >= start && i < end;
          if (in_chunk != complement) edits[sites[i]] = edit;
        }
        for (const Alignment alignment : {Alignment::kByIndex, Alignment::kByTaskPosition}) {
          if (Accept(Try(base, edits, base.size(), alignment))) return true;
        }
      }
    }
    return false;
  }

  template <typename Predicate>
  std::vector<size_t> Select(Predicate keep) const {
    std::vector<size_t> sites;
    const auto& entries = base_.schedule.entries();
    for (size_t i = 0; i < entries.size(); ++i) {
      if (keep(entries[i])) sites.push_back(i);
    }
    return sites;
  }

  std::vector<size_t> Preemptions() const {
    return Select([](const ScheduleEntry& e) { return e.is_preemption(); });
  }

  // Non-preemptive choices that differ from the default (the lowest id) and wakes or
  // timer orders other than the oldest.
  std::vector<size_t> FreeChoices() const {
    return Select([](const ScheduleEntry& e) {
      if (e.kind == DecisionKind::kValue || e.is_preemption()) return false;
      if (e.kind == DecisionKind::kWakeOne) return e.chosen != 0;
      const uint64_t lowest = *std::min_element(e.candidates.begin(), e.candidates.end());
      if (e.kind == DecisionKind::kNextTask) {
        const bool current_runnable = std::find(e.candidates.begin(), e.candidates.end(),
                                                e.current) != e.candidates.end();
        if (current_runnable) return false;  // Keeping the current task: already default.
      }
      return e.chosen_id() != lowest;
    });
  }

  std::vector<size_t> BoundedValues() const {
    return Select([](const ScheduleEntry& e) {
      return e.kind == DecisionKind::kValue && e.num_options != 0 && e.chosen != 0;
    });
  }

  std::vector<size_t> WideValues() const {
    return Select([](const ScheduleEntry& e) {
      return e.kind == DecisionKind::kValue && e.num_options == 0;
    });
  }

  const FailingRun& still_fails_;
  ShrinkOptions options_;
  Candidate base_;
  int runs_ = 0;
  bool stopped_ = false;
};

// ---- The readable interleaving -----------------------------------------------------

// Collects a run as segments: one task running between two context switches.
class InterleavingWriter final : public SchedulerListener {
 public:
  void OnSpawn(const TaskView& task) override { names_[task.id] = std::string(task.name); }

  void OnDecision(const Decision& d, uint64_t chosen) override {
    if (d.kind == DecisionKind::kNextTask) {
      const bool current_runnable =
          std::find(d.candidates.begin(), d.candidates.end(), d.current) != d.candidates.end();
      if (current_runnable && d.candidates[chosen] != d.current) pending_preemption_ = true;
      return;
    }
    if (d.kind == DecisionKind::kValue && absl::string_view(d.label) != "random") {
      Event(absl::StrCat("value ", d.label, " = ", chosen));
    } else if (d.kind == DecisionKind::kWakeOne) {
      Event(absl::StrCat("wakes ", Name(d.candidates[chosen]), " of ", d.candidates.size(),
                         " waiters"));
    }
  }

  void OnDispatch(const TaskView& task) override {
    ++steps_;
    if (segment_open_ && task.id == running_) {
      ++segment_steps_;
      pending_preemption_ = false;
      return;
    }
    if (segment_open_) {
      Close(pending_preemption_ ? "** preempted **" : "switched out");
    }
    if (pending_preemption_) ++preemptions_;
    pending_preemption_ = false;
    if (segment_open_ || segments_ > 0) ++switches_;
    running_ = task.id;
    segment_open_ = true;
    segment_steps_ = 1;
    current_.clear();
    ++segments_;
    absl::StrAppend(&current_, segments_, ". ", time_, " ", Name(task.id), " runs");
  }

  void OnBlock(const TaskView& task, const char* what, SourceLocation where) override {
    if (segment_open_ && task.id == running_) {
      Close(absl::StrCat("blocks in ", what, " at ", where.ToString()));
    }
  }

  void OnFinish(const TaskView& task) override {
    if (segment_open_ && task.id == running_) Close("finishes");
  }

  void OnWake(const TaskView& task, WakeReason reason) override {
    if (reason == WakeReason::kTimedOut) {
      Event(absl::StrCat(Name(task.id), " wakes at its deadline"));
    }
  }

  void OnClockAdvanced(absl::Time from, absl::Time to) override {
    time_ = absl::StrCat("[+", absl::FormatDuration(to - Scheduler::Epoch()), "]");
  }

  void OnAnnotation(const Annotation& a) override {
    if (a.category == "sched.access") {
      Event(std::string(a.detail));
    } else {
      Event(absl::StrCat(a.category, ": ", a.detail));
    }
  }

  std::string Finish() {
    if (segment_open_) Close("run ends here");
    std::string header = absl::StrCat("interleaving: ", names_.size(), " tasks, ", steps_,
                                      " steps, ", segments_, " segments, ", switches_,
                                      " context switches, ", preemptions_, " preemptions\n");
    return header + absl::StrJoin(lines_, "\n") + "\n";
  }

 private:
  static constexpr size_t kMaxEventsPerSegment = 8;

  std::string Name(TaskId id) const {
    const auto it = names_.find(id);
    return absl::StrCat("\"", it == names_.end() ? "?" : it->second, "\"#", id);
  }

  void Event(std::string text) {
    if (!segment_open_) {
      lines_.push_back(absl::StrCat("   ", time_, " ", text));
      return;
    }
    ++segment_events_;
    if (segment_events_ <= kMaxEventsPerSegment) {
      absl::StrAppend(&current_, segment_events_ == 1 ? ": " : ", ", text);
    } else if (segment_events_ == kMaxEventsPerSegment + 1) {
      absl::StrAppend(&current_, ", ...");
    }
  }

  void Close(absl::string_view how) {
    absl::StrAppend(&current_, " (", segment_steps_, segment_steps_ == 1 ? " step" : " steps",
                    "); ", how);
    lines_.push_back(std::move(current_));
    current_.clear();
    segment_open_ = false;
    segment_events_ = 0;
  }

  // Task names by id. A map ordered by id: printed order never depends on hashing.
  std::map<TaskId, std::string> names_;
  std::vector<std::string> lines_;
  std::string current_;
  std::string time_ = "[+0]";
  TaskId running_ = kNoTask;
  bool segment_open_ = false;
  bool pending_preemption_ = false;
  uint64_t segment_steps_ = 0;
  size_t segment_events_ = 0;
  uint64_t segments_ = 0;
  uint64_t steps_ = 0;
  uint64_t preemptions_ = 0;
  uint64_t switches_ = 0;
};

}  // namespace

absl::StatusOr<ShrinkResult> ShrinkSchedule(const Schedule& failing, const FailingRun& still_fails,
                                            const ShrinkOptions& options) {
  DSIM_MISUSE(still_fails != nullptr, "ShrinkSchedule needs a program to run");
  DSIM_MISUSE(options.max_runs >= 1, "ShrinkSchedule needs a run budget of at least 1");
  Shrinker shrinker(still_fails, options);
  return shrinker.Run(failing);
}

absl::StatusOr<std::string> DescribeInterleaving(const Schedule& schedule, const FailingRun& run) {
  auto replay = std::make_shared<ReplayStrategy>(schedule);
  InterleavingWriter writer;
  run(replay, &writer);
  if (!replay->status().ok()) return replay->status();
  return writer.Finish();
}

}  // namespace dsim
