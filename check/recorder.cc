#include "check/recorder.h"

#include "scheduler/internal/check.h"
#include "scheduler/scheduler.h"

namespace dsim::check {
namespace {

std::optional<int64_t> VirtualNanos() {
  if (Scheduler::Current() == nullptr) return std::nullopt;
  return absl::ToInt64Nanoseconds(Scheduler::Current()->Now() - Scheduler::Epoch());
}

}  // namespace

PendingOp::PendingOp(PendingOp&& other) noexcept
    : recorder_(other.recorder_), invocation_(std::move(other.invocation_)) {
  other.recorder_ = nullptr;
}

PendingOp::~PendingOp() {
  if (recorder_ != nullptr) Info();
}

void PendingOp::Complete(EventType type, Value value) {
  DSIM_MISUSE(recorder_ != nullptr, "operation ", invocation_.f, " of process ",
              invocation_.process, " completed twice (or after it was moved from)");
  Event completion = invocation_;
  completion.type = type;
  completion.value = std::move(value);
  recorder_->Append(std::move(completion));
  recorder_ = nullptr;
}

void PendingOp::Ok(Value result) {
  Complete(EventType::kOk, result.is_nil() && invocation_.f != "read" &&
                                   invocation_.f != "dequeue"
                               ? invocation_.value
                               : std::move(result));
}

void PendingOp::Fail() { Complete(EventType::kFail, invocation_.value); }

void PendingOp::Info() { Complete(EventType::kInfo, invocation_.value); }

PendingOp Recorder::Invoke(int64_t process, std::string f, Value input,
                           std::optional<Value> key) {
  Event invocation{.process = process, .type = EventType::kInvoke, .f = std::move(f),
                   .value = std::move(input), .key = std::move(key)};
  Append(invocation);
  return PendingOp(this, std::move(invocation));
}

void Recorder::Append(Event event) {
  event.time_ns = VirtualNanos();
  history_.Add(std::move(event));
}

}  // namespace dsim::check
