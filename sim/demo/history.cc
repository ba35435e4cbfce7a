#include "sim/demo/history.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "scheduler/scheduler.h"

namespace dsim::demo {

std::string FormatVirtualTime(absl::Time time) {
  return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(time - Scheduler::Epoch()));
}

int History::Count(Operation::Kind kind, bool ok) const {
  return static_cast<int>(std::count_if(
      operations_.begin(), operations_.end(),
      [&](const Operation& op) { return op.kind == kind && op.ok == ok; }));
}

check::History History::ToCheckHistory() const {
  std::vector<check::Operation> ops;
  for (const Operation& op : operations_) {
    check::Operation c;
    c.process = op.client;
    c.key = check::Value(op.key);
    c.call_time_ns = absl::ToInt64Nanoseconds(op.start - Scheduler::Epoch());
    c.return_time_ns = absl::ToInt64Nanoseconds(op.end - Scheduler::Epoch());
    c.outcome = op.ok ? check::Outcome::kOk : check::Outcome::kInfo;
    if (op.kind == Operation::Kind::kPut) {
      c.f = "write";
      c.input = check::Value(op.value);
      c.output = c.input;
    } else {
      c.f = "read";
      // A key never written reads as the register's initial nil.
      if (op.ok && op.version != Version{}) c.output = check::Value(op.value);
    }
    ops.push_back(std::move(c));
  }
  return check::History::FromIntervals(ops);
}

absl::Status History::Check() const { return CheckEvents(ToCheckHistory()); }

absl::Status CheckEvents(const check::History& history, check::CheckResult* result) {
  check::CheckOptions options;
  // Deterministic: a few hundred operations need thousands of steps, not millions.
  options.time_budget = absl::InfiniteDuration();
  options.max_steps = 50'000'000;
  check::CheckResult checked = check::CheckLinearizability(history, check::KvModel(), options);
  absl::Status status;
  if (!checked.error.ok()) {
    status = absl::InternalError(absl::StrCat("history cannot be checked: ",
                                              checked.error.message()));
  } else if (checked.verdict == check::Verdict::kNotLinearizable) {
    status = absl::FailedPreconditionError(
        absl::StrCat(checked.FirstViolation(), "\n", checked.Explain()));
  } else if (checked.verdict == check::Verdict::kUnknown) {
    status = absl::DeadlineExceededError(
        absl::StrCat("linearizability unknown: the checker's step budget ran out\n",
                     checked.Explain()));
  }
  if (result != nullptr) *result = std::move(checked);
  return status;
}

}  // namespace dsim::demo
