#include "check/linearizability.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace dsim::check {
namespace {

using internal::PartitionSearch;
using internal::SearchConfig;
using internal::SearchStatus;
using Clock = std::chrono::steady_clock;

// The budgets of one check, shared by every search it runs.
class Budget {
 public:
  explicit Budget(const CheckOptions& options) : options_(options) {
    if (options.time_budget != absl::InfiniteDuration()) {
      deadline_ = Clock::now() + absl::ToChronoNanoseconds(options.time_budget);
    }
  }
  bool TimeLeft() const { return !deadline_.has_value() || Clock::now() < *deadline_; }
  // Steps a search that has run `spent` may still take; max for no limit.
  uint64_t StepsLeft(uint64_t spent) const {
    if (options_.max_steps == 0) return std::numeric_limits<uint64_t>::max();
    return spent >= options_.max_steps ? 0 : options_.max_steps - spent;
  }

 private:
  const CheckOptions& options_;
  std::optional<Clock::time_point> deadline_;
};

// Runs one search to its end or to the budget's; kRunning means out of budget.
SearchStatus RunToEnd(PartitionSearch& search, const Budget& budget, uint64_t slice) {
  while (true) {
    const uint64_t left = budget.StepsLeft(search.steps());
    if (left == 0 || !budget.TimeLeft()) return SearchStatus::kRunning;
    const SearchStatus status = search.Run(std::min(left, slice));
    if (status != SearchStatus::kRunning) return status;
  }
}

// A partition: its operations (all of them, for display) and the ones the search sees.
struct Partition {
  std::optional<Value> key;
  std::vector<size_t> ids;
  std::vector<Operation> searched;  // Ok and info operations, history order.
  std::vector<Operation> all;       // Failed ones too: prefixes need them.
  std::unique_ptr<PartitionSearch> search;
  bool done = false;
};

// The prefix of `ops` up to (and including) the event at `cut`: operations invoked
// later are gone, and operations that had not completed by then have unknown outcome
// (even those that fail later: at the cut, nobody knows yet). Failed ones are dropped.
std::vector<Operation> Prefix(const std::vector<Operation>& ops, int64_t cut) {
  std::vector<Operation> prefix;
  for (const Operation& op : ops) {
    if (op.call_position > cut) continue;
    if (op.outcome == Outcome::kFail && op.return_position <= cut) continue;
    Operation copy = op;
    if (copy.return_position > cut) {
      copy.outcome = Outcome::kInfo;
      copy.output = Value();
      copy.return_position = Operation::kNever;
    }
    prefix.push_back(std::move(copy));
  }
  return prefix;
}

// Fills in the failing prefix and a longest partial linearization of a partition found
// not linearizable. Non-linearizability is prefix-monotone (a linearization of a
// history restricts to one of each prefix), so a binary search over the completions
// finds the first one after which no linearization exists.
void Explain(const Model& model, const Partition& partition, const CheckOptions& options,
             const Budget& budget, PartitionResult* result) {
  // Only completions can make a prefix fail: an ok one adds a result to explain, a
  // failed one removes the possibility that it took effect.
  std::vector<int64_t> cuts;
  for (const Operation& op : partition.all) {
    if (op.outcome != Outcome::kInfo) cuts.push_back(op.return_position);
  }
  std::sort(cuts.begin(), cuts.end());
  if (cuts.empty()) return;
  const SearchConfig config{.force_fingerprints = options.force_fingerprints};
  // Invariant: the prefix at cuts[hi] fails; the prefixes at cuts[< lo] were not shown
  // to fail.
  size_t lo = 0;
  size_t hi = cuts.size() - 1;
  size_t depth = 0;  // Of the search that showed cuts[hi] failing; 0: not run yet.
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    std::unique_ptr<PartitionSearch> search =
        model.impl().NewSearch(Prefix(partition.all, cuts[mid]), config);
    const SearchStatus status = RunToEnd(*search, budget, options.slice_steps);
    result->steps += search->steps();
    if (status == SearchStatus::kNotLinearizable) {
      hi = mid;
      depth = search->max_depth();
    } else {
      lo = mid + 1;
    }
  }
  const int64_t cut = cuts[hi];
  const std::vector<Operation> prefix = Prefix(partition.all, cut);
  if (depth == 0) {
    std::unique_ptr<PartitionSearch> search = model.impl().NewSearch(prefix, config);
    if (RunToEnd(*search, budget, options.slice_steps) != SearchStatus::kNotLinearizable) return;
    result->steps += search->steps();
    depth = search->max_depth();
  }
  for (const Operation& op : partition.all) {
    if (op.return_position == cut) result->failing_op = op.id;
  }
  for (const Operation& op : prefix) result->prefix.push_back(op.id);
  if (depth == 0) return;
  SearchConfig stop = config;
  stop.stop_at_depth = depth;
  std::unique_ptr<PartitionSearch> search = model.impl().NewSearch(prefix, stop);
  if (RunToEnd(*search, budget, options.slice_steps) != SearchStatus::kReachedDepth) return;
  result->steps += search->steps();
  result->linearization = search->Linearization();
  result->states = search->StatesAlong();
}

std::string FormatTime(std::optional<int64_t> ns) {
  if (!ns.has_value()) return "";
  return absl::StrFormat("%.3fs", static_cast<double>(*ns) / 1e9);
}

// "process 1 read -> "c1.3" (0.215s to 0.227s)".
std::string DescribeWithTime(const Operation& op) {
  Operation unkeyed = op;
  unkeyed.key.reset();
  std::string out = absl::StrCat("process ", op.process, " ", unkeyed.Describe());
  if (op.call_time_ns.has_value()) {
    absl::StrAppend(&out, " (", FormatTime(op.call_time_ns), " to ",
                    op.return_time_ns.has_value() ? FormatTime(op.return_time_ns) : "?", ")");
  }
  return out;
}

std::string PartitionName(const PartitionResult& partition) {
  return partition.key.has_value() ? absl::StrCat("key ", partition.key->Short()) : "history";
}

}  // namespace

const char* VerdictName(Verdict verdict) {
  switch (verdict) {
    case Verdict::kLinearizable: return "linearizable";
    case Verdict::kNotLinearizable: return "not linearizable";
    case Verdict::kUnknown: return "unknown";
  }
  return "?";
}

CheckResult CheckLinearizability(const History& history, const Model& model,
                                 const CheckOptions& options) {
  const Clock::time_point start = Clock::now();
  const Budget budget(options);
  CheckResult result;
  result.model = model.name();
  absl::StatusOr<std::vector<Operation>> operations = history.Operations();
  if (!operations.ok()) {
    result.error = operations.status();
    return result;
  }
  result.operations = *std::move(operations);
  for (const Operation& op : result.operations) {
    absl::Status valid = model.impl().Validate(op);
    if (!valid.ok()) {
      result.error = absl::InvalidArgumentError(absl::StrCat(
          "event ", op.call_position + 1, " (process ", op.process, "): ", valid.message()));
      return result;
    }
  }

  // Partitions in order of their first operation.
  std::vector<Partition> partitions;
  absl::flat_hash_map<std::string, size_t> by_key;  // Looked up, never iterated.
  for (const Operation& op : result.operations) {
    const std::optional<Value> key = model.impl().PartitionKey(op);
    const std::string name = key.has_value() ? key->ToEdn() : "";
    auto [it, inserted] = by_key.try_emplace(name, partitions.size());
    if (inserted) partitions.push_back(Partition{.key = key});
    Partition& partition = partitions[it->second];
    partition.ids.push_back(op.id);
    if (op.outcome != Outcome::kFail) partition.searched.push_back(op);
    partition.all.push_back(op);
  }
  const SearchConfig config{.force_fingerprints = options.force_fingerprints};
  result.partitions.resize(partitions.size());
  for (size_t i = 0; i < partitions.size(); ++i) {
    partitions[i].search = model.impl().NewSearch(partitions[i].searched, config);
    result.partitions[i].key = partitions[i].key;
    result.partitions[i].operations = partitions[i].ids;
  }

  // Round-robin: every unfinished partition gets a slice per round.
  size_t running = partitions.size();
  while (running > 0 && budget.TimeLeft()) {
    for (size_t i = 0; i < partitions.size(); ++i) {
      Partition& partition = partitions[i];
      if (partition.done) continue;
      const uint64_t left = budget.StepsLeft(partition.search->steps());
      const SearchStatus status =
          left == 0 ? SearchStatus::kRunning
                    : partition.search->Run(std::min(left, options.slice_steps));
      PartitionResult& out = result.partitions[i];
      if (status == SearchStatus::kRunning && left > options.slice_steps) continue;
      partition.done = true;
      --running;
      out.steps = partition.search->steps();
      out.memo_entries = partition.search->memo_entries();
      out.verdict = status == SearchStatus::kLinearizable      ? Verdict::kLinearizable
                    : status == SearchStatus::kNotLinearizable ? Verdict::kNotLinearizable
                                                               : Verdict::kUnknown;
      partition.search.reset();  // Its memo can be large.
      // Explained at once, while the budget lasts: a hard key still searching must not
      // leave a violation found elsewhere without its failing prefix.
      if (out.verdict == Verdict::kNotLinearizable && options.explain) {
        Explain(model, partition, options, budget, &out);
      }
    }
  }
  for (size_t i = 0; i < partitions.size(); ++i) {
    if (!partitions[i].done) result.partitions[i].steps = partitions[i].search->steps();
  }

  bool any_unknown = false;
  bool any_failed = false;
  for (const PartitionResult& out : result.partitions) {
    any_unknown |= out.verdict == Verdict::kUnknown;
    any_failed |= out.verdict == Verdict::kNotLinearizable;
  }
  result.verdict = any_failed    ? Verdict::kNotLinearizable
                   : any_unknown ? Verdict::kUnknown
                                 : Verdict::kLinearizable;
  result.elapsed = absl::FromChrono(Clock::now() - start);
  return result;
}

std::string CheckResult::FirstViolation() const {
  if (!error.ok()) return absl::StrCat("cannot check: ", error.message());
  for (const PartitionResult& partition : partitions) {
    if (partition.verdict != Verdict::kNotLinearizable) continue;
    std::string line = absl::StrCat("not linearizable: ", PartitionName(partition));
    if (!partition.failing_op.has_value()) return line;
    const Operation& op = operations[*partition.failing_op];
    if (op.outcome == Outcome::kFail) {
      // A failure completes the prefix: the operations before it worked only if it
      // had taken effect.
      absl::StrAppend(&line, ": ", DescribeWithTime(op), " failed, but the ",
                      partition.prefix.size(), " operations before it can be linearized only "
                      "if it took effect");
      return line;
    }
    absl::StrAppend(&line, ": ", DescribeWithTime(op), " cannot be linearized after the ",
                    partition.prefix.size() - 1, " operations before it");
    if (!partition.states.empty()) {
      absl::StrAppend(&line, " (a longest linearization has ", partition.linearization.size(),
                      " of them and leaves state ", partition.states.back(), ")");
    }
    return line;
  }
  return VerdictName(verdict);
}

std::string CheckResult::Explain() const {
  if (!error.ok()) return absl::StrCat("cannot check: ", error.message(), "\n");
  std::string out;
  size_t failed = 0;
  size_t unknown = 0;
  for (const PartitionResult& partition : partitions) {
    failed += partition.verdict == Verdict::kNotLinearizable;
    unknown += partition.verdict == Verdict::kUnknown;
  }
  absl::StrAppendFormat(&out, "%d operations, %d partition%s (model %s): %d not linearizable, "
                        "%d unknown, checked in %s\n",
                        operations.size(), partitions.size(), partitions.size() == 1 ? "" : "s",
                        model, failed, unknown, absl::FormatDuration(elapsed));
  for (const PartitionResult& partition : partitions) {
    if (partition.verdict == Verdict::kUnknown) {
      absl::StrAppend(&out, PartitionName(partition), ": unknown (budget ran out after ",
                      partition.steps, " steps)\n");
    }
    if (partition.verdict != Verdict::kNotLinearizable) continue;
    absl::StrAppend(&out, PartitionName(partition), ": not linearizable\n");
    if (!partition.failing_op.has_value()) continue;
    absl::StrAppend(&out, "  smallest failing prefix: ", partition.prefix.size(),
                    " operations, ending when this one completed:\n    ",
                    DescribeWithTime(operations[*partition.failing_op]), "\n");
    absl::StrAppend(&out, "  a longest linearization of that prefix (", partition.linearization.size(),
                    " operations):\n");
    constexpr size_t kShown = 10;  // The page has them all; the text, the last few.
    const size_t first =
        partition.linearization.size() > kShown ? partition.linearization.size() - kShown : 0;
    if (first > 0) absl::StrAppend(&out, "    ... (", first, " more before)\n");
    for (size_t i = first; i < partition.linearization.size(); ++i) {
      absl::StrAppend(&out, "    ", i + 1, ". ", DescribeWithTime(operations[partition.linearization[i]]),
                      i < partition.states.size() ? absl::StrCat("  => ", partition.states[i]) : "",
                      "\n");
    }
    std::vector<std::string> left;
    for (size_t id : partition.prefix) {
      if (std::find(partition.linearization.begin(), partition.linearization.end(), id) ==
              partition.linearization.end() &&
          operations[id].outcome == Outcome::kOk && id != *partition.failing_op) {
        left.push_back(DescribeWithTime(operations[id]));
      }
    }
    if (!left.empty()) {
      const size_t more = left.size() > kShown ? left.size() - kShown : 0;
      left.resize(left.size() - more);
      absl::StrAppend(&out, "  completed operations that cannot be added to it:\n    ",
                      absl::StrJoin(left, "\n    "), "\n",
                      more > 0 ? absl::StrCat("    ... (", more, " more)\n") : "");
    }
  }
  return out;
}

}  // namespace dsim::check
