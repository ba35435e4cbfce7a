#include "scheduler/strategies.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace dsim {

uint64_t RoundRobinStrategy::Choose(const Decision& decision) {
  switch (decision.kind) {
    case DecisionKind::kValue:
      return decision.num_options == 0 ? rng_.NextBits() : rng_.Below(decision.num_options);
    case DecisionKind::kWakeOne:
    case DecisionKind::kTimerOrder: {
      // Oldest first: the smallest identity.
      const auto& c = decision.candidates;
      return std::min_element(c.begin(), c.end()) - c.begin();
    }
    case DecisionKind::kNextTask: {
      // The smallest id above the last one run, else the smallest id (wrap around).
      const auto& c = decision.candidates;
      size_t best = c.size();
      size_t smallest = 0;
      for (size_t i = 0; i < c.size(); ++i) {
        if (c[i] < c[smallest]) smallest = i;
        if (c[i] > last_ && (best == c.size() || c[i] < c[best])) best = i;
      }
      const size_t pick = best == c.size() ? smallest : best;
      last_ = c[pick];
      return pick;
    }
  }
  return 0;
}

std::string RoundRobinStrategy::Describe() const {
  return absl::StrCat("roundrobin(seed=", seed_, ")");
}

absl::StatusOr<std::shared_ptr<Strategy>> MakeStrategy(absl::string_view spec, uint64_t seed) {
  if (spec.empty() || spec == "random") return std::make_shared<RandomStrategy>(seed);
  if (spec == "roundrobin" || spec == "round-robin") {
    return std::make_shared<RoundRobinStrategy>(seed);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown strategy \"", spec, "\"; valid: random, roundrobin"));
}

}  // namespace dsim
