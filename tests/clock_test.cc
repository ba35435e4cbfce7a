// Per-host clocks: what a host's tasks read and how long their waits last, against
// true virtual time.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "scheduler/clock.h"
#include "scheduler/mutex.h"
#include "scheduler/scheduler.h"
#include "sim/simulation.h"

namespace dsim {
namespace {

const absl::Time kEpoch = Scheduler::Epoch();

TEST(HostClock, DriftScalesElapsedTimeExactly) {
  HostClock clock(kEpoch);
  clock.SetDrift(kEpoch, 1'000'000);  // 1000 ppm fast.
  EXPECT_EQ(clock.WallAt(kEpoch + absl::Seconds(1)), kEpoch + absl::Seconds(1) + absl::Milliseconds(1));
  EXPECT_EQ(clock.MonotonicAt(kEpoch + absl::Seconds(2)), absl::Seconds(2) + absl::Milliseconds(2));
  EXPECT_EQ(clock.TrueDuration(absl::Milliseconds(1001)), absl::Seconds(1));
  const absl::Time wall = kEpoch + absl::Seconds(5);
  const absl::Time when = clock.TrueTimeOfWall(wall, kEpoch);
  EXPECT_GE(clock.WallAt(when), wall);
  EXPECT_LT(clock.WallAt(when - absl::Nanoseconds(1)), wall);
}

TEST(HostClock, StepsMoveTheWallClockButNeverTheMonotonicClock) {
  HostClock clock(kEpoch);
  const absl::Time t1 = kEpoch + absl::Seconds(10);
  clock.Step(t1, absl::Seconds(-3));
  EXPECT_EQ(clock.WallAt(t1), t1 - absl::Seconds(3));
  EXPECT_EQ(clock.MonotonicAt(t1), absl::Seconds(10));
  EXPECT_EQ(clock.MonotonicAt(t1 + absl::Seconds(1)), absl::Seconds(11));
  clock.Reboot(t1 + absl::Seconds(1));
  EXPECT_EQ(clock.MonotonicAt(t1 + absl::Seconds(3)), absl::Seconds(2));
}

TEST(HostClock, ChangingDriftKeepsEarlierReadings) {
  HostClock clock(kEpoch);
  clock.SetDrift(kEpoch, 500'000);
  const absl::Time t = kEpoch + absl::Seconds(2);
  const absl::Time before = clock.WallAt(t);
  clock.SetDrift(t, -500'000);
  EXPECT_EQ(clock.WallAt(t), before);
  EXPECT_EQ(clock.WallAt(t + absl::Seconds(2)), before + absl::Seconds(2) - absl::Milliseconds(1));
}

// Readings of one task on a host, in true time and host time.
struct Readings {
  absl::Time true_before, true_after, wall_before, wall_after;
  absl::Duration mono_before, mono_after;
};

TEST(SimulationClocks, HostTasksReadTheirHostsClockAndOthersReadTrueTime) {
  SimulationOptions options{.seed = 1};
  options.clocks.fixed.push_back({.host = "skewed", .offset = absl::Seconds(-7), .drift_ppm = 10'000});
  Simulation sim(options);
  Readings r;
  Host& host = sim.AddHost({.name = "skewed", .start = [&] {
    r.true_before = sim.Now();
    r.wall_before = dsim::Now();
    r.mono_before = dsim::MonotonicNow();
    dsim::SleepFor(absl::Seconds(1));                 // One second of the host's time.
    r.true_after = sim.Now();
    r.wall_after = dsim::Now();
    r.mono_after = dsim::MonotonicNow();
  }, .start_daemon = false});
  absl::Time driver_now;
  sim.Spawn("driver", [&] { driver_now = dsim::Now(); });
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_EQ(driver_now, kEpoch);                      // Not on a host: true time.
  EXPECT_EQ(r.wall_before, kEpoch - absl::Seconds(7));
  EXPECT_EQ(r.wall_after - r.wall_before, absl::Seconds(1));
  EXPECT_EQ(r.mono_after - r.mono_before, absl::Seconds(1));
  // 1% fast: one host second is 1/1.01 s of true time (rounded up to the nanosecond).
  EXPECT_EQ(r.true_after - r.true_before, absl::Nanoseconds(990099010));
  EXPECT_EQ(sim.clock(host.id()).drift_ppb(), 10'000'000);
}

TEST(SimulationClocks, DeadlinesAndTimeoutsAreOnTheHostsClock) {
  SimulationOptions options{.seed = 1};
  options.clocks.fixed.push_back({.host = "h", .offset = absl::Hours(1), .drift_ppm = -20'000});
  Simulation sim(options);
  std::vector<absl::Duration> waited;  // True durations.
  Mutex mu;
  CondVar cv;
  sim.AddHost({.name = "h", .start = [&] {
    absl::Time start = sim.Now();
    dsim::SleepUntil(dsim::Now() + absl::Seconds(1));  // A host deadline.
    waited.push_back(sim.Now() - start);
    start = sim.Now();
    MutexLock lock(&mu);
    EXPECT_TRUE(cv.WaitWithTimeout(&mu, absl::Seconds(1)));
    waited.push_back(sim.Now() - start);
    start = sim.Now();
    EXPECT_TRUE(cv.WaitWithDeadline(&mu, dsim::Now() + absl::Seconds(1)));
    waited.push_back(sim.Now() - start);
  }, .start_daemon = false});
  ASSERT_TRUE(sim.Run().ok());
  ASSERT_EQ(waited.size(), 3u);
  for (absl::Duration d : waited) EXPECT_EQ(d, absl::Nanoseconds(1020408164)) << d;  // 1/0.98 s
}

TEST(SimulationClocks, AStepBackwardsMovesNowButNotMonotonicNow) {
  Simulation sim(SimulationOptions{.seed = 1});
  std::vector<absl::Time> wall;
  std::vector<absl::Duration> mono;
  Host& h = sim.AddHost({.name = "h", .start = [&] {
    for (int i = 0; i < 3; ++i) {
      wall.push_back(dsim::Now());
      mono.push_back(dsim::MonotonicNow());
      dsim::SleepFor(absl::Seconds(1));
    }
  }, .start_daemon = false});
  sim.Spawn("ntp", [&] {
    dsim::SleepFor(absl::Milliseconds(1500));
    sim.StepClock(h.id(), absl::Seconds(-10));
  });
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_EQ(wall[1] - wall[0], absl::Seconds(1));
  EXPECT_EQ(wall[2] - wall[1], absl::Seconds(-9));
  EXPECT_EQ(mono[2] - mono[1], absl::Seconds(1));
  EXPECT_TRUE(absl::StrContains(sim.trace().LastEventsText(50), "h clock steps -10s"))
      << sim.trace().LastEventsText(50);
}

TEST(SimulationClocks, MonotonicClockRestartsAtReboot) {
  Simulation sim(SimulationOptions{.seed = 1});
  std::vector<absl::Duration> boots;
  Host& h = sim.AddHost({.name = "h", .start = [&] { boots.push_back(dsim::MonotonicNow()); },
                         .start_daemon = false});
  sim.clock(h.id());  // Give it a clock.
  sim.Spawn("reboot", [&] {
    dsim::SleepFor(absl::Seconds(3));
    sim.Restart(h.id());
  });
  ASSERT_TRUE(sim.Run().ok());
  ASSERT_EQ(boots.size(), 2u);
  EXPECT_EQ(boots[0], absl::ZeroDuration());
  EXPECT_EQ(boots[1], absl::ZeroDuration());
}

TEST(SimulationClocks, RandomSkewsAndJumpsAreSeededFaultDecisionsInTheTrace) {
  SimulationOptions options{.seed = 5};
  options.clocks.random_offset_max = absl::Milliseconds(100);
  options.clocks.random_drift_ppm_max = 500;
  options.clocks.jumps_max = 3;
  options.clocks.jump_window = absl::Seconds(2);
  int skews = 0, jumps = 0, hosts_with_skew = 0;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    options.seed = seed;
    Simulation sim(options);
    Host& a = sim.AddHost({.name = "a", .start = [] {}});
    Host& b = sim.AddHost({.name = "b", .start = [] {}});
    sim.RunFor(absl::Seconds(3));
    for (HostId id : {a.id(), b.id()}) {
      HostClock& clock = sim.clock(id);
      EXPECT_LE(std::abs(clock.drift_ppb()), 500'000);
      hosts_with_skew += clock.drift_ppb() != 0;
    }
    const std::string text = sim.trace().LastEventsText(1000);
    for (size_t at = 0; (at = text.find("fault.clock.skew", at)) != std::string::npos; ++at) ++skews;
    for (size_t at = 0; (at = text.find("fault.clock.jump", at)) != std::string::npos; ++at) ++jumps;
    const RunCoverage coverage = sim.coverage().Summary();
    EXPECT_FALSE(coverage.faults.empty());
  }
  EXPECT_GT(hosts_with_skew, 35);
  EXPECT_GT(skews, 35);
  EXPECT_GT(jumps, 20);
}

}  // namespace
}  // namespace dsim
