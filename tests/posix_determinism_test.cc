// DSIM_CHECK_DETERMINISM with //posix linked: code using std::thread, std::chrono and
// getrandom replays exactly; a source //posix cannot capture (the CPU's cycle counter,
// read with rdtsc, never passes through libc) is caught by the check.
#include <sys/random.h>
#include <x86intrin.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "sim/harness.h"

namespace {

using std::chrono::microseconds;

dsim::SweepResult Sweep(bool use_cycle_counter) {
  std::ostringstream log;
  dsim::SweepOptions options;
  options.seeds = 5;
  options.check_determinism = true;
  options.report_to_gtest = false;
  options.record_schedules = false;
  options.log = &log;
  options.env = [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
  dsim::SeedSweep sweep(options);
  return sweep.Run([use_cycle_counter](dsim::Simulation& sim) -> absl::Status {
    std::mutex mu;
    int total = 0;
    sim.Spawn("main", [&] {
      std::thread workers[2];
      for (std::thread& worker : workers) {
        worker = std::thread([&] {
          uint32_t draw = 0;
          getrandom(&draw, sizeof(draw), 0);  // Captured: drawn from the strategy.
          const uint64_t wait = use_cycle_counter ? __rdtsc() % 1000 : draw % 1000;
          std::this_thread::sleep_for(microseconds(wait));
          std::lock_guard<std::mutex> lock(mu);
          ++total;
        });
      }
      for (std::thread& worker : workers) worker.join();
    });
    return sim.Run().status();
  });
}

TEST(PosixDeterminism, CapturedSourcesReplayExactly) {
  const dsim::SweepResult result = Sweep(false);
  EXPECT_TRUE(result.ok());
  for (const dsim::SeedOutcome& outcome : result.outcomes) {
    EXPECT_FALSE(outcome.nondeterministic) << outcome.report;
  }
}

TEST(PosixDeterminism, TheCheckCatchesAnUncapturedCycleCounter) {
  const dsim::SweepResult result = Sweep(true);
  EXPECT_FALSE(result.ok());
  int caught = 0;
  for (const dsim::SeedOutcome& outcome : result.outcomes) caught += outcome.nondeterministic;
  EXPECT_GT(caught, 0);
}

}  // namespace
