// The built-in models: register, kv (a register per key), set, queue, counter.
//
// Each compiles a partition's operations into a compact form before the search:
// values are interned to small integers (nil is 0), so a step compares integers, and
// unknown-outcome reads, which constrain nothing and change nothing, are left out.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "check/internal/search.h"
#include "check/linearizability.h"

namespace dsim::check {
namespace {

using internal::PartitionSearch;
using internal::Search;
using internal::SearchConfig;
using internal::SearchOp;
using internal::SearchStatus;

// Values to small integers and back. Id 0 is nil.
class Interner {
 public:
  Interner() { names_.push_back(Value()); }
  int32_t Id(const Value& value) {
    if (value.is_nil()) return 0;
    auto [it, inserted] = ids_.try_emplace(value.ToEdn(), static_cast<int32_t>(names_.size()));
    if (inserted) names_.push_back(value);
    return it->second;
  }
  const Value& Name(int32_t id) const { return names_[id]; }
  size_t size() const { return names_.size(); }

 private:
  absl::flat_hash_map<std::string, int32_t> ids_;
  std::vector<Value> names_;
};

uint64_t HashInts(const std::vector<int32_t>& items) {
  uint64_t h = 0x84222325cbf29ce4ULL ^ items.size();
  for (int32_t item : items) h = internal::Mix64(h ^ static_cast<uint32_t>(item));
  return h;
}

// Owns a compiled model (with its interned names) and the search over it.
template <typename M>
class OwningSearch final : public PartitionSearch {
 public:
  OwningSearch(M model, std::vector<typename M::Op> ops, std::vector<SearchOp> meta,
               const SearchConfig& config)
      : model_(std::move(model)), search_(&model_, std::move(ops), std::move(meta), config) {}
  SearchStatus Run(uint64_t max_steps) override { return search_.Run(max_steps); }
  uint64_t steps() const override { return search_.steps(); }
  size_t max_depth() const override { return search_.max_depth(); }
  std::vector<size_t> Linearization() const override { return search_.Linearization(); }
  std::vector<std::string> StatesAlong() const override { return search_.StatesAlong(); }
  size_t memo_entries() const override { return search_.memo_entries(); }

 private:
  M model_;
  Search<M> search_;
};

SearchOp MetaOf(const Operation& op) {
  return {op.call_position, op.return_position, op.outcome == Outcome::kOk, op.id};
}

absl::Status Unknown(absl::string_view model, const Operation& op, absl::string_view expected) {
  return absl::InvalidArgumentError(absl::StrCat(model, " model: unknown operation :", op.f,
                                                 " (expected ", expected, ")"));
}

absl::Status BadValue(absl::string_view model, const Operation& op, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(model, " model: ", op.f, " ", what));
}

// ---- register, kv ------------------------------------------------------------------

struct RegisterOp {
  enum Kind : uint8_t { kRead, kWrite, kCas, kAppend } kind;
  int32_t a;  // kRead: the value read; kWrite: the value written; kCas: old;
              // kAppend: the string appended.
  int32_t b;  // kCas: new.
};

// Porcupine's key-value dialect (get, put, append; a key never written reads as "")
// shares the register: "" is its nil.
Value FromDialect(const Operation& op, const Value& value) {
  const bool porcupine = op.f == "get" || op.f == "put" || op.f == "append";
  return porcupine && value == Value("") ? Value() : value;
}
bool IsRead(const Operation& op) { return op.f == "read" || op.f == "get"; }
bool IsWrite(const Operation& op) { return op.f == "write" || op.f == "put"; }

struct RegisterSearchModel {
  using State = int32_t;
  using Op = RegisterOp;
  // Mutable: an append makes values no operation named.
  mutable Interner names;
  // Appends read the register to write it, so with any of them the value-liveness
  // reductions (Overwrites) are off.
  bool has_appends = false;
  // Per value: operations not linearized yet that will look at the register holding
  // it (reads that returned it, cas that expect it). Zero: the value is dead, no one
  // left can tell it was ever there.
  mutable std::vector<int32_t> observers;

  void CountObservers(const std::vector<RegisterOp>& ops) {
    observers.assign(static_cast<size_t>(names.size()), 0);
    for (const RegisterOp& op : ops) {
      if (op.kind == RegisterOp::kRead || op.kind == RegisterOp::kCas) ++observers[op.a];
      has_appends |= op.kind == RegisterOp::kAppend;
    }
  }
  void Linearized(const Op& op, int delta) const {
    if (op.kind == RegisterOp::kRead || op.kind == RegisterOp::kCas) observers[op.a] -= delta;
  }
  // Writing a dead value over a dead value: see Search::PreferRead.
  bool Overwrites(const State& state, const Op& op) const {
    return !has_appends && op.kind == RegisterOp::kWrite && observers[state] == 0 &&
           observers[op.a] == 0;
  }

  State Init() const { return 0; }
  bool Step(const State& state, const Op& op, State* next) const {
    switch (op.kind) {
      case RegisterOp::kRead: *next = state; return state == op.a;
      case RegisterOp::kWrite: *next = op.a; return true;
      case RegisterOp::kCas: *next = op.b; return state == op.a;
      case RegisterOp::kAppend: {
        const Value& current = names.Name(state);
        if (!current.is_nil() && current.kind() != Value::Kind::kString) return false;
        *next = names.Id(
            FromDialect(Operation{.f = "append"},
                        Value(absl::StrCat(current.text(), names.Name(op.a).text()))));
        return true;
      }
    }
    return false;
  }
  uint64_t Hash(const State& state) const { return static_cast<uint32_t>(state); }
  bool ReadOnly(const Op& op) const { return op.kind == RegisterOp::kRead; }
  bool Equal(const State& a, const State& b) const { return a == b; }
  std::string Describe(const State& state) const { return names.Name(state).Short(); }
};

// Values some completed operation saw: what an ok read returned, what an ok cas
// expected. (EDN text, as interned.)
absl::flat_hash_set<std::string> Observed(const std::vector<Operation>& ops) {
  absl::flat_hash_set<std::string> observed;
  for (const Operation& op : ops) {
    if (op.outcome != Outcome::kOk) continue;
    if (IsRead(op)) observed.insert(FromDialect(op, op.output).ToEdn());
    if (op.f == "cas") observed.insert(op.input.items()[0].ToEdn());
  }
  return observed;
}

// Whether an operation of unknown outcome can matter. A read cannot (no constraint, no
// effect). Nor can a write or cas whose new value no completed operation saw: in any
// linearization that includes it, the next operation that depends on the register
// must be a write (nothing reads or expects that value), so leaving it out (it never
// took effect) gives a linearization too. Unknown writes are common in Jepsen-style
// histories (timeouts), and each one kept doubles the sets the search may visit.
// (Not so with appends, which observe the value they extend: with any append in the
// partition, every unknown write is kept.)
bool MayMatter(const Operation& op, const absl::flat_hash_set<std::string>& observed,
               bool has_appends) {
  if (IsRead(op)) return false;
  if (has_appends || op.f == "append") return true;
  const Value written = IsWrite(op) ? FromDialect(op, op.input) : op.input.items()[1];
  return observed.contains(written.ToEdn());
}

// Jepsen's jepsen.independent form of a keyed operation, for the kv model when there
// is no :key: every value is a tuple [key value] (a read's invocation [key nil], a
// cas [key [old new]]). Returns the operation with :key set and the values unwrapped;
// other operations unchanged.
Operation Untupled(const Operation& op) {
  if (op.key.has_value() || !op.input.is_list() || op.input.items().size() != 2) return op;
  Operation plain = op;
  plain.key = op.input.items()[0];
  plain.input = op.input.items()[1];
  if (op.output.is_list() && op.output.items().size() == 2) plain.output = op.output.items()[1];
  return plain;
}

class RegisterModelImpl final : public Model::Impl {
 public:
  explicit RegisterModelImpl(bool keyed) : keyed_(keyed) {}

  std::string name() const override { return keyed_ ? "kv" : "register"; }

  absl::Status Validate(const Operation& original) const override {
    const Operation op = keyed_ ? Untupled(original) : original;
    if (keyed_ && !op.key.has_value()) {
      return BadValue(name(), op,
                      "has no :key and no [key value] tuple as its :value (the kv model "
                      "checks each key as a register)");
    }
    if (IsRead(op) || IsWrite(op)) return absl::OkStatus();
    if (op.f == "cas") {
      if (!op.input.is_list() || op.input.items().size() != 2) {
        return BadValue(name(), op, absl::StrCat("needs :value [old new], got ", op.input.Short()));
      }
      return absl::OkStatus();
    }
    if (op.f == "append") {
      if (op.input.kind() != Value::Kind::kString) {
        return BadValue(name(), op, absl::StrCat("needs a string :value, got ", op.input.Short()));
      }
      return absl::OkStatus();
    }
    return Unknown(name(), op, ":read, :write, :cas (or Porcupine's :get, :put, :append)");
  }

  std::optional<Value> PartitionKey(const Operation& op) const override {
    return keyed_ ? Untupled(op).key : std::nullopt;
  }

  std::unique_ptr<PartitionSearch> NewSearch(const std::vector<Operation>& original,
                                             const SearchConfig& config) const override {
    std::vector<Operation> ops;
    ops.reserve(original.size());
    for (const Operation& op : original) ops.push_back(keyed_ ? Untupled(op) : op);
    RegisterSearchModel model;
    std::vector<RegisterOp> compiled;
    std::vector<SearchOp> meta;
    const absl::flat_hash_set<std::string> observed = Observed(ops);
    const bool has_appends = std::any_of(ops.begin(), ops.end(),
                                         [](const Operation& op) { return op.f == "append"; });
    for (const Operation& op : ops) {
      RegisterOp c{RegisterOp::kRead, 0, 0};
      if (op.outcome != Outcome::kOk && !MayMatter(op, observed, has_appends)) continue;
      if (IsRead(op)) {
        c = {RegisterOp::kRead, model.names.Id(FromDialect(op, op.output)), 0};
      } else if (IsWrite(op)) {
        c = {RegisterOp::kWrite, model.names.Id(FromDialect(op, op.input)), 0};
      } else if (op.f == "append") {
        c = {RegisterOp::kAppend, model.names.Id(op.input), 0};
      } else {
        c = {RegisterOp::kCas, model.names.Id(op.input.items()[0]),
             model.names.Id(op.input.items()[1])};
      }
      compiled.push_back(c);
      meta.push_back(MetaOf(op));
    }
    model.CountObservers(compiled);
    return std::make_unique<OwningSearch<RegisterSearchModel>>(
        std::move(model), std::move(compiled), std::move(meta), config);
  }

 private:
  bool keyed_;
};

// ---- set -------------------------------------------------------------------------------

struct SetOp {
  enum Kind : uint8_t { kAdd, kRemove, kRead } kind;
  int32_t element;                // kAdd, kRemove.
  std::vector<int32_t> contents;  // kRead: sorted, unique.
};

struct SetSearchModel {
  using State = std::vector<int32_t>;  // Sorted, unique.
  using Op = SetOp;
  Interner names;

  State Init() const { return {}; }
  bool Step(const State& state, const Op& op, State* next) const {
    switch (op.kind) {
      case SetOp::kRead: *next = state; return state == op.contents;
      case SetOp::kAdd: {
        *next = state;
        auto it = std::lower_bound(next->begin(), next->end(), op.element);
        if (it == next->end() || *it != op.element) next->insert(it, op.element);
        return true;
      }
      case SetOp::kRemove: {
        *next = state;
        auto it = std::lower_bound(next->begin(), next->end(), op.element);
        if (it != next->end() && *it == op.element) next->erase(it);
        return true;
      }
    }
    return false;
  }
  uint64_t Hash(const State& state) const { return HashInts(state); }
  bool ReadOnly(const Op& op) const { return op.kind == SetOp::kRead; }
  bool Overwrites(const State&, const Op&) const { return false; }
  void Linearized(const Op&, int) const {}
  bool Equal(const State& a, const State& b) const { return a == b; }
  std::string Describe(const State& state) const {
    return absl::StrCat("#{", absl::StrJoin(state, " ", [&](std::string* out, int32_t id) {
                          out->append(names.Name(id).Short());
                        }), "}");
  }
};

class SetModelImpl final : public Model::Impl {
 public:
  std::string name() const override { return "set"; }
  absl::Status Validate(const Operation& op) const override {
    if (op.f == "add" || op.f == "remove") return absl::OkStatus();
    if (op.f == "read") {
      if (op.outcome == Outcome::kOk && !op.output.is_list()) {
        return BadValue(name(), op, absl::StrCat("must return the set's elements as a vector "
                                                 "or set, got ", op.output.Short()));
      }
      return absl::OkStatus();
    }
    return Unknown(name(), op, ":add, :remove, :read");
  }
  std::optional<Value> PartitionKey(const Operation&) const override { return std::nullopt; }

  std::unique_ptr<PartitionSearch> NewSearch(const std::vector<Operation>& ops,
                                             const SearchConfig& config) const override {
    SetSearchModel model;
    std::vector<SetOp> compiled;
    std::vector<SearchOp> meta;
    for (const Operation& op : ops) {
      SetOp c{SetOp::kRead, 0, {}};
      if (op.f == "read") {
        if (op.outcome != Outcome::kOk) continue;
        for (const Value& item : op.output.items()) c.contents.push_back(model.names.Id(item));
        std::sort(c.contents.begin(), c.contents.end());
        c.contents.erase(std::unique(c.contents.begin(), c.contents.end()), c.contents.end());
      } else {
        c.kind = op.f == "add" ? SetOp::kAdd : SetOp::kRemove;
        c.element = model.names.Id(op.input);
      }
      compiled.push_back(std::move(c));
      meta.push_back(MetaOf(op));
    }
    return std::make_unique<OwningSearch<SetSearchModel>>(std::move(model), std::move(compiled),
                                                          std::move(meta), config);
  }
};

// ---- queue -----------------------------------------------------------------------------

struct QueueOp {
  enum Kind : uint8_t { kEnqueue, kDequeue } kind;
  int32_t value;  // kEnqueue: the element. kDequeue: the element returned (0: empty).
  bool known;     // kDequeue: completed ok (its result is known).
};

struct QueueSearchModel {
  using State = std::vector<int32_t>;  // Head first.
  using Op = QueueOp;
  Interner names;

  State Init() const { return {}; }
  bool Step(const State& state, const Op& op, State* next) const {
    if (op.kind == QueueOp::kEnqueue) {
      next->reserve(state.size() + 1);
      *next = state;
      next->push_back(op.value);
      return true;
    }
    if (state.empty()) {
      // An empty queue: an ok dequeue must have returned nil; an unknown one had no
      // effect here, which leaving it out already covers.
      *next = state;
      return op.known && op.value == 0;
    }
    if (op.known && state.front() != op.value) return false;
    next->assign(state.begin() + 1, state.end());
    return true;
  }
  uint64_t Hash(const State& state) const { return HashInts(state); }
  bool ReadOnly(const Op&) const { return false; }
  bool Overwrites(const State&, const Op&) const { return false; }
  void Linearized(const Op&, int) const {}
  bool Equal(const State& a, const State& b) const { return a == b; }
  std::string Describe(const State& state) const {
    return absl::StrCat("[", absl::StrJoin(state, " ", [&](std::string* out, int32_t id) {
                          out->append(names.Name(id).Short());
                        }), "]");
  }
};

class QueueModelImpl final : public Model::Impl {
 public:
  std::string name() const override { return "queue"; }
  absl::Status Validate(const Operation& op) const override {
    if (op.f == "enqueue") {
      if (op.input.is_nil()) return BadValue(name(), op, "needs a non-nil :value");
      return absl::OkStatus();
    }
    if (op.f == "dequeue") return absl::OkStatus();
    return Unknown(name(), op, ":enqueue, :dequeue");
  }
  std::optional<Value> PartitionKey(const Operation&) const override { return std::nullopt; }

  std::unique_ptr<PartitionSearch> NewSearch(const std::vector<Operation>& ops,
                                             const SearchConfig& config) const override {
    QueueSearchModel model;
    std::vector<QueueOp> compiled;
    std::vector<SearchOp> meta;
    for (const Operation& op : ops) {
      if (op.f == "enqueue") {
        compiled.push_back({QueueOp::kEnqueue, model.names.Id(op.input), true});
      } else {
        const bool known = op.outcome == Outcome::kOk;
        compiled.push_back({QueueOp::kDequeue, known ? model.names.Id(op.output) : 0, known});
      }
      meta.push_back(MetaOf(op));
    }
    return std::make_unique<OwningSearch<QueueSearchModel>>(
        std::move(model), std::move(compiled), std::move(meta), config);
  }
};

// ---- counter ---------------------------------------------------------------------------

struct CounterOp {
  bool read;
  int64_t value;  // Read: the count returned. Add: the delta.
};

struct CounterSearchModel {
  using State = int64_t;
  using Op = CounterOp;

  State Init() const { return 0; }
  bool Step(const State& state, const Op& op, State* next) const {
    if (op.read) {
      *next = state;
      return state == op.value;
    }
    *next = state + op.value;
    return true;
  }
  uint64_t Hash(const State& state) const { return static_cast<uint64_t>(state); }
  bool ReadOnly(const Op& op) const { return op.read; }
  bool Overwrites(const State&, const Op&) const { return false; }
  void Linearized(const Op&, int) const {}
  bool Equal(const State& a, const State& b) const { return a == b; }
  std::string Describe(const State& state) const { return absl::StrCat(state); }
};

class CounterModelImpl final : public Model::Impl {
 public:
  std::string name() const override { return "counter"; }
  absl::Status Validate(const Operation& op) const override {
    if (op.f == "add") {
      if (!op.input.is_nil() && !op.input.is_int()) {
        return BadValue(name(), op, absl::StrCat("needs an integer :value, got ", op.input.Short()));
      }
      return absl::OkStatus();
    }
    if (op.f == "read") {
      if (op.outcome == Outcome::kOk && !op.output.is_int()) {
        return BadValue(name(), op, absl::StrCat("must return an integer, got ", op.output.Short()));
      }
      return absl::OkStatus();
    }
    return Unknown(name(), op, ":add, :read");
  }
  std::optional<Value> PartitionKey(const Operation&) const override { return std::nullopt; }

  std::unique_ptr<PartitionSearch> NewSearch(const std::vector<Operation>& ops,
                                             const SearchConfig& config) const override {
    std::vector<CounterOp> compiled;
    std::vector<SearchOp> meta;
    for (const Operation& op : ops) {
      if (op.f == "read") {
        if (op.outcome != Outcome::kOk) continue;
        compiled.push_back({true, op.output.as_int()});
      } else {
        compiled.push_back({false, op.input.is_nil() ? 1 : op.input.as_int()});
      }
      meta.push_back(MetaOf(op));
    }
    return std::make_unique<OwningSearch<CounterSearchModel>>(
        CounterSearchModel{}, std::move(compiled), std::move(meta), config);
  }
};

}  // namespace

Model RegisterModel() { return Model(std::make_shared<RegisterModelImpl>(false)); }
Model KvModel() { return Model(std::make_shared<RegisterModelImpl>(true)); }
Model SetModel() { return Model(std::make_shared<SetModelImpl>()); }
Model QueueModel() { return Model(std::make_shared<QueueModelImpl>()); }
Model CounterModel() { return Model(std::make_shared<CounterModelImpl>()); }

std::optional<Model> ModelByName(absl::string_view name) {
  if (name == "register") return RegisterModel();
  if (name == "kv") return KvModel();
  if (name == "set") return SetModel();
  if (name == "queue") return QueueModel();
  if (name == "counter") return CounterModel();
  return std::nullopt;
}

}  // namespace dsim::check
