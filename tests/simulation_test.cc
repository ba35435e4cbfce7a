// Simulation: options, the extension slot, limits, and host lifecycle at the task level
// (pause/resume, crash/restart), which the network layer will build on.
#include "sim/simulation.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "scheduler/notification.h"
#include "sockets/socket.h"

namespace dsim {
namespace {

absl::Duration SinceEpoch(absl::Time t) { return t - Scheduler::Epoch(); }

TEST(Simulation, IsFoundFromTheRunningSchedulerAndOnlyDuringRuns) {
  Simulation sim(SimulationOptions{.seed = 3});
  Simulation* seen = nullptr;
  sim.Spawn("probe", [&] { seen = Simulation::Current(); });
  EXPECT_EQ(Simulation::Current(), nullptr);
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_EQ(seen, &sim);
  EXPECT_EQ(Simulation::Current(), nullptr);
}

TEST(Simulation, BuildsTheStrategyFromTheSpecAndSeed) {
  Simulation random(SimulationOptions{.seed = 12});
  Simulation round_robin(SimulationOptions{.seed = 12, .strategy = "roundrobin"});
  EXPECT_TRUE(absl::StrContains(random.strategy_description(), "12"));
  EXPECT_NE(random.strategy_description(), round_robin.strategy_description());
}

TEST(SimulationDeathTest, RejectsAnInvalidStrategySpec) {
  EXPECT_DEATH(Simulation(SimulationOptions{.strategy = "no-such-strategy"}),
               "SimulationOptions::strategy");
}

TEST(Simulation, StepLimitStopsASpinningRunAndIsRemembered) {
  Simulation sim(SimulationOptions{.max_steps = 50});
  sim.Spawn("spinner", [] {
    for (;;) dsim::Yield();
  });
  const RunResult result = sim.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kStepLimit);
  ASSERT_TRUE(sim.first_failed_run().has_value());
  EXPECT_EQ(sim.first_failed_run()->outcome, RunOutcome::kStepLimit);
}

TEST(Simulation, VirtualTimeLimitStopsARun) {
  Simulation sim(SimulationOptions{.max_virtual_time = absl::Seconds(1)});
  sim.Spawn("sleeper", [] {
    for (;;) dsim::SleepFor(absl::Milliseconds(300));
  });
  EXPECT_EQ(sim.Run().outcome, RunOutcome::kTimeLimit);
  EXPECT_LE(SinceEpoch(sim.Now()), absl::Seconds(1));
}

TEST(Simulation, SuccessfulRunsLeaveNoFailedRun) {
  Simulation sim;
  sim.Spawn("quick", [] { dsim::SleepFor(absl::Milliseconds(1)); });
  EXPECT_TRUE(sim.Run().ok());
  EXPECT_FALSE(sim.first_failed_run().has_value());
  ASSERT_TRUE(sim.last_run().has_value());
  EXPECT_EQ(sim.last_run()->outcome, RunOutcome::kCompleted);
}

// ---- Hosts ---------------------------------------------------------------------------

TEST(SimulationHosts, StartFunctionRunsOnTheHostsOwnGroup) {
  Simulation sim;
  GroupId seen_group = kNoGroup;
  Host* seen_host = nullptr;
  Host& host = sim.AddHost({.name = "kv-1", .start = [&] {
                              seen_group = sim.scheduler().CurrentGroup();
                              seen_host = sim.CurrentHost();
                            }});
  ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
  EXPECT_NE(host.group(), kNoGroup);
  EXPECT_EQ(seen_group, host.group());
  EXPECT_EQ(seen_host, &host);
  EXPECT_EQ(host.id(), 1u);
  EXPECT_EQ(host.incarnation(), 1);
  EXPECT_EQ(sim.trace().GroupName(host.group()), "kv-1");
}

TEST(SimulationHosts, PausedHostsTimersComeDueOnlyAfterResume) {
  Simulation sim;
  absl::Duration woke_at;
  absl::Duration timer_fired_at;
  Host& host = sim.AddHost({.name = "sleepy", .start = [&] {
                              dsim::SleepFor(absl::Milliseconds(10));
                              woke_at = SinceEpoch(dsim::Now());
                            }});
  sim.scheduler().AddTimer(
      Scheduler::Epoch() + absl::Milliseconds(20),
      [&] { timer_fired_at = SinceEpoch(sim.Now()); }, host.group());
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Milliseconds(5));
    EXPECT_TRUE(sim.Pause(host.id()));
    dsim::SleepFor(absl::Milliseconds(45));
    EXPECT_TRUE(sim.Resume(host.id()));
  });
  ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
  EXPECT_EQ(woke_at, absl::Milliseconds(50));
  EXPECT_EQ(timer_fired_at, absl::Milliseconds(50));
}

TEST(SimulationHosts, PausedHostsTasksDoNotRun) {
  Simulation sim;
  std::vector<int64_t> ticks_ms;
  Host& host = sim.AddHost({.name = "ticker", .start = [&] {
                              for (;;) {
                                ticks_ms.push_back(absl::ToInt64Milliseconds(SinceEpoch(dsim::Now())));
                                dsim::SleepFor(absl::Milliseconds(4));
                              }
                            }});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Milliseconds(10));
    sim.Pause(host.id());
    dsim::SleepFor(absl::Milliseconds(20));
    sim.Resume(host.id());
  });
  ASSERT_TRUE(sim.RunUntil(Scheduler::Epoch() + absl::Milliseconds(40)).ok());
  // Ticks at 0, 4, 8; the 12 ms tick is held until the resume at 30; then every 4 ms.
  EXPECT_EQ(ticks_ms, (std::vector<int64_t>{0, 4, 8, 30, 34, 38}));
}

// Sets a flag when destroyed: shows that a crash unwinds the stack.
struct DestructorProbe {
  bool* destroyed;
  ~DestructorProbe() { *destroyed = true; }
};

TEST(SimulationHosts, CrashUnwindsEveryTaskOfTheHostSoDestructorsRun) {
  Simulation sim;
  bool start_destroyed = false;
  bool worker_destroyed = false;
  bool reached_after_block = false;
  Host& host = sim.AddHost({.name = "victim", .start = [&] {
                              DestructorProbe probe{&start_destroyed};
                              dsim::Spawn("victim/worker", [&] {
                                DestructorProbe worker_probe{&worker_destroyed};
                                Notification never;
                                never.WaitForNotification();
                                reached_after_block = true;
                              });
                              dsim::SleepFor(absl::Hours(1));
                              reached_after_block = true;
                            }});
  int bystander_ticks = 0;
  sim.Spawn("bystander", [&] {
    for (int i = 0; i < 10; ++i) {
      dsim::SleepFor(absl::Milliseconds(1));
      ++bystander_ticks;
    }
  });
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Microseconds(2500));
    EXPECT_TRUE(sim.Crash(host.id()));
  });
  ASSERT_TRUE(sim.Run().ok());
  EXPECT_TRUE(start_destroyed);
  EXPECT_TRUE(worker_destroyed);
  EXPECT_FALSE(reached_after_block);
  EXPECT_EQ(bystander_ticks, 10);
  EXPECT_EQ(host.state(), HostState::kCrashed);
  EXPECT_EQ(sim.scheduler().live_tasks(), 0u);
  EXPECT_TRUE(absl::StrContains(sim.trace().LastEventsText(1000), "fault.crash: victim crashed"));
}

TEST(SimulationHosts, CrashCancelsTheHostsTimers) {
  Simulation sim;
  bool fired = false;
  Host& host = sim.AddHost({.name = "h", .start = [] {}});
  sim.scheduler().AddTimer(Scheduler::Epoch() + absl::Milliseconds(100), [&] { fired = true; },
                           host.group());
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Milliseconds(10));
    sim.Crash(host.id());
  });
  ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
  EXPECT_FALSE(fired);
}

TEST(SimulationHosts, RestartRunsTheStartFunctionAgainWithFreshStateInANewGroup) {
  Simulation sim;
  int starts = 0;
  int disk_writes = 0;  // Outside the start function: survives crashes, like a disk.
  std::vector<int> memory_at_start;
  Host& host = sim.AddHost({.name = "db", .start = [&] {
                              ++starts;
                              int memory = 0;  // Fresh in every incarnation.
                              memory_at_start.push_back(memory);
                              for (;;) {
                                ++memory;
                                ++disk_writes;
                                dsim::SleepFor(absl::Milliseconds(1));
                              }
                            }});
  const GroupId first_group = host.group();
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Microseconds(4500));
    sim.Crash(host.id());
    dsim::SleepFor(absl::Milliseconds(10));
    EXPECT_NE(sim.Restart(host.id()), first_group);
  });
  ASSERT_TRUE(sim.RunUntil(Scheduler::Epoch() + absl::Milliseconds(17)).ok());
  EXPECT_EQ(starts, 2);
  EXPECT_EQ(memory_at_start, (std::vector<int>{0, 0}));
  EXPECT_EQ(host.incarnation(), 2);
  EXPECT_EQ(host.state(), HostState::kRunning);
  EXPECT_NE(host.group(), first_group);
  // 5 writes (0..4 ms) before the crash at 4.5 ms, 3 after the restart at 14.5 ms.
  EXPECT_EQ(disk_writes, 8);
  EXPECT_EQ(sim.trace().GroupName(host.group()), "db #2");
}

TEST(SimulationHosts, RestartOfARunningHostIsAReboot) {
  Simulation sim;
  bool destroyed = false;
  int starts = 0;
  Host& host = sim.AddHost({.name = "r", .start = [&] {
                              ++starts;
                              DestructorProbe probe{&destroyed};
                              dsim::SleepFor(absl::Hours(1));
                            }});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Milliseconds(1));
    sim.Restart(host.id());
  });
  ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(starts, 2);
  EXPECT_EQ(host.state(), HostState::kRunning);
}

TEST(SimulationHosts, AHostCanCrashItselfAndUnwindsAtItsNextSchedulingPoint) {
  Simulation sim;
  bool after_crash_call = false;
  bool after_next_point = false;
  sim.AddHost({.name = "suicidal", .start = [&] {
                 sim.Crash(sim.CurrentHost()->id());
                 after_crash_call = true;
                 dsim::Yield();
                 after_next_point = true;
               }});
  ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
  EXPECT_TRUE(after_crash_call);
  EXPECT_FALSE(after_next_point);
}

TEST(SimulationHosts, CrashingAPausedHostStillUnwindsItsTasks) {
  Simulation sim;
  bool destroyed = false;
  Host& host = sim.AddHost({.name = "p", .start = [&] {
                              DestructorProbe probe{&destroyed};
                              for (;;) dsim::SleepFor(absl::Milliseconds(1));
                            }});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Microseconds(1500));
    sim.Pause(host.id());
    dsim::SleepFor(absl::Milliseconds(5));
    sim.Crash(host.id());
  });
  ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
  EXPECT_TRUE(destroyed);
  EXPECT_EQ(sim.scheduler().live_tasks(), 0u);
}

TEST(SimulationHosts, LifecycleCallsReportWhetherTheStateChanged) {
  Simulation sim;
  Host& host = sim.AddHost({.name = "x", .start = [] { dsim::SleepFor(absl::Hours(1)); }});
  EXPECT_FALSE(sim.Resume(host.id()));  // Not paused.
  EXPECT_TRUE(sim.Pause(host.id()));
  EXPECT_FALSE(sim.Pause(host.id()));   // Already paused.
  EXPECT_TRUE(sim.Crash(host.id()));
  EXPECT_FALSE(sim.Crash(host.id()));   // Already crashed.
  EXPECT_FALSE(sim.Pause(host.id()));   // Crashed hosts cannot pause.
  EXPECT_FALSE(sim.Resume(host.id()));
  EXPECT_EQ(host.state(), HostState::kCrashed);
}

// Records every lifecycle call, as the network layer will receive them.
class RecordingObserver : public HostObserver {
 public:
  std::vector<std::string> calls;
  void OnHostAdded(Host& host) override { calls.push_back(absl::StrCat("added ", host.name())); }
  void OnHostCrashed(Host& host, GroupId dead) override {
    calls.push_back(absl::StrCat("crashed ", host.name(), " dead_group_is_current=",
                                 dead == host.group()));
  }
  void OnHostRestarting(Host& host) override {
    calls.push_back(absl::StrCat("restarting ", host.name(), " incarnation ", host.incarnation()));
  }
  void OnHostPaused(Host& host) override { calls.push_back(absl::StrCat("paused ", host.name())); }
  void OnHostResumed(Host& host) override {
    calls.push_back(absl::StrCat("resumed ", host.name()));
  }
};

TEST(SimulationHosts, ObserversSeeEveryLifecycleChangeInOrder) {
  Simulation sim;
  RecordingObserver observer;
  sim.AddHostObserver(&observer);
  Host& host = sim.AddHost({.name = "n1", .start = [] { dsim::SleepFor(absl::Hours(1)); }});
  sim.Pause(host.id());
  sim.Resume(host.id());
  sim.Crash(host.id());
  sim.Restart(host.id());
  EXPECT_EQ(observer.calls, (std::vector<std::string>{
                                "added n1", "paused n1", "resumed n1",
                                "crashed n1 dead_group_is_current=1",
                                "restarting n1 incarnation 2"}));
  sim.RemoveHostObserver(&observer);
  sim.Pause(host.id());
  EXPECT_EQ(observer.calls.size(), 5u);
}

TEST(SimulationHosts, ATaskOfACrashedIncarnationBelongsToNoHost) {
  Simulation sim;
  std::vector<bool> had_host;
  Host& host = sim.AddHost({.name = "z", .start = [&] {
                              struct Check {
                                Simulation* sim;
                                std::vector<bool>* had_host;
                                ~Check() { had_host->push_back(sim->CurrentHost() != nullptr); }
                              } check{&sim, &had_host};
                              had_host.push_back(sim.CurrentHost() != nullptr);
                              dsim::SleepFor(absl::Hours(1));
                            }});
  sim.Spawn("chaos", [&] {
    dsim::SleepFor(absl::Milliseconds(1));
    sim.Crash(host.id());
  });
  ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
  // Alive: on its host. Unwinding after the crash: no host.
  EXPECT_EQ(had_host, (std::vector<bool>{true, false}));
}

// ---- Online checks ---------------------------------------------------------------

TEST(SimulationInvariant, StopsTheRunAtTheStepThatBrokeItAndNamesIt) {
  Simulation sim(SimulationOptions{.seed = 4});
  int balance = 10;
  int withdrawals_after_violation = 0;
  sim.Invariant("balance never negative", [&] { return balance >= 0; });
  sim.Spawn("spender", [&] {
    for (int i = 0; i < 100; ++i) {
      if (balance < 0) ++withdrawals_after_violation;
      balance -= 4;
      dsim::Yield();
    }
  });
  const RunResult result = sim.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_TRUE(result.failed_check);
  EXPECT_TRUE(absl::StartsWith(result.status().message(),
                               "invariant violated: balance never negative"))
      << result.status();
  EXPECT_FALSE(absl::StrContains(result.status().message(), "threw")) << result.status();
  EXPECT_EQ(sim.violation(), "balance never negative");
  // Checked before the step that would go on from -2: the task dispatched then runs to
  // its next scheduling point (one more withdrawal), and the run stops there, not at
  // the end of the loop.
  EXPECT_EQ(withdrawals_after_violation, 1);
  EXPECT_EQ(balance, -6);
}

TEST(SimulationInvariant, IsCheckedWhenARunReturns) {
  Simulation sim;
  bool broken = false;
  sim.Invariant("not broken", [&] { return !broken; });
  sim.Spawn("breaker", [&] { broken = true; });  // The last step of the run.
  const RunResult result = sim.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_TRUE(absl::StartsWith(result.status().message(), "invariant violated: not broken"));
  ASSERT_TRUE(sim.first_failed_run().has_value());
}

TEST(SimulationFail, FromATaskStopsTheTaskAndSaysInvariantViolated) {
  Simulation sim;
  bool went_on = false;
  sim.Spawn("checker", [&] {
    dsim::Fail("stale read: got 3, want 4");
    went_on = true;
  });
  const RunResult result = sim.Run();
  EXPECT_FALSE(went_on);
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_TRUE(absl::StartsWith(result.status().message(),
                               "invariant violated: stale read: got 3, want 4 at simulation_test.cc:"))
      << result.status();
  EXPECT_TRUE(absl::StrContains(result.ToString(), "(in task \"checker\")")) << result.ToString();
  EXPECT_FALSE(absl::StrContains(result.status().message(), "threw")) << result.status();
}

TEST(SimulationFail, MarksTheMomentInTheTrace) {
  Simulation sim;
  sim.Spawn("checker", [] { dsim::Fail("boom"); });
  sim.Run();
  bool found = false;
  for (const TraceEvent& event : sim.trace().events()) {
    if (event.category == "check.violated") {
      found = true;
      EXPECT_EQ(event.index, sim.violation_event());
      EXPECT_TRUE(absl::StartsWith(event.detail, "boom at simulation_test.cc:"));
    }
  }
  EXPECT_TRUE(found);
}

TEST(SimulationFailDeathTest, OutsideARunIsMisuse) {
  EXPECT_DEATH(dsim::Fail("too late"), "outside a run");
}

// ---- State owned by the simulation -------------------------------------------------

// What a sweep body builds: state the tasks block on and use in their destructors.
struct GuardedCounter {
  explicit GuardedCounter(bool* destroyed) : destroyed(destroyed) {}
  ~GuardedCounter() { *destroyed = true; }
  Mutex mu;
  CondVar cv;
  std::vector<int> log;
  bool* destroyed;
};

TEST(SimulationMake, OwnedStateOutlivesTheUnwindingOfTasksThatUseIt) {
  bool destroyed = false;
  bool alive_while_unwinding = false;
  {
    Simulation sim;
    GuardedCounter& state = sim.Make<GuardedCounter>(&destroyed);
    sim.Spawn("waiter", [&] {
      struct Touch {
        GuardedCounter* state;
        bool* alive;
        ~Touch() {
          *alive = !*state->destroyed;
          state->log.push_back(1);
        }
      } touch{&state, &alive_while_unwinding};
      MutexLock lock(&state.mu);
      for (;;) state.cv.Wait(&state.mu);  // Never woken: unwound at teardown.
    }, SpawnOptions{.daemon = true});
    ASSERT_TRUE(sim.RunFor(absl::Seconds(1)).ok());
    EXPECT_FALSE(destroyed);
  }
  EXPECT_TRUE(destroyed);
  EXPECT_TRUE(alive_while_unwinding);
}

TEST(SimulationMake, DestroysNewestFirst) {
  std::vector<int> order;
  struct Recorder {
    Recorder(std::vector<int>* order, int id) : order(order), id(id) {}
    ~Recorder() { order->push_back(id); }
    std::vector<int>* order;
    int id;
  };
  {
    Simulation sim;
    sim.Make<Recorder>(&order, 1);
    sim.Make<Recorder>(&order, 2);
  }
  EXPECT_EQ(order, (std::vector<int>{2, 1}));
}

// ---- Annotations -------------------------------------------------------------------

TEST(SimulationAnnotate, DefaultsToTheCallingTasksHost) {
  Simulation sim;
  Host& host = sim.AddHost({.name = "kv", .start = [&] {
                              Simulation::Current()->Annotate("test.note", "from kv");
                              Simulation::Current()->Annotate("test.sim", "on sim", kNoGroup);
                            },
                            .start_daemon = false});
  sim.Annotate("test.outside", "no task");
  ASSERT_TRUE(sim.Run().ok());
  int seen = 0;
  for (const TraceEvent& event : sim.trace().events()) {
    const GroupId want = event.category == "test.note" ? host.group() : kNoGroup;
    if (!absl::StartsWith(event.category, "test.")) continue;
    EXPECT_EQ(event.group, want) << event.category;
    ++seen;
  }
  EXPECT_EQ(seen, 3);
}

// ---- RunOnHost -------------------------------------------------------------------

TEST(RunOnHost, ASocketTestInThreeLines) {
  std::string received;
  const RunResult result = RunOnHost([&] {
    const int fd = Socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in self{.sin_family = AF_INET, .sin_port = htons(9000)};
    inet_pton(AF_INET, "10.0.0.1", &self.sin_addr);
    ASSERT_EQ(Bind(fd, reinterpret_cast<sockaddr*>(&self), sizeof(self)), 0);
    ASSERT_EQ(Sendto(fd, "ping", 4, 0, reinterpret_cast<sockaddr*>(&self), sizeof(self)), 4);
    char buffer[16];
    const ssize_t n = Recv(fd, buffer, sizeof(buffer), 0);
    received.assign(buffer, n > 0 ? n : 0);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(received, "ping");
}

TEST(RunOnHost, ReturnsTheRunsFailure) {
  const RunResult result = RunOnHost([] { dsim::Fail("wrong answer"); });
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_TRUE(absl::StartsWith(result.status().message(), "invariant violated: wrong answer"));
  const RunResult deadlock = RunOnHost([] {
    Notification never;
    never.WaitForNotification();
  });
  EXPECT_EQ(deadlock.outcome, RunOutcome::kDeadlock);
  EXPECT_TRUE(absl::StrContains(deadlock.ToString(), "on host \"host\"")) << deadlock.ToString();
}

TEST(SimulationReports, ALimitListsWhatKeptRunningNotEveryBlockedDaemon) {
  Simulation sim(SimulationOptions{.max_steps = 40});
  Notification& never = sim.Make<Notification>();
  for (int i = 0; i < 5; ++i) {
    sim.AddHost({.name = absl::StrCat("server-", i), .start = [&never] { never.WaitForNotification(); }});
  }
  sim.Spawn("spinner", [] {
    for (;;) dsim::Yield();
  });
  const RunResult result = sim.Run();
  ASSERT_EQ(result.outcome, RunOutcome::kStepLimit);
  const std::string text = result.ToString();
  EXPECT_TRUE(absl::StrContains(text, "task \"spinner\"")) << text;
  EXPECT_FALSE(absl::StrContains(text, "server-3/start")) << text;
  EXPECT_TRUE(absl::StrContains(text, "(and 5 blocked daemon tasks)")) << text;
}

}  // namespace
}  // namespace dsim
