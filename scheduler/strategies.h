// Strategies beyond the seeded random default, and a factory that builds one from a
// short spec string, as DSIM_STRATEGY and SimulationOptions accept.
//
// Example:
//
//   absl::StatusOr<std::shared_ptr<dsim::Strategy>> strategy =
//       dsim::MakeStrategy("roundrobin", /*seed=*/7);
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 7, .strategy = *strategy});
//
// Specs:
//   "random"       RandomStrategy(seed): every choice uniform (the default).
//   "roundrobin"   RoundRobinStrategy: tasks take turns in id order; values from seed.
#ifndef DSIM_SCHEDULER_STRATEGIES_H_
#define DSIM_SCHEDULER_STRATEGIES_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "scheduler/random.h"
#include "scheduler/strategy.h"

namespace dsim {

// Runs the runnable task whose id follows the last one dispatched, cyclically; wakes
// the oldest waiter; fires simultaneous timers in creation order. Values (kValue) come
// from a seeded PRNG, so network models still vary with the seed. A readable baseline.
class RoundRobinStrategy final : public Strategy {
 public:
  explicit RoundRobinStrategy(uint64_t seed) : seed_(seed), rng_(seed) {}

  uint64_t Choose(const Decision& decision) override;
  std::string Describe() const override;

 private:
  uint64_t seed_;
  Random rng_;
  TaskId last_ = kNoTask;
};

// Builds a strategy from a spec (see the list above). An unknown or malformed spec is
// an InvalidArgument error that lists the valid forms.
absl::StatusOr<std::shared_ptr<Strategy>> MakeStrategy(absl::string_view spec, uint64_t seed);

}  // namespace dsim

#endif  // DSIM_SCHEDULER_STRATEGIES_H_
