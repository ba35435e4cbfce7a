// A long sweep, tagged "manual" (not in the default suite): thousands of seeds of a
// contended workload, every seed run twice under the determinism check, on every core.
//   ./bazelw test //tests:harness_long_sweep_test --test_output=streamed
// Run the binary in a terminal to see the progress line.
#include <gtest/gtest.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "sim/harness.h"

namespace dsim {
namespace {

TEST(LongSweep, ContendedWorkloadIsDeterministicOverThousandsOfSeeds) {
  SweepOptions options;
  options.seeds = 3000;
  options.jobs = 0;  // One thread per core.
  options.check_determinism = true;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) {
    auto mu = std::make_shared<Mutex>();
    for (int t = 0; t < 6; ++t) {
      sim.Spawn(absl::StrCat("worker-", t), [&sim, mu] {
        for (int round = 0; round < 50; ++round) {
          dsim::SleepFor(absl::Microseconds(sim.random().Below(100)));
          MutexLock lock(mu.get());
          dsim::Yield();
        }
      });
    }
    return sim.Run().status();
  });
  EXPECT_TRUE(result.ok());
}

}  // namespace
}  // namespace dsim
