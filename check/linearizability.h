// Linearizability checking of histories (check/history.h) against sequential models.
//
// Example:
//
//   absl::StatusOr<dsim::check::History> history = dsim::check::History::Parse(text);
//   dsim::check::CheckResult result =
//       dsim::check::CheckLinearizability(*history, dsim::check::KvModel());
//   if (result.verdict == dsim::check::Verdict::kNotLinearizable) {
//     std::cout << result.Explain();         // per key: the smallest failing prefix
//     WriteFile("/tmp/h.html", dsim::check::RenderHtml(result));   // check/html.h
//   }
//
// A user model: any copyable State with operator==, a step function and a hash.
//
//   dsim::check::ModelSpec<int64_t> counter;
//   counter.name = "my-counter";
//   counter.init = 0;
//   counter.step = [](const int64_t& n, const Operation& op, int64_t* next) {
//     if (op.f == "add") { *next = n + op.input.as_int(); return true; }
//     if (op.f == "read") {             // op.outcome == kInfo: output unknown
//       *next = n;
//       return op.outcome != Outcome::kOk || op.output == Value(n);
//     }
//     return false;
//   };
//   counter.hash = [](const int64_t& n) { return static_cast<uint64_t>(n); };
//   CheckLinearizability(history, MakeModel(counter));
//
// Semantics (Herlihy & Wing; Jepsen's conventions for outcomes):
//   - ok: took effect exactly once between its invocation and its completion, and its
//     result is the model's;
//   - fail: did not take effect (it is dropped);
//   - info (unknown, or no completion in the history): took effect at some point after
//     its invocation, or never; its result is unknown.
// An operation precedes another when its completion comes before the other's
// invocation in the history; otherwise they are concurrent.
//
// The built-in models (operation names as Jepsen spells them):
//   register  read (ok value: what was read), write (value: what to write),
//             cas (value: [old new]; ok when the register held old). Starts nil.
//   kv        the register's operations, each with a :key; every key is its own
//             register, checked separately (P-compositionality). Starts nil.
//             Porcupine's key-value dialect is accepted too (register and kv): get,
//             put, append (value: a string to concatenate), where "" stands for nil
//             (a key never written reads as ""). Without a :key, kv reads Jepsen's
//             jepsen.independent tuples: :value [key value] (cas: [key [old new]]).
//   set       add (value: x), remove (value: x), read (ok value: the whole set, as a
//             vector or an EDN set, order ignored). Starts empty.
//   queue     enqueue (value: x), dequeue (ok value: the head, or nil when the queue
//             was empty). FIFO. Starts empty.
//   counter   add (value: an integer delta; nil means 1), read (ok value: the count).
//             Starts at 0.
// Operation names outside a model's list are an error (CheckResult::error), as are
// values of the wrong shape.
//
// Budget. A search that exhausts CheckOptions::time_budget or max_steps gives kUnknown
// for its partition instead of running on. Partitions are searched round-robin in
// slices of `slice_steps`, so a violation in an easy key is found in about the time it
// takes alone, however hard another key is. A time budget makes an "unknown" depend on
// the machine; use max_steps when the verdict must be reproducible.
#ifndef DSIM_CHECK_LINEARIZABILITY_H_
#define DSIM_CHECK_LINEARIZABILITY_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "check/history.h"
#include "check/internal/search.h"

namespace dsim::check {

enum class Verdict { kLinearizable, kNotLinearizable, kUnknown };
// "linearizable", "not linearizable", "unknown".
const char* VerdictName(Verdict verdict);

// A sequential specification, type-erased. Build one with RegisterModel() and friends,
// or MakeModel(ModelSpec<State>).
class Model {
 public:
  class Impl {
   public:
    virtual ~Impl() = default;
    virtual std::string name() const = 0;
    // OK, or why the model cannot take this operation (unknown :f, bad value).
    virtual absl::Status Validate(const Operation& op) const = 0;
    // The partition an operation belongs to (P-compositionality); nullopt: one
    // partition for the whole history.
    virtual std::optional<Value> PartitionKey(const Operation& op) const = 0;
    // A search over one partition's operations (ok and info only, in history order).
    virtual std::unique_ptr<internal::PartitionSearch> NewSearch(
        const std::vector<Operation>& ops, const internal::SearchConfig& config) const = 0;
  };

  explicit Model(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::string name() const { return impl_->name(); }
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<const Impl> impl_;
};

Model RegisterModel();
Model KvModel();
Model SetModel();
Model QueueModel();
Model CounterModel();
// "register", "kv", "set", "queue", "counter"; nullopt for anything else.
std::optional<Model> ModelByName(absl::string_view name);

// A user-defined model. State must be copyable and have operator==.
template <typename State>
struct ModelSpec {
  std::string name = "custom";
  State init{};
  // Applies `op` to `state` into `*next`. Returns false if `op` could not have happened
  // in `state` (an ok read that returned something else). For an info operation
  // (op.outcome == Outcome::kInfo, op.output nil) apply its effect whatever its result
  // would have been; returning false then means "this could not have taken effect
  // here" (the checker also considers it never taking effect).
  std::function<bool(const State& state, const Operation& op, State* next)> step;
  // Required: equal states must hash equally.
  std::function<uint64_t(const State& state)> hash;
  // Optional: for reports and the HTML page.
  std::function<std::string(const State& state)> describe;
  // Optional: P-compositionality. Operations with different keys are independent.
  std::function<std::optional<Value>(const Operation& op)> partition;
  // Optional: OK, or why `op` is malformed for this model.
  std::function<absl::Status(const Operation& op)> validate;
  // Optional, a speed-up: true for operations that never change any state (reads).
  // The search then takes a read that fits the current state as the only branch, as
  // the built-in models do. Claiming it for an operation that can change the state
  // makes the checker wrong.
  std::function<bool(const Operation& op)> read_only;
};

template <typename State>
Model MakeModel(ModelSpec<State> spec);

struct CheckOptions {
  // Wall-clock budget for the whole check; absl::InfiniteDuration() for none.
  absl::Duration time_budget = absl::Seconds(60);
  // Search steps per partition; 0 for no limit. Deterministic, unlike time_budget.
  uint64_t max_steps = 0;
  // Steps a partition searches before the next partition's turn.
  uint64_t slice_steps = 1 << 14;
  // For a non-linearizable partition: find its smallest failing prefix and the longest
  // partial linearization of that prefix (a few more searches of that partition).
  bool explain = true;
  // Testing: memo entries by fingerprint only, never by exact set.
  bool force_fingerprints = false;
};

// One partition's verdict (the whole history when the model does not partition).
struct PartitionResult {
  std::optional<Value> key;     // The partition's key, if the model partitions.
  Verdict verdict = Verdict::kUnknown;
  std::vector<size_t> operations;  // Ids (into CheckResult::operations), history order.
  uint64_t steps = 0;           // Search steps, all searches of this partition.
  size_t memo_entries = 0;      // Of the main search.

  // When not linearizable (and CheckOptions::explain):
  // The smallest prefix of the partition's history that is already not linearizable
  // ends with the completion of `failing_op` (usually an ok whose result no order
  // explains; sometimes a fail, which rules out the only way the history worked).
  // `prefix` holds the operations invoked before that completion, but not those that
  // had failed by then (operations still running at that point count as having an
  // unknown outcome).
  std::optional<size_t> failing_op;
  std::vector<size_t> prefix;
  // A longest linearizable order of operations of that prefix (Operation ids), and the
  // model's state after each. Prefix operations outside it could not be added.
  std::vector<size_t> linearization;
  std::vector<std::string> states;
};

struct CheckResult {
  Verdict verdict = Verdict::kUnknown;
  // The history could not be checked: bad pairing, or an operation the model does not
  // know. verdict is then kUnknown.
  absl::Status error;
  std::string model;
  std::vector<Operation> operations;    // Every operation of the history, paired.
  std::vector<PartitionResult> partitions;  // In order of their first operation.
  absl::Duration elapsed;

  // A few lines: the verdict, and for every failing partition its failing operation
  // and prefix; keys with unknown verdicts are listed.
  std::string Explain() const;
  // One line for a failure report: "key "x": process 1 read -> "c1.3" (at 0.227s)
  // cannot be linearized after 13 earlier operations" or "linearizable".
  std::string FirstViolation() const;
};

CheckResult CheckLinearizability(const History& history, const Model& model,
                                 const CheckOptions& options = {});

// ---- Implementation of MakeModel ---------------------------------------------------

namespace internal {

template <typename S>
class CustomModel final : public Model::Impl {
 public:
  using State = S;
  using Op = const Operation*;

  explicit CustomModel(ModelSpec<S> spec) : spec_(std::move(spec)) {}

  std::string name() const override { return spec_.name; }
  absl::Status Validate(const Operation& op) const override {
    return spec_.validate ? spec_.validate(op) : absl::OkStatus();
  }
  std::optional<Value> PartitionKey(const Operation& op) const override {
    return spec_.partition ? spec_.partition(op) : std::nullopt;
  }

  // The search engine's interface.
  State Init() const { return spec_.init; }
  bool Step(const State& state, const Op& op, State* next) const {
    return spec_.step(state, *op, next);
  }
  uint64_t Hash(const State& state) const { return spec_.hash(state); }
  bool ReadOnly(const Op& op) const { return spec_.read_only && spec_.read_only(*op); }
  bool Overwrites(const State&, const Op&) const { return false; }
  void Linearized(const Op&, int) const {}
  bool Equal(const State& a, const State& b) const { return a == b; }
  std::string Describe(const State& state) const {
    return spec_.describe ? spec_.describe(state) : "";
  }

  std::unique_ptr<PartitionSearch> NewSearch(const std::vector<Operation>& ops,
                                             const SearchConfig& config) const override {
    // The search keeps pointers into its own copy of the operations.
    auto owned = std::make_shared<std::vector<Operation>>(ops);
    std::vector<Op> compiled;
    std::vector<SearchOp> meta;
    for (const Operation& op : *owned) {
      compiled.push_back(&op);
      meta.push_back({op.call_position, op.return_position, op.outcome == Outcome::kOk, op.id});
    }
    return std::make_unique<Owning>(this, std::move(compiled), std::move(meta), config,
                                    std::move(owned));
  }

 private:
  class Owning final : public PartitionSearch {
   public:
    Owning(const CustomModel* model, std::vector<Op> ops, std::vector<SearchOp> meta,
           SearchConfig config, std::shared_ptr<std::vector<Operation>> owned)
        : owned_(std::move(owned)), search_(model, std::move(ops), std::move(meta), config) {}
    SearchStatus Run(uint64_t max_steps) override { return search_.Run(max_steps); }
    uint64_t steps() const override { return search_.steps(); }
    size_t max_depth() const override { return search_.max_depth(); }
    std::vector<size_t> Linearization() const override { return search_.Linearization(); }
    std::vector<std::string> StatesAlong() const override { return search_.StatesAlong(); }
    size_t memo_entries() const override { return search_.memo_entries(); }

   private:
    std::shared_ptr<std::vector<Operation>> owned_;
    Search<CustomModel> search_;
  };

  ModelSpec<S> spec_;
};

}  // namespace internal

template <typename State>
Model MakeModel(ModelSpec<State> spec) {
  DSIM_MISUSE(spec.step != nullptr, "ModelSpec \"", spec.name, "\" has no step function");
  DSIM_MISUSE(spec.hash != nullptr, "ModelSpec \"", spec.name, "\" has no hash function");
  return Model(std::make_shared<internal::CustomModel<State>>(std::move(spec)));
}

}  // namespace dsim::check

#endif  // DSIM_CHECK_LINEARIZABILITY_H_
