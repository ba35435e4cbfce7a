// The linearizability checker (check/linearizability.h) on small histories with known
// answers, written as Jepsen EDN so each reads as the history it is.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "check/history.h"
#include "check/linearizability.h"

namespace dsim::check {
namespace {

CheckResult Check(const std::string& edn, const Model& model = RegisterModel(),
                  CheckOptions options = {}) {
  absl::StatusOr<History> history = History::ParseEdn(edn);
  EXPECT_TRUE(history.ok()) << history.status();
  return CheckLinearizability(*history, model, options);
}

Verdict VerdictOf(const std::string& edn, const Model& model = RegisterModel()) {
  const CheckResult result = Check(edn, model);
  EXPECT_TRUE(result.error.ok()) << result.error;
  // Both memo kinds must agree.
  CheckOptions fingerprints;
  fingerprints.force_fingerprints = true;
  EXPECT_EQ(Check(edn, model, fingerprints).verdict, result.verdict) << edn;
  return result.verdict;
}

constexpr Verdict kYes = Verdict::kLinearizable;
constexpr Verdict kNo = Verdict::kNotLinearizable;

// ---- Register ------------------------------------------------------------------------

TEST(Register, EmptyHistoryIsLinearizable) { EXPECT_EQ(VerdictOf(""), kYes); }

TEST(Register, SequentialWriteThenReadOfItIsLinearizable) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
)"),
            kYes);
}

TEST(Register, ReadOfTheInitialNilIsLinearizable) {
  EXPECT_EQ(VerdictOf(R"(
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value nil}
)"),
            kYes);
}

TEST(Register, StaleReadAfterACompletedWriteIsNot) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 0, :type :invoke, :f :write, :value 2}
{:process 0, :type :ok, :f :write, :value 2}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
)"),
            kNo);
}

TEST(Register, ReadOfAValueNobodyWroteIsNot) {
  EXPECT_EQ(VerdictOf(R"(
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 7}
)"),
            kNo);
}

TEST(Register, ConcurrentWritesMayBeReadInEitherOrder) {
  const std::string writes = R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :write, :value 2}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :ok, :f :write, :value 2}
)";
  for (int last : {1, 2}) {
    EXPECT_EQ(VerdictOf(absl::StrCat(writes,
                                     "{:process 2, :type :invoke, :f :read, :value nil}\n"
                                     "{:process 2, :type :ok, :f :read, :value ",
                                     last, "}\n")),
              kYes)
        << last;
  }
}

TEST(Register, TwoReadersCannotSeeConcurrentWritesInOppositeOrders) {
  // After both writes completed, reader 2 sees 1 then 2, reader 3 sees 2 then 1:
  // no single order of the writes explains both.
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :write, :value 2}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 3, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value 1}
{:process 3, :type :ok, :f :read, :value 2}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 3, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value 2}
{:process 3, :type :ok, :f :read, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :ok, :f :write, :value 2}
)"),
            kNo);
}

TEST(Register, ReadOverlappingTwoWritesMaySeeEitherOrTheOldValue) {
  // The read spans both writes: nil, 1 and 2 are all possible.
  for (const char* seen : {"nil", "1", "2"}) {
    EXPECT_EQ(VerdictOf(absl::StrCat(R"(
{:process 2, :type :invoke, :f :read, :value nil}
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :invoke, :f :write, :value 2}
{:process 1, :type :ok, :f :write, :value 2}
{:process 2, :type :ok, :f :read, :value )",
                                     seen, "}\n")),
              kYes)
        << seen;
  }
}

TEST(Register, ReadAfterTheSecondOfTwoSequentialWritesCannotSeeTheFirst) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 1, :type :invoke, :f :write, :value 2}
{:process 1, :type :ok, :f :write, :value 2}
{:process 2, :type :ok, :f :read, :value nil}
)"),
            kNo);
}

TEST(Register, NewValueThenOldValueIsNotLinearizable) {
  // The write is still running, but once a read saw 1, a later read cannot see nil.
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value nil}
{:process 0, :type :ok, :f :write, :value 1}
)"),
            kNo);
}

// ---- Unknown outcomes ------------------------------------------------------------------

TEST(Unknown, TimedOutWriteMayHaveTakenEffect) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :info, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
)"),
            kYes);
}

TEST(Unknown, TimedOutWriteMayNotHaveTakenEffect) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :info, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value nil}
)"),
            kYes);
}

TEST(Unknown, TimedOutWriteMayTakeEffectLongAfterItsTimeout) {
  // Read nil, then read 1, long after the write "ended": it was in flight.
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :info, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value nil}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
)"),
            kYes);
}

TEST(Unknown, TimedOutWriteCannotTakeEffectTwice) {
  // nil, 1, 2, 1: the single write of 1 would have to happen twice.
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :info, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
{:process 1, :type :invoke, :f :write, :value 2}
{:process 1, :type :ok, :f :write, :value 2}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
)"),
            kNo);
}

TEST(Unknown, TimedOutWriteCannotTakeEffectBeforeItsInvocation) {
  EXPECT_EQ(VerdictOf(R"(
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :info, :f :write, :value 1}
)"),
            kNo);
}

TEST(Unknown, InvocationWithoutCompletionIsUnknown) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
)"),
            kYes);
}

TEST(Unknown, FailedWriteDidNotTakeEffect) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :fail, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
)"),
            kNo);
}

// ---- CAS -----------------------------------------------------------------------------

TEST(Cas, ChainOfSuccessfulCasIsLinearizable) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 0}
{:process 0, :type :ok, :f :write, :value 0}
{:process 1, :type :invoke, :f :cas, :value [0 1]}
{:process 2, :type :invoke, :f :cas, :value [1 2]}
{:process 3, :type :invoke, :f :cas, :value [2 3]}
{:process 3, :type :ok, :f :cas, :value [2 3]}
{:process 2, :type :ok, :f :cas, :value [1 2]}
{:process 1, :type :ok, :f :cas, :value [0 1]}
{:process 0, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :read, :value 3}
)"),
            kYes);
}

TEST(Cas, TwoCasFromTheSameValueCannotBothSucceed) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 0}
{:process 0, :type :ok, :f :write, :value 0}
{:process 1, :type :invoke, :f :cas, :value [0 1]}
{:process 2, :type :invoke, :f :cas, :value [0 2]}
{:process 1, :type :ok, :f :cas, :value [0 1]}
{:process 2, :type :ok, :f :cas, :value [0 2]}
)"),
            kNo);
}

TEST(Cas, FailedCasHasNoEffect) {
  EXPECT_EQ(VerdictOf(R"(
{:process 1, :type :invoke, :f :cas, :value [0 1]}
{:process 1, :type :fail, :f :cas, :value [0 1]}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value nil}
)"),
            kYes);
}

TEST(Cas, UnknownCasMayHaveSucceededButOnlyFromItsOldValue) {
  const std::string start = R"(
{:process 0, :type :invoke, :f :write, :value 0}
{:process 0, :type :ok, :f :write, :value 0}
{:process 1, :type :invoke, :f :cas, :value [0 1]}
{:process 1, :type :info, :f :cas, :value [0 1]}
{:process 2, :type :invoke, :f :read, :value nil}
)";
  EXPECT_EQ(VerdictOf(start + "{:process 2, :type :ok, :f :read, :value 1}\n"), kYes);
  EXPECT_EQ(VerdictOf(start + "{:process 2, :type :ok, :f :read, :value 0}\n"), kYes);
  // From 5, the cas [0 1] cannot have produced 1.
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :value 5}
{:process 0, :type :ok, :f :write, :value 5}
{:process 1, :type :invoke, :f :cas, :value [0 1]}
{:process 1, :type :info, :f :cas, :value [0 1]}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value 1}
)"),
            kNo);
}

// ---- KV (P-compositionality) -------------------------------------------------------------

TEST(Kv, KeysAreIndependentRegisters) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :write, :key "x", :value 1}
{:process 0, :type :ok, :f :write, :key "x", :value 1}
{:process 1, :type :invoke, :f :read, :key "y", :value nil}
{:process 1, :type :ok, :f :read, :key "y", :value nil}
{:process 1, :type :invoke, :f :read, :key "x", :value nil}
{:process 1, :type :ok, :f :read, :key "x", :value 1}
)",
                      KvModel()),
            kYes);
}

TEST(Kv, ViolationIsReportedForItsKeyOnly) {
  const CheckResult result = Check(R"(
{:process 0, :type :invoke, :f :write, :key "x", :value 1}
{:process 0, :type :ok, :f :write, :key "x", :value 1}
{:process 0, :type :invoke, :f :write, :key "y", :value 1}
{:process 0, :type :ok, :f :write, :key "y", :value 1}
{:process 1, :type :invoke, :f :read, :key "y", :value nil}
{:process 1, :type :ok, :f :read, :key "y", :value nil}
{:process 1, :type :invoke, :f :read, :key "x", :value nil}
{:process 1, :type :ok, :f :read, :key "x", :value 1}
)",
                                   KvModel());
  ASSERT_EQ(result.partitions.size(), 2u);
  EXPECT_EQ(result.verdict, kNo);
  EXPECT_EQ(result.partitions[0].verdict, kYes);     // x
  EXPECT_EQ(result.partitions[1].verdict, kNo);      // y
  ASSERT_TRUE(result.partitions[1].failing_op.has_value());
  EXPECT_EQ(result.operations[*result.partitions[1].failing_op].f, "read");
  EXPECT_TRUE(absl::StrContains(result.FirstViolation(), "key \"y\"")) << result.FirstViolation();
}

TEST(Kv, PorcupinesGetPutAppendDialectWorks) {
  // As in Porcupine's test_data/kv: a key never written reads as "".
  const std::string start = R"(
{:process 0, :type :invoke, :f :get, :key "1", :value nil}
{:process 0, :type :ok, :f :get, :key "1", :value ""}
{:process 0, :type :invoke, :f :append, :key "1", :value "a"}
{:process 0, :type :ok, :f :append, :key "1", :value "a"}
{:process 1, :type :invoke, :f :append, :key "1", :value "b"}
{:process 1, :type :ok, :f :append, :key "1", :value "b"}
{:process 0, :type :invoke, :f :get, :key "1", :value nil}
)";
  EXPECT_EQ(VerdictOf(start + "{:process 0, :type :ok, :f :get, :key \"1\", :value \"ab\"}\n",
                      KvModel()),
            kYes);
  EXPECT_EQ(VerdictOf(start + "{:process 0, :type :ok, :f :get, :key \"1\", :value \"ba\"}\n",
                      KvModel()),
            kNo);
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :put, :key "1", :value "x"}
{:process 1, :type :invoke, :f :append, :key "1", :value "y"}
{:process 1, :type :info, :f :append, :key "1", :value "y"}
{:process 0, :type :ok, :f :put, :key "1", :value "x"}
{:process 0, :type :invoke, :f :get, :key "1", :value nil}
{:process 0, :type :ok, :f :get, :key "1", :value "xy"}
)",
                      KvModel()),
            kYes);
}

TEST(Kv, JepsenIndependentTuplesWork) {
  // jepsen.independent: no :key, every value a [key value] tuple.
  const std::string start = R"(
{:process 0, :type :invoke, :f :write, :value [1 5]}
{:process 0, :type :ok, :f :write, :value [1 5]}
{:process 1, :type :invoke, :f :cas, :value [2 [nil 7]]}
{:process 1, :type :fail, :f :cas, :value [2 [nil 7]]}
{:process 0, :type :invoke, :f :read, :value [2 nil]}
{:process 0, :type :ok, :f :read, :value [2 nil]}
{:process 0, :type :invoke, :f :read, :value [1 nil]}
)";
  EXPECT_EQ(VerdictOf(start + "{:process 0, :type :ok, :f :read, :value [1 5]}\n", KvModel()),
            kYes);
  const CheckResult result =
      Check(start + "{:process 0, :type :ok, :f :read, :value [1 6]}\n", KvModel());
  EXPECT_EQ(result.verdict, kNo);
  ASSERT_EQ(result.partitions.size(), 2u);
  EXPECT_EQ(result.partitions[0].key, Value(1));
  EXPECT_EQ(result.partitions[0].verdict, kNo);
}

TEST(Kv, OperationWithoutKeyIsAnError) {
  const CheckResult result = Check(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
)",
                                   KvModel());
  EXPECT_FALSE(result.error.ok());
  EXPECT_EQ(result.verdict, Verdict::kUnknown);
}

// ---- The failing prefix and the partial linearization -----------------------------------

TEST(Explain, SmallestFailingPrefixEndsAtTheFirstImpossibleCompletion) {
  const CheckResult result = Check(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 0, :type :ok, :f :write, :value 1}
{:process 0, :type :invoke, :f :write, :value 2}
{:process 0, :type :ok, :f :write, :value 2}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
{:process 0, :type :invoke, :f :write, :value 3}
{:process 0, :type :ok, :f :write, :value 3}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 7}
)");
  ASSERT_EQ(result.verdict, kNo);
  const PartitionResult& partition = result.partitions[0];
  ASSERT_TRUE(partition.failing_op.has_value());
  EXPECT_EQ(*partition.failing_op, 2u);  // The stale read, not the later read of 7.
  EXPECT_EQ(partition.prefix.size(), 3u);
  EXPECT_EQ(partition.linearization.size(), 2u);  // write 1, write 2.
  ASSERT_EQ(partition.states.size(), 2u);
  EXPECT_EQ(partition.states.back(), "2");
}

// ---- Other models --------------------------------------------------------------------

TEST(Set, ReadMustShowEveryCompletedAdd) {
  const std::string adds = R"(
{:process 0, :type :invoke, :f :add, :value 1}
{:process 0, :type :ok, :f :add, :value 1}
{:process 1, :type :invoke, :f :add, :value 2}
{:process 2, :type :invoke, :f :read, :value nil}
)";
  EXPECT_EQ(VerdictOf(adds + "{:process 2, :type :ok, :f :read, :value #{1 2}}\n", SetModel()),
            kYes);
  EXPECT_EQ(VerdictOf(adds + "{:process 2, :type :ok, :f :read, :value [1]}\n", SetModel()), kYes);
  EXPECT_EQ(VerdictOf(adds + "{:process 2, :type :ok, :f :read, :value [2]}\n", SetModel()), kNo);
}

TEST(Set, RemovedElementIsGone) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :add, :value 1}
{:process 0, :type :ok, :f :add, :value 1}
{:process 0, :type :invoke, :f :remove, :value 1}
{:process 0, :type :ok, :f :remove, :value 1}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value [1]}
)",
                      SetModel()),
            kNo);
}

TEST(Queue, DequeuesComeOutInEnqueueOrder) {
  const std::string enqueues = R"(
{:process 0, :type :invoke, :f :enqueue, :value 1}
{:process 0, :type :ok, :f :enqueue, :value 1}
{:process 0, :type :invoke, :f :enqueue, :value 2}
{:process 0, :type :ok, :f :enqueue, :value 2}
{:process 1, :type :invoke, :f :dequeue, :value nil}
)";
  EXPECT_EQ(VerdictOf(enqueues + "{:process 1, :type :ok, :f :dequeue, :value 1}\n", QueueModel()),
            kYes);
  EXPECT_EQ(VerdictOf(enqueues + "{:process 1, :type :ok, :f :dequeue, :value 2}\n", QueueModel()),
            kNo);
}

TEST(Queue, ConcurrentEnqueuesMayComeOutInEitherOrder) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :enqueue, :value 1}
{:process 1, :type :invoke, :f :enqueue, :value 2}
{:process 0, :type :ok, :f :enqueue, :value 1}
{:process 1, :type :ok, :f :enqueue, :value 2}
{:process 2, :type :invoke, :f :dequeue, :value nil}
{:process 2, :type :ok, :f :dequeue, :value 2}
{:process 2, :type :invoke, :f :dequeue, :value nil}
{:process 2, :type :ok, :f :dequeue, :value 1}
{:process 2, :type :invoke, :f :dequeue, :value nil}
{:process 2, :type :ok, :f :dequeue, :value nil}
)",
                      QueueModel()),
            kYes);
}

TEST(Queue, ElementCannotBeDequeuedTwice) {
  EXPECT_EQ(VerdictOf(R"(
{:process 0, :type :invoke, :f :enqueue, :value 1}
{:process 0, :type :ok, :f :enqueue, :value 1}
{:process 1, :type :invoke, :f :dequeue, :value nil}
{:process 2, :type :invoke, :f :dequeue, :value nil}
{:process 1, :type :ok, :f :dequeue, :value 1}
{:process 2, :type :ok, :f :dequeue, :value 1}
)",
                      QueueModel()),
            kNo);
}

TEST(Counter, ReadsSeeEveryCompletedAddAndMaybeConcurrentOnes) {
  const std::string adds = R"(
{:process 0, :type :invoke, :f :add, :value 2}
{:process 0, :type :ok, :f :add, :value 2}
{:process 1, :type :invoke, :f :add, :value 3}
{:process 1, :type :info, :f :add, :value 3}
{:process 2, :type :invoke, :f :read, :value nil}
)";
  EXPECT_EQ(VerdictOf(adds + "{:process 2, :type :ok, :f :read, :value 2}\n", CounterModel()), kYes);
  EXPECT_EQ(VerdictOf(adds + "{:process 2, :type :ok, :f :read, :value 5}\n", CounterModel()), kYes);
  EXPECT_EQ(VerdictOf(adds + "{:process 2, :type :ok, :f :read, :value 3}\n", CounterModel()), kNo);
}

TEST(Models, UnknownOperationIsAnErrorNotAVerdict) {
  for (const char* name : {"register", "kv", "set", "queue", "counter"}) {
    const CheckResult result = Check(
        "{:process 0, :type :invoke, :f :frobnicate, :value 1, :key 1}\n", *ModelByName(name));
    EXPECT_FALSE(result.error.ok()) << name;
    EXPECT_TRUE(absl::StrContains(result.error.message(), "frobnicate")) << result.error;
  }
}

// ---- A user-defined model ------------------------------------------------------------------

TEST(CustomModel, UserCounterModelGivesTheBuiltInAnswers) {
  ModelSpec<int64_t> spec;
  spec.name = "my-counter";
  spec.step = [](const int64_t& n, const Operation& op, int64_t* next) {
    if (op.f == "add") {
      *next = n + op.input.as_int();
      return true;
    }
    *next = n;
    return op.outcome != Outcome::kOk || op.output == Value(n);
  };
  spec.hash = [](const int64_t& n) { return static_cast<uint64_t>(n); };
  spec.describe = [](const int64_t& n) { return absl::StrCat(n); };
  const Model model = MakeModel(spec);
  const std::string adds = R"(
{:process 0, :type :invoke, :f :add, :value 2}
{:process 0, :type :ok, :f :add, :value 2}
{:process 1, :type :invoke, :f :add, :value 3}
{:process 1, :type :info, :f :add, :value 3}
{:process 2, :type :invoke, :f :read, :value nil}
)";
  EXPECT_EQ(VerdictOf(adds + "{:process 2, :type :ok, :f :read, :value 5}\n", model), kYes);
  const CheckResult result = Check(adds + "{:process 2, :type :ok, :f :read, :value 3}\n", model);
  EXPECT_EQ(result.verdict, kNo);
  EXPECT_EQ(result.model, "my-counter");
}

TEST(CustomModel, ReadOnlyHintGivesTheSameAnswers) {
  ModelSpec<int64_t> spec;
  spec.step = [](const int64_t& v, const Operation& op, int64_t* next) {
    if (op.f == "write") {
      *next = op.input.as_int();
      return true;
    }
    *next = v;
    return op.outcome != Outcome::kOk || op.output == Value(v);
  };
  spec.hash = [](const int64_t& v) { return static_cast<uint64_t>(v); };
  spec.init = -1;
  const Model plain = MakeModel(spec);
  spec.read_only = [](const Operation& op) { return op.f == "read"; };
  const Model hinted = MakeModel(spec);
  const std::string writes = R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :write, :value 2}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 2, :type :ok, :f :read, :value 2}
{:process 2, :type :invoke, :f :read, :value nil}
{:process 0, :type :ok, :f :write, :value 1}
{:process 1, :type :ok, :f :write, :value 2}
)";
  for (const char* last : {"1", "2", "7"}) {
    const std::string edn =
        absl::StrCat(writes, "{:process 2, :type :ok, :f :read, :value ", last, "}\n");
    EXPECT_EQ(VerdictOf(edn, hinted), VerdictOf(edn, plain)) << last;
  }
  EXPECT_EQ(VerdictOf(writes + "{:process 2, :type :ok, :f :read, :value 1}\n", hinted), kYes);
  EXPECT_EQ(VerdictOf(writes + "{:process 2, :type :ok, :f :read, :value 7}\n", hinted), kNo);
}

TEST(Explain, FailureThatRulesOutTheOnlyLinearizationIsNamed) {
  // The read of 1 is explained only by the write that, as it turns out, failed.
  const CheckResult result = Check(R"(
{:process 0, :type :invoke, :f :write, :value 1}
{:process 1, :type :invoke, :f :read, :value nil}
{:process 1, :type :ok, :f :read, :value 1}
{:process 0, :type :fail, :f :write, :value 1}
)");
  ASSERT_EQ(result.verdict, kNo);
  ASSERT_TRUE(result.partitions[0].failing_op.has_value());
  EXPECT_EQ(*result.partitions[0].failing_op, 0u);
  EXPECT_TRUE(absl::StrContains(result.FirstViolation(), "failed, but")) << result.FirstViolation();
}

// ---- Budget ----------------------------------------------------------------------------------

TEST(Budget, ExhaustedStepBudgetGivesUnknown) {
  std::string edn;
  // Many concurrent enqueues and a dequeue of a value nobody enqueued: the search
  // must try many orders (each a different queue) before it can say no.
  for (int p = 0; p < 6; ++p) {
    absl::StrAppend(&edn, "{:process ", p, ", :type :invoke, :f :enqueue, :value ", p, "}\n");
  }
  absl::StrAppend(&edn, "{:process 99, :type :invoke, :f :dequeue, :value nil}\n",
                  "{:process 99, :type :ok, :f :dequeue, :value 1000}\n");
  for (int p = 0; p < 6; ++p) {
    absl::StrAppend(&edn, "{:process ", p, ", :type :ok, :f :enqueue, :value ", p, "}\n");
  }
  CheckOptions tight;
  tight.max_steps = 100;
  EXPECT_EQ(Check(edn, QueueModel(), tight).verdict, Verdict::kUnknown);
  EXPECT_EQ(Check(edn, QueueModel()).verdict, kNo);
}

// ---- P-compositionality: one hard key does not starve the others ---------------------

TEST(Fairness, ViolationInAnEasyKeyIsFoundWhileAHardKeyIsStillSearching) {
  // A queue per key (a user model, partitioned by :key). Key "hard" comes first: 11
  // concurrent enqueues and a dequeue of a value nobody enqueued, so the search must
  // go through a huge number of orders before it can say no. Key "easy" has an
  // obvious violation. The keys are searched in slices, round-robin, so the easy one
  // is decided within the first round, long before the budget ends.
  ModelSpec<std::vector<int64_t>> spec;
  spec.name = "queues";
  spec.step = [](const std::vector<int64_t>& q, const Operation& op, std::vector<int64_t>* next) {
    *next = q;
    if (op.f == "enqueue") {
      next->push_back(op.input.as_int());
      return true;
    }
    if (q.empty()) return false;
    if (op.outcome == Outcome::kOk && Value(q.front()) != op.output) return false;
    next->erase(next->begin());
    return true;
  };
  spec.hash = [](const std::vector<int64_t>& q) {
    uint64_t h = q.size();
    for (int64_t x : q) h = h * 1000003 + static_cast<uint64_t>(x);
    return h;
  };
  spec.partition = [](const Operation& op) { return op.key; };
  std::string edn;
  for (int p = 0; p < 11; ++p) {
    absl::StrAppend(&edn, "{:process ", p, ", :type :invoke, :f :enqueue, :key :hard, :value ", p,
                    "}\n");
  }
  absl::StrAppend(&edn, "{:process 99, :type :invoke, :f :dequeue, :key :hard, :value nil}\n",
                  "{:process 99, :type :ok, :f :dequeue, :key :hard, :value 1000}\n");
  for (int p = 0; p < 11; ++p) {
    absl::StrAppend(&edn, "{:process ", p, ", :type :ok, :f :enqueue, :key :hard, :value ", p,
                    "}\n");
  }
  absl::StrAppend(&edn, R"(
{:process 50, :type :invoke, :f :enqueue, :key :easy, :value 1}
{:process 50, :type :ok, :f :enqueue, :key :easy, :value 1}
{:process 50, :type :invoke, :f :dequeue, :key :easy, :value nil}
{:process 50, :type :ok, :f :dequeue, :key :easy, :value 2}
)");
  CheckOptions options;
  options.time_budget = absl::Milliseconds(500);
  const CheckResult result = Check(edn, MakeModel(spec), options);
  ASSERT_EQ(result.partitions.size(), 2u);
  EXPECT_EQ(result.partitions[0].key, Value::Keyword("hard"));
  EXPECT_EQ(result.partitions[0].verdict, Verdict::kUnknown);
  EXPECT_EQ(result.partitions[1].verdict, kNo);
  EXPECT_TRUE(result.partitions[1].failing_op.has_value());  // Explained, too.
  EXPECT_EQ(result.verdict, kNo);  // A violation anywhere decides, unknowns or not.
  // The hard key kept searching, round after round, after the easy one was decided.
  EXPECT_GT(result.partitions[0].steps, options.slice_steps);
}

}  // namespace
}  // namespace dsim::check
