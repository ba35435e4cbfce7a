// The checker against a brute-force enumerator, on seeded random small histories.
//
// The enumerator knows nothing of the checker: it tries every order of the operations
// that respects real time (an operation may come next only if no operation still left
// completed before it was invoked), lets each unknown-outcome operation either take
// effect at its place in that order or never, drops failed ones, and runs its own
// sequential models. The two must agree on every history, and the checker's smallest
// failing prefix must be exactly the shortest failing prefix the enumerator finds.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "check/history.h"
#include "check/linearizability.h"

namespace dsim::check {
namespace {

// SplitMix64: a seeded generator, independent of everything under test.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  int Below(int n) { return static_cast<int>(Next() % static_cast<uint64_t>(n)); }
  bool Chance(int percent) { return Below(100) < percent; }

 private:
  uint64_t state_;
};

// ---- The enumerator's own sequential models ------------------------------------------

// A state is a list of integers: the register's value ([] for nil, [v] otherwise), the
// queue's elements, the set's sorted elements, or the counter ([n]).
using SeqState = std::vector<int64_t>;
using SeqStep = std::function<bool(const SeqState&, const Operation&, SeqState*)>;

int64_t Int(const Value& value) { return value.as_int(); }

bool RegisterStep(const SeqState& s, const Operation& op, SeqState* next) {
  *next = s;
  if (op.f == "read") {
    if (op.outcome != Outcome::kOk) return true;
    return op.output.is_nil() ? s.empty() : (!s.empty() && s[0] == Int(op.output));
  }
  if (op.f == "write") {
    *next = {Int(op.input)};
    return true;
  }
  // cas [old new]
  const int64_t old = Int(op.input.items()[0]);
  if (s.empty() || s[0] != old) return false;
  *next = {Int(op.input.items()[1])};
  return true;
}

// Two registers, keys 0 and 1: state [x y], -1 for nil.
bool KvStep(const SeqState& s, const Operation& op, SeqState* next) {
  const SeqState registers = s.empty() ? SeqState{-1, -1} : s;
  const size_t k = static_cast<size_t>(op.key->as_int());
  const SeqState one = registers[k] < 0 ? SeqState{} : SeqState{registers[k]};
  SeqState after;
  if (!RegisterStep(one, op, &after)) return false;
  *next = registers;
  (*next)[k] = after.empty() ? -1 : after[0];
  return true;
}

bool QueueStep(const SeqState& s, const Operation& op, SeqState* next) {
  *next = s;
  if (op.f == "enqueue") {
    next->push_back(Int(op.input));
    return true;
  }
  if (op.outcome != Outcome::kOk) {  // Unknown dequeue: took the head, if any.
    if (s.empty()) return false;
    next->erase(next->begin());
    return true;
  }
  if (op.output.is_nil()) return s.empty();
  if (s.empty() || s[0] != Int(op.output)) return false;
  next->erase(next->begin());
  return true;
}

bool SetStep(const SeqState& s, const Operation& op, SeqState* next) {
  *next = s;
  if (op.f == "read") {
    if (op.outcome != Outcome::kOk) return true;
    SeqState seen;
    for (const Value& v : op.output.items()) seen.push_back(Int(v));
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    return seen == s;
  }
  const int64_t x = Int(op.input);
  auto it = std::find(next->begin(), next->end(), x);
  if (op.f == "add" && it == next->end()) next->push_back(x);
  if (op.f == "remove" && it != next->end()) next->erase(it);
  std::sort(next->begin(), next->end());
  return true;
}

bool CounterStep(const SeqState& s, const Operation& op, SeqState* next) {
  *next = s.empty() ? SeqState{0} : s;
  if (op.f == "read") return op.outcome != Outcome::kOk || (*next)[0] == Int(op.output);
  (*next)[0] += op.input.is_nil() ? 1 : Int(op.input);
  return true;
}

// True if some order of `ops` (failed ones dropped) respects real time and the model.
bool BruteForce(const std::vector<Operation>& all, const SeqStep& step) {
  std::vector<Operation> ops;
  for (const Operation& op : all) {
    if (op.outcome != Outcome::kFail) ops.push_back(op);
  }
  std::vector<bool> used(ops.size(), false);
  std::function<bool(const SeqState&)> search = [&](const SeqState& state) {
    bool required_left = false;
    for (size_t i = 0; i < ops.size(); ++i) {
      required_left |= !used[i] && ops[i].outcome == Outcome::kOk;
    }
    if (!required_left) return true;  // Every unknown left over never took effect.
    for (size_t i = 0; i < ops.size(); ++i) {
      if (used[i]) continue;
      bool minimal = true;
      for (size_t j = 0; j < ops.size() && minimal; ++j) {
        minimal = used[j] || ops[j].return_position > ops[i].call_position;
      }
      if (!minimal) continue;
      used[i] = true;
      SeqState next;
      if (step(state, ops[i], &next) && search(next)) return true;
      // An unknown operation may also never take effect: leave it out entirely.
      if (ops[i].outcome == Outcome::kInfo && search(state)) return true;
      used[i] = false;
    }
    return false;
  };
  return search({});
}

// The history cut after event `cut`, as the checker's prefixes are.
std::vector<Operation> PrefixOf(const std::vector<Operation>& ops, int64_t cut) {
  std::vector<Operation> prefix;
  for (Operation op : ops) {
    if (op.call_position > cut) continue;
    if (op.outcome == Outcome::kFail && op.return_position <= cut) continue;
    if (op.return_position > cut) {
      op.outcome = Outcome::kInfo;
      op.output = Value();
      op.return_position = Operation::kNever;
    }
    prefix.push_back(op);
  }
  return prefix;
}

// ---- Random histories ---------------------------------------------------------------

struct Workload {
  const char* model;
  SeqStep step;
  // A random invocation: :f and input.
  std::function<std::pair<std::string, Value>(Rng&)> invoke;
  bool keyed;
  // A random ok result for an invocation (often wrong: half the point).
  std::function<Value(Rng&, const std::string& f, const Value& input)> result;
};

Value SmallValue(Rng& rng) { return Value(static_cast<int64_t>(rng.Below(3))); }

std::vector<Workload> Workloads() {
  return {
      {"register", RegisterStep,
       [](Rng& rng) -> std::pair<std::string, Value> {
         const int r = rng.Below(10);
         if (r < 4) return {"read", Value()};
         if (r < 8) return {"write", SmallValue(rng)};
         return {"cas", Value::List({SmallValue(rng), SmallValue(rng)})};
       },
       false,
       [](Rng& rng, const std::string& f, const Value& input) {
         if (f != "read") return input;
         return rng.Chance(20) ? Value() : SmallValue(rng);
       }},
      {"kv", KvStep,
       [](Rng& rng) -> std::pair<std::string, Value> {
         const int r = rng.Below(10);
         if (r < 4) return {"read", Value()};
         if (r < 8) return {"write", SmallValue(rng)};
         return {"cas", Value::List({SmallValue(rng), SmallValue(rng)})};
       },
       true,
       [](Rng& rng, const std::string& f, const Value& input) {
         if (f != "read") return input;
         return rng.Chance(20) ? Value() : SmallValue(rng);
       }},
      {"queue", QueueStep,
       [](Rng& rng) -> std::pair<std::string, Value> {
         if (rng.Chance(50)) return {"enqueue", SmallValue(rng)};
         return {"dequeue", Value()};
       },
       false,
       [](Rng& rng, const std::string& f, const Value& input) {
         if (f != "dequeue") return input;
         return rng.Chance(20) ? Value() : SmallValue(rng);
       }},
      {"set", SetStep,
       [](Rng& rng) -> std::pair<std::string, Value> {
         const int r = rng.Below(10);
         if (r < 4) return {"read", Value()};
         if (r < 8) return {"add", SmallValue(rng)};
         return {"remove", SmallValue(rng)};
       },
       false,
       [](Rng& rng, const std::string& f, const Value& input) {
         if (f != "read") return input;
         std::vector<Value> items;
         for (int64_t v = 0; v < 3; ++v) {
           if (rng.Chance(50)) items.push_back(Value(v));
         }
         return Value::List(items);
       }},
      {"counter", CounterStep,
       [](Rng& rng) -> std::pair<std::string, Value> {
         if (rng.Chance(50)) return {"read", Value()};
         return {"add", Value(static_cast<int64_t>(1 + rng.Below(2)))};
       },
       false,
       [](Rng& rng, const std::string& f, const Value& input) {
         if (f != "read") return input;
         return Value(static_cast<int64_t>(rng.Below(5)));
       }},
  };
}

// `operations` invocations by up to 4 processes, interleaved at random; each ends ok
// (80%), info (10%) or fail (10%), or is left open at the end.
History RandomHistory(Rng& rng, const Workload& workload, int operations) {
  History history;
  const int processes = 2 + rng.Below(3);
  struct Open {
    bool busy = false;
    std::string f;
    Value input;
    std::optional<Value> key;
  };
  std::vector<Open> open(processes);
  int invoked = 0;
  while (true) {
    const int p = rng.Below(processes);
    Open& o = open[p];
    if (!o.busy) {
      if (invoked == operations) {
        bool any = false;
        for (const Open& other : open) any |= other.busy;
        if (!any) break;
        if (rng.Chance(5)) break;  // Leave some invocations open.
        continue;
      }
      auto [f, input] = workload.invoke(rng);
      std::optional<Value> key;
      if (workload.keyed) key = Value(static_cast<int64_t>(rng.Below(2)));
      o = {true, f, input, key};
      ++invoked;
      history.Add(
          {.process = p, .type = EventType::kInvoke, .f = f, .value = input, .key = key});
      continue;
    }
    const int r = rng.Below(10);
    const EventType type = r < 8 ? EventType::kOk : r < 9 ? EventType::kInfo : EventType::kFail;
    const Value value =
        type == EventType::kOk ? workload.result(rng, o.f, o.input) : o.input;
    history.Add({.process = p, .type = type, .f = o.f, .value = value, .key = o.key});
    o.busy = false;
  }
  return history;
}

class Differential : public ::testing::TestWithParam<int> {};

TEST_P(Differential, CheckerAgreesWithBruteForceOnEveryHistory) {
  const Workload workload = Workloads()[GetParam()];
  const Model model = *ModelByName(workload.model);
  Rng rng(1000 + GetParam());
  int linearizable = 0;
  int not_linearizable = 0;
  constexpr int kHistories = 600;
  for (int i = 0; i < kHistories; ++i) {
    const History history =
        RandomHistory(rng, workload, 1 + rng.Below(workload.keyed ? 10 : 8));
    const std::vector<Operation> ops = *history.Operations();
    const bool expected = BruteForce(ops, workload.step);
    for (bool fingerprints : {false, true}) {
      CheckOptions options;
      options.force_fingerprints = fingerprints;
      const CheckResult result = CheckLinearizability(history, model, options);
      ASSERT_TRUE(result.error.ok()) << result.error;
      ASSERT_EQ(result.verdict, expected ? Verdict::kLinearizable : Verdict::kNotLinearizable)
          << workload.model << " history " << i << ":\n" << history.ToEdn();
      if (expected || fingerprints || workload.keyed) continue;
      // The smallest failing prefix: it fails, and the one ending at the previous
      // completion does not.
      const PartitionResult& partition = result.partitions[0];
      ASSERT_TRUE(partition.failing_op.has_value());
      const int64_t cut = ops[*partition.failing_op].return_position;
      EXPECT_FALSE(BruteForce(PrefixOf(ops, cut), workload.step)) << history.ToEdn();
      int64_t previous = -1;
      for (const Operation& op : ops) {
        if (op.outcome != Outcome::kInfo && op.return_position < cut) {
          previous = std::max(previous, op.return_position);
        }
      }
      EXPECT_TRUE(BruteForce(PrefixOf(ops, previous), workload.step))
          << "a shorter prefix already fails:\n" << history.ToEdn();
      // The partial linearization is a valid one of that prefix.
      const std::vector<Operation> prefix = PrefixOf(ops, cut);
      std::vector<Operation> partial;
      for (size_t id : partition.linearization) {
        for (const Operation& op : prefix) {
          if (op.id == id) partial.push_back(op);
        }
      }
      ASSERT_EQ(partial.size(), partition.linearization.size());
      SeqState state;
      for (const Operation& op : partial) {
        SeqState next;
        ASSERT_TRUE(workload.step(state, op, &next)) << history.ToEdn();
        state = next;
      }
    }
    (expected ? linearizable : not_linearizable)++;
  }
  // The generator must exercise both answers, or the test proves little.
  EXPECT_GT(linearizable, kHistories / 10) << workload.model;
  EXPECT_GT(not_linearizable, kHistories / 10) << workload.model;
  std::cout << workload.model << ": " << linearizable << " linearizable, " << not_linearizable
            << " not, all agreed\n";
}

INSTANTIATE_TEST_SUITE_P(Models, Differential, ::testing::Range(0, 5),
                         [](const ::testing::TestParamInfo<int>& info) {
                           return std::string(Workloads()[info.param].model);
                         });

}  // namespace
}  // namespace dsim::check
