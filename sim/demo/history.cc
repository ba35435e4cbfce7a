#include "sim/demo/history.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "scheduler/scheduler.h"

namespace dsim::demo {
namespace {

const char* Verb(Operation::Kind kind) {
  return kind == Operation::Kind::kPut ? "wrote" : "read";
}

// `client 1 wrote x = "c1.4" (version 3.c1)`.
std::string Describe(const Operation& op) {
  return absl::StrCat("client ", op.client, " ", Verb(op.kind), " ", op.key, " = \"", op.value,
                      "\" (version ", op.version.ToString(), ")");
}

}  // namespace

std::string FormatVirtualTime(absl::Time time) {
  return absl::StrFormat("%.3fs", absl::ToDoubleSeconds(time - Scheduler::Epoch()));
}

int History::Count(Operation::Kind kind, bool ok) const {
  return static_cast<int>(std::count_if(
      operations_.begin(), operations_.end(),
      [&](const Operation& op) { return op.kind == kind && op.ok == ok; }));
}

absl::Status History::Check() const {
  // Reads in the order they began (ties by client), so the report names the earliest.
  std::vector<const Operation*> reads;
  for (const Operation& op : operations_) {
    if (op.kind == Operation::Kind::kGet && op.ok) reads.push_back(&op);
  }
  std::stable_sort(reads.begin(), reads.end(), [](const Operation* a, const Operation* b) {
    return a->start != b->start ? a->start < b->start : a->client < b->client;
  });
  for (const Operation* read : reads) {
    absl::Status verdict = CheckRead(*read);
    if (!verdict.ok()) return verdict;
  }
  return absl::OkStatus();
}

absl::Status History::CheckRead(const Operation& read) const {
  bool written = read.version == Version{};
  // The newest operation on the key that completed before the read began.
  const Operation* newest_before = nullptr;
  for (const Operation& op : operations_) {
    if (op.key != read.key) continue;
    if (op.kind == Operation::Kind::kPut && op.value == read.value) written = true;
    if (!op.ok || op.end >= read.start) continue;
    if (newest_before == nullptr || newest_before->version < op.version) newest_before = &op;
  }
  if (!written) {
    return absl::DataLossError(absl::StrCat("read of a value nobody wrote: ", Describe(read),
                                            " at ", FormatVirtualTime(read.start)));
  }
  if (newest_before != nullptr && read.version < newest_before->version) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stale read: ", Describe(read), " at ", FormatVirtualTime(read.start), ", but ",
        Describe(*newest_before), " by ", FormatVirtualTime(newest_before->end)));
  }
  return absl::OkStatus();
}

}  // namespace dsim::demo
