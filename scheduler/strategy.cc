#include "scheduler/strategy.h"

#include "absl/strings/str_cat.h"

namespace dsim {

const char* DecisionKindName(DecisionKind kind) {
  switch (kind) {
    case DecisionKind::kNextTask: return "next-task";
    case DecisionKind::kTimerOrder: return "timer-order";
    case DecisionKind::kWakeOne: return "wake-one";
    case DecisionKind::kValue: return "value";
  }
  return "unknown";
}

uint64_t RandomStrategy::Choose(const Decision& decision) {
  if (decision.num_options == 0) return rng_.NextBits();
  return rng_.Below(decision.num_options);
}

std::string RandomStrategy::Describe() const { return absl::StrCat("random(seed=", seed_, ")"); }

}  // namespace dsim
