// The scheduler's contract: seeded order, virtual time, timers, run results.
#include "scheduler/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/mutex.h"
#include "scheduler/notification.h"
#include "scheduler/random.h"
#include "tests/testing/event_log.h"

namespace dsim {
namespace {

using ::dsim::testing::EventLog;
using ::testing::HasSubstr;

// A small program with real choices in it: producers and consumers on a bounded buffer
// (mutex + condition variables), sleeps of different lengths, yields and a timer.
void SpawnBoundedBufferProgram(Scheduler& scheduler, EventLog& log, Mutex& mu, CondVar& not_empty,
                               CondVar& not_full, std::vector<int>& buffer) {
  constexpr size_t kCapacity = 2;
  for (int p = 0; p < 3; ++p) {
    scheduler.Spawn(absl::StrCat("producer-", p), [&, p] {
      for (int i = 0; i < 4; ++i) {
        dsim::SleepFor(absl::Microseconds(10 * (p + 1)));
        MutexLock lock(&mu);
        while (buffer.size() >= kCapacity) not_full.Wait(&mu);
        buffer.push_back(p * 100 + i);
        log.Note(absl::StrCat("put ", p * 100 + i));
        not_empty.Signal();
      }
    });
  }
  for (int c = 0; c < 2; ++c) {
    scheduler.Spawn(absl::StrCat("consumer-", c), [&, c] {
      for (int i = 0; i < 6; ++i) {
        MutexLock lock(&mu);
        while (buffer.empty()) not_empty.Wait(&mu);
        log.Note(absl::StrCat("consumer-", c, " got ", buffer.front()));
        buffer.erase(buffer.begin());
        not_full.Signal();
      }
      Yield();
    });
  }
  scheduler.AddTimer(Scheduler::Epoch() + absl::Microseconds(15), [&] { log.Note("tick"); });
}

std::string RunBoundedBuffer(uint64_t seed, RunResult* result_out = nullptr) {
  Mutex mu;
  CondVar not_empty, not_full;
  std::vector<int> buffer;
  EventLog log;
  Scheduler scheduler(SchedulerOptions{.seed = seed});
  scheduler.AddListener(&log);
  SpawnBoundedBufferProgram(scheduler, log, mu, not_empty, not_full, buffer);
  RunResult result = scheduler.Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_FALSE(log.clock_went_backwards());
  if (result_out != nullptr) *result_out = result;
  return log.Text();
}

TEST(SchedulerDeterminism, SameSeedGivesIdenticalEventTrace) {
  for (uint64_t seed : {1, 2, 99, 123456789}) {
    const std::string first = RunBoundedBuffer(seed);
    const std::string second = RunBoundedBuffer(seed);
    ASSERT_FALSE(first.empty());
    EXPECT_EQ(first, second) << "seed " << seed;
  }
}

// The user-visible order of a bounded-buffer run; `watched` adds a listener, which
// sends every decision through the Strategy interface instead of the scheduler's
// inline draw for the default RandomStrategy.
std::string BoundedBufferNotes(uint64_t seed, bool watched) {
  Mutex mu;
  CondVar not_empty, not_full;
  std::vector<int> buffer;
  EventLog notes;     // Not a listener: only the program's own notes.
  EventLog watcher;
  Scheduler scheduler(SchedulerOptions{.seed = seed});
  if (watched) scheduler.AddListener(&watcher);
  SpawnBoundedBufferProgram(scheduler, notes, mu, not_empty, not_full, buffer);
  RunResult result = scheduler.Run();
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(watched, !watcher.lines().empty());
  return notes.Text();
}

TEST(SchedulerDeterminism, DefaultStrategyDecidesTheSameWithOrWithoutListeners) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const std::string watched = BoundedBufferNotes(seed, true);
    ASSERT_FALSE(watched.empty());
    EXPECT_EQ(watched, BoundedBufferNotes(seed, false)) << "seed " << seed;
  }
}

TEST(SchedulerDeterminism, DifferentSeedsGiveDifferentInterleavings) {
  std::set<std::string> traces;
  constexpr int kSeeds = 30;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) traces.insert(RunBoundedBuffer(seed));
  // Not every pair must differ, but the seed must drive the interleaving.
  EXPECT_GE(traces.size(), kSeeds * 9 / 10);
}

TEST(SchedulerDeterminism, TraceRecordsDecisionsWithCandidates) {
  const std::string trace = RunBoundedBuffer(5);
  EXPECT_THAT(trace, HasSubstr("decide next-task ["));
  EXPECT_THAT(trace, HasSubstr("block consumer-"));
  EXPECT_THAT(trace, HasSubstr("user tick"));
}

TEST(SchedulerClock, VirtualTimeNeverGoesBackwards) {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    absl::Time last = scheduler.Now();
    bool monotonic = true;
    for (int i = 0; i < 20; ++i) {
      scheduler.Spawn(absl::StrCat("t", i), [&, i] {
        for (int j = 0; j < 5; ++j) {
          dsim::SleepFor(absl::Microseconds((i * 7 + j * 13) % 17));
          if (Now() < last) monotonic = false;
          last = Now();
        }
      });
    }
    ASSERT_TRUE(scheduler.Run().ok());
    EXPECT_TRUE(monotonic) << "seed " << seed;
  }
}

TEST(SchedulerClock, StartsAtTheFixedEpoch) {
  Scheduler scheduler;
  EXPECT_EQ(scheduler.Now(), absl::FromCivil(absl::CivilSecond(2000, 1, 1, 0, 0, 0),
                                             absl::UTCTimeZone()));
}

TEST(SchedulerClock, SleepWakesExactlyAtItsDeadline) {
  Scheduler scheduler;
  std::vector<std::string> errors;
  for (int i = 0; i < 10; ++i) {
    scheduler.Spawn(absl::StrCat("sleeper-", i), [&, i] {
      const absl::Duration nap = absl::Nanoseconds(1) + absl::Milliseconds(i * 3);
      const absl::Time start = Now();
      dsim::SleepFor(nap);
      if (Now() != start + nap) errors.push_back(absl::StrCat("sleeper-", i, " woke late"));
      const absl::Time deadline = Now() + absl::Seconds(i);
      dsim::SleepUntil(deadline);
      if (Now() != deadline) errors.push_back(absl::StrCat("sleeper-", i, " missed SleepUntil"));
    });
  }
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_TRUE(errors.empty()) << errors.front();
  EXPECT_EQ(scheduler.Now(),
            Scheduler::Epoch() + absl::Nanoseconds(1) + absl::Milliseconds(27) + absl::Seconds(9));
}

TEST(SchedulerClock, ClockJumpsToTheEarliestTimerWhenIdle) {
  Scheduler scheduler;
  scheduler.Spawn("sleeper", [] { dsim::SleepFor(absl::Hours(5)); });
  const RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kCompleted);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Hours(5));
  EXPECT_LT(result.steps, 5u);
}

std::vector<int> SimultaneousTimerOrder(uint64_t seed) {
  Scheduler scheduler(SchedulerOptions{.seed = seed});
  std::vector<int> order;
  for (int i = 0; i < 8; ++i) {
    scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1), [&order, i] { order.push_back(i); });
  }
  EXPECT_EQ(scheduler.Run().outcome, RunOutcome::kIdle);  // No tasks: runs until idle.
  EXPECT_EQ(order.size(), 8u);
  return order;
}

TEST(SchedulerTimers, SimultaneousTimersFireInASeedDependentOrder) {
  std::set<std::vector<int>> orders;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const std::vector<int> order = SimultaneousTimerOrder(seed);
    EXPECT_EQ(order, SimultaneousTimerOrder(seed)) << "seed " << seed;
    orders.insert(order);
  }
  EXPECT_GE(orders.size(), 15u);
}

TEST(SchedulerTimers, CancelledTimerNeverFires) {
  Scheduler scheduler;
  int fired = 0;
  const TimerId keep = scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1), [&] { ++fired; });
  const TimerId cancel =
      scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1), [&] { fired += 100; });
  EXPECT_TRUE(scheduler.CancelTimer(cancel));
  EXPECT_FALSE(scheduler.CancelTimer(cancel));
  scheduler.Run();
  EXPECT_EQ(fired, 1);
  EXPECT_FALSE(scheduler.CancelTimer(keep));  // Already fired.
}

TEST(SchedulerTimers, TimerCallbackCanSpawnAndWakeTasks) {
  Scheduler scheduler;
  Notification ready;
  bool worker_ran = false;
  scheduler.Spawn("waiter", [&] { ready.WaitForNotification(); });
  scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(2), [&] {
    ready.Notify();
    scheduler.Spawn("worker", [&] { worker_ran = true; });
  });
  EXPECT_TRUE(scheduler.Run().ok());
  EXPECT_TRUE(worker_ran);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Seconds(2));
}

TEST(SchedulerRun, RunForStopsAtTheRequestedTime) {
  Scheduler scheduler;
  int ticks = 0;
  scheduler.Spawn("ticker", [&] {
    for (;;) {
      dsim::SleepFor(absl::Seconds(1));
      ++ticks;
    }
  }, SpawnOptions{.daemon = true});
  RunResult result = scheduler.RunFor(absl::Milliseconds(3500));
  EXPECT_EQ(result.outcome, RunOutcome::kReachedTime);
  EXPECT_EQ(ticks, 3);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Milliseconds(3500));
  result = scheduler.RunUntil(Scheduler::Epoch() + absl::Seconds(10));
  EXPECT_EQ(result.outcome, RunOutcome::kReachedTime);
  EXPECT_EQ(ticks, 10);
}

TEST(SchedulerRun, RunUntilReportsIdleWhenNothingIsLeft) {
  Scheduler scheduler;
  scheduler.Spawn("short", [] { dsim::SleepFor(absl::Seconds(1)); });
  const RunResult result = scheduler.RunFor(absl::Minutes(1));
  EXPECT_EQ(result.outcome, RunOutcome::kIdle);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Seconds(1));
}

TEST(SchedulerRun, RunEndsWhenNonDaemonTasksFinishEvenIfDaemonsBlock) {
  Scheduler scheduler;
  Notification never;
  scheduler.Spawn("server", [&] { never.WaitForNotification(); }, SpawnOptions{.daemon = true});
  scheduler.Spawn("client", [] { dsim::SleepFor(absl::Seconds(1)); });
  EXPECT_EQ(scheduler.Run().outcome, RunOutcome::kCompleted);
  scheduler.Shutdown();  // The daemon still waits on `never`.
}

TEST(SchedulerRun, DeadlockReportNamesEveryBlockedTaskAndWhere) {
  Mutex a, b;
  Notification never;
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  scheduler.Spawn("client-1", [&] {
    MutexLock first(&a);
    dsim::SleepFor(absl::Seconds(1));
    MutexLock second(&b);
  });
  scheduler.Spawn("client-2", [&] {
    MutexLock first(&b);
    dsim::SleepFor(absl::Seconds(1));
    MutexLock second(&a);
  });
  const int waiter_line = __LINE__ + 1;
  scheduler.Spawn("waiter", [&] { never.WaitForNotification(); });
  scheduler.Spawn("idle-server", [&] { never.WaitForNotification(); },
                  SpawnOptions{.daemon = true});
  const RunResult result = scheduler.Run();
  ASSERT_EQ(result.outcome, RunOutcome::kDeadlock);
  ASSERT_EQ(result.tasks.size(), 3u);  // The daemon is not part of the deadlock.
  const std::string report = result.ToString();
  EXPECT_THAT(report, HasSubstr("deadlock at virtual time +1s"));
  EXPECT_THAT(report, HasSubstr("task \"client-1\" blocked in Mutex::Lock at scheduler_test.cc:"));
  EXPECT_THAT(report, HasSubstr("task \"client-2\" blocked in Mutex::Lock at scheduler_test.cc:"));
  EXPECT_THAT(report, HasSubstr(absl::StrCat("task \"waiter\" blocked in "
                                             "Notification::WaitForNotification at "
                                             "scheduler_test.cc:",
                                             waiter_line)));
  EXPECT_THAT(report, ::testing::Not(HasSubstr("idle-server")));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  scheduler.Shutdown();
}

TEST(SchedulerRun, StepLimitListsTheLiveTasks) {
  Scheduler scheduler(SchedulerOptions{.seed = 1, .max_steps = 100});
  for (int i = 0; i < 2; ++i) {
    scheduler.Spawn(absl::StrCat("spinner-", i), [] {
      for (;;) Yield();
    });
  }
  const RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kStepLimit);
  EXPECT_EQ(result.steps, 100u);
  ASSERT_EQ(result.tasks.size(), 2u);
  EXPECT_THAT(result.ToString(), HasSubstr("task \"spinner-0\" runnable"));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(SchedulerRun, VirtualTimeLimitStopsBeforePassingIt) {
  Scheduler scheduler(SchedulerOptions{.max_virtual_time = absl::Seconds(10)});
  scheduler.Spawn("ticker", [] {
    for (;;) dsim::SleepFor(absl::Seconds(3));
  });
  const RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTimeLimit);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Seconds(9));
  ASSERT_EQ(result.tasks.size(), 1u);
  EXPECT_THAT(result.ToString(), HasSubstr("task \"ticker\" blocked in SleepUntil"));
}

TEST(SchedulerRun, ExceptionEscapingATaskStopsTheRunAndNamesTheTask) {
  Scheduler scheduler;
  bool other_finished = false;
  scheduler.Spawn("fragile", [] {
    dsim::SleepFor(absl::Seconds(1));
    throw std::runtime_error("replica diverged");
  });
  scheduler.Spawn("slow", [&] {
    dsim::SleepFor(absl::Seconds(5));
    other_finished = true;
  });
  const RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_EQ(result.failed_task_name, "fragile");
  EXPECT_EQ(result.failure, "replica diverged");
  EXPECT_THAT(result.ToString(), HasSubstr("task \"fragile\" threw: replica diverged"));
  EXPECT_FALSE(other_finished);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Seconds(1));
}

TEST(SchedulerRun, ExceptionInATimerCallbackIsReported) {
  Scheduler scheduler;
  scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1),
                     [] { throw std::logic_error("bad callback"); });
  const RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_THAT(result.ToString(), HasSubstr("a timer callback threw: bad callback"));
}

TEST(SchedulerRun, AThrowNotDerivedFromStdExceptionIsReportedAsSuch) {
  Scheduler task_scheduler;
  task_scheduler.Spawn("odd", [] { throw 42; });
  const RunResult task_result = task_scheduler.Run();
  EXPECT_EQ(task_result.outcome, RunOutcome::kTaskFailed);
  EXPECT_EQ(task_result.failed_task_name, "odd");
  EXPECT_EQ(task_result.failure, "an exception not derived from std::exception");

  Scheduler timer_scheduler;
  timer_scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1), [] { throw 42; });
  const RunResult timer_result = timer_scheduler.Run();
  EXPECT_EQ(timer_result.outcome, RunOutcome::kTaskFailed);
  EXPECT_EQ(timer_result.failure, "an exception not derived from std::exception");
}

struct CountsDestruction {
  explicit CountsDestruction(int* count) : count(count) {}
  ~CountsDestruction() { ++*count; }
  int* count;
};

TEST(SchedulerLifetime, DestructorUnwindsUnfinishedTasksSoTheirDestructorsRun) {
  int destroyed = 0;
  Notification never;
  {
    Scheduler scheduler;
    for (int i = 0; i < 5; ++i) {
      scheduler.Spawn(absl::StrCat("blocked-", i), [&] {
        CountsDestruction guard(&destroyed);
        never.WaitForNotification();
      });
    }
    scheduler.Spawn("sleeping", [&] {
      CountsDestruction guard(&destroyed);
      dsim::SleepFor(absl::Hours(1));
    });
    EXPECT_EQ(scheduler.RunFor(absl::Seconds(1)).outcome, RunOutcome::kReachedTime);
    scheduler.Spawn("never-started", [&] { CountsDestruction guard(&destroyed); });
    EXPECT_EQ(destroyed, 0);
  }
  // The never-started task's body never ran, so only six guards existed.
  EXPECT_EQ(destroyed, 6);
}

TEST(SchedulerLifetime, CatchAllInUserCodeDoesNotStopUnwinding) {
  int destroyed = 0;
  {
    Scheduler scheduler;
    scheduler.Spawn("stubborn", [&] {
      CountsDestruction guard(&destroyed);
      try {
        dsim::SleepFor(absl::Hours(1));
      } catch (...) {
        // Swallows the unwinding (reported); the next scheduling point unwinds again.
      }
      dsim::SleepFor(absl::Hours(1));
    });
    scheduler.RunFor(absl::Seconds(1));
  }
  EXPECT_EQ(destroyed, 1);
}

TEST(SchedulerTasks, JoinWaitsForTheTaskToFinish) {
  Scheduler scheduler;
  std::vector<std::string> events;
  scheduler.Spawn("parent", [&] {
    TaskHandle child = Spawn("child", [&] {
      dsim::SleepFor(absl::Seconds(2));
      events.push_back("child done");
    });
    EXPECT_FALSE(child.done());
    child.Join();
    events.push_back("joined");
    EXPECT_TRUE(child.done());
    child.Join();  // Joining a finished task returns at once.
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(events, (std::vector<std::string>{"child done", "joined"}));
}

TEST(SchedulerTasks, TaskIdsAndNamesAreStable) {
  Scheduler scheduler;
  std::vector<std::string> seen;
  for (int i = 0; i < 3; ++i) {
    scheduler.Spawn(absl::StrCat("task-", i), [&] {
      seen.push_back(absl::StrCat(CurrentTaskId(), "=", CurrentTaskName()));
    });
  }
  scheduler.Run();
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<std::string>{"1=task-0", "2=task-1", "3=task-2"}));
}

TEST(SchedulerTasks, YieldHandsTheCpuToAnotherTask) {
  Scheduler scheduler;
  std::string order;
  for (const char* name : {"a", "b"}) {
    scheduler.Spawn(name, [&, name] {
      for (int i = 0; i < 3; ++i) {
        order += name;
        Yield();
      }
    });
  }
  scheduler.Run();
  // With two runnable tasks, each Yield switches to the other one.
  EXPECT_TRUE(order == "ababab" || order == "bababa") << order;
}

TEST(SchedulerTasks, YieldWithNothingElseRunnableContinues) {
  Scheduler scheduler;
  int spins = 0;
  scheduler.Spawn("alone", [&] {
    for (int i = 0; i < 1000; ++i) {
      Yield();
      ++spins;
    }
  });
  EXPECT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(spins, 1000);
}

TEST(SchedulerTasks, ErrnoIsPreservedPerTaskAcrossSwitches) {
  Scheduler scheduler;
  std::vector<int> seen;
  for (int value : {EAGAIN, ECONNRESET}) {
    scheduler.Spawn(absl::StrCat("errno-", value), [&, value] {
      errno = value;
      for (int i = 0; i < 5; ++i) {
        Yield();
        dsim::SleepFor(absl::Microseconds(1));
      }
      seen.push_back(errno);
    });
  }
  scheduler.Run();
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, (std::vector<int>{std::min(EAGAIN, ECONNRESET), std::max(EAGAIN, ECONNRESET)}));
}

TEST(SchedulerGroups, PausedGroupIsFrozenAndItsTimersFireOnlyAfterResume) {
  Scheduler scheduler;
  constexpr GroupId kHost = 7;
  std::vector<std::string> events;
  scheduler.Spawn("host-task", [&] {
    for (int i = 0; i < 3; ++i) {
      dsim::SleepFor(absl::Seconds(1));
      events.push_back(absl::StrCat("tick at +", absl::FormatDuration(Now() - Scheduler::Epoch())));
    }
  }, SpawnOptions{.group = kHost});
  scheduler.AddTimer(Scheduler::Epoch() + absl::Milliseconds(1500),
                     [&] { scheduler.PauseGroup(kHost); });
  scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(10), [&] { scheduler.ResumeGroup(kHost); });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(events, (std::vector<std::string>{"tick at +1s", "tick at +10s", "tick at +11s"}));
}

TEST(SchedulerGroups, KillGroupUnwindsOnlyThatGroupsTasks) {
  Scheduler scheduler;
  int destroyed = 0;
  bool survivor_finished = false;
  for (int i = 0; i < 3; ++i) {
    scheduler.Spawn(absl::StrCat("victim-", i), [&] {
      CountsDestruction guard(&destroyed);
      dsim::SleepFor(absl::Hours(1));
    }, SpawnOptions{.group = 1});
  }
  scheduler.Spawn("survivor", [&] {
    dsim::SleepFor(absl::Seconds(2));
    survivor_finished = true;
  }, SpawnOptions{.group = 2});
  scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1),
                     [&] { EXPECT_EQ(scheduler.KillGroup(1), 3u); });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(destroyed, 3);
  EXPECT_TRUE(survivor_finished);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Seconds(2));
}

TEST(SchedulerThreads, TwoSimulationsRunOnTwoThreadsAtOnce) {
  const std::string expected_a = RunBoundedBuffer(11);
  const std::string expected_b = RunBoundedBuffer(12);
  std::string a, b;
  for (int round = 0; round < 3; ++round) {
    std::thread first([&] { a = RunBoundedBuffer(11); });
    std::thread second([&] { b = RunBoundedBuffer(12); });
    first.join();
    second.join();
    EXPECT_EQ(a, expected_a);
    EXPECT_EQ(b, expected_b);
  }
}

TEST(SchedulerScale, HundredThousandTasksInOneSimulation) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer maps a trace buffer of about 1.2 MiB per fiber, so it "
                  "cannot hold 100,000 fibers; see README (Sanitizers).";
#endif
  constexpr int kTasks = 100000;
  Scheduler scheduler;
  int finished = 0;
  for (int i = 0; i < kTasks; ++i) {
    scheduler.Spawn("worker", [&, i] {
      dsim::SleepFor(absl::Milliseconds(i % 100));
      Yield();
      ++finished;
    });
  }
  const RunResult result = scheduler.Run();
  EXPECT_TRUE(result.ok()) << result.outcome;
  EXPECT_EQ(finished, kTasks);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Milliseconds(99));
}

}  // namespace
}  // namespace dsim

namespace dsim {
namespace {

// ---- Killing tasks at awkward moments (crashes, shutdown) ---------------------------

TEST(SchedulerKill, KillAtAnUnlockInsideMutexLockUnwindsCleanly) {
  // Task "worker" keeps locking and unlocking; "crasher" kills its group at a moment the
  // seed picks, often while the worker sits at the scheduling point inside Unlock, i.e.
  // inside ~MutexLock. The kill must wait for a point where throwing is allowed.
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Mutex mu;
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    int critical_sections = 0;
    scheduler.Spawn("worker", [&] {
      for (;;) {
        MutexLock lock(&mu);
        ++critical_sections;
      }
    }, SpawnOptions{.daemon = true, .group = 1});
    scheduler.Spawn("crasher", [&] {
      for (uint64_t i = 0; i < seed % 7; ++i) Yield();
      scheduler.KillGroup(1);
      MutexLock lock(&mu);  // The worker released the mutex as it died.
    });
    ASSERT_TRUE(scheduler.Run().ok()) << "seed " << seed;
    // The killed worker may still wait for its next scheduling point; finish it here.
    // Before the fix, a kill delivered inside ~MutexLock called std::terminate.
    scheduler.Shutdown();
    EXPECT_EQ(mu.holder(), kNoTask) << "seed " << seed;
    EXPECT_EQ(scheduler.live_tasks(), 0u);
  }
}

TEST(SchedulerKill, KilledCondVarWaiterStillReleasesItsMutex) {
  Mutex mu;
  CondVar cv;
  Scheduler scheduler;
  bool waiter_unwound = false;
  scheduler.Spawn("waiter", [&] {
    struct Flag {
      bool* flag;
      ~Flag() { *flag = true; }
    } flag{&waiter_unwound};
    MutexLock lock(&mu);
    for (;;) cv.Wait(&mu);
  }, SpawnOptions{.group = 1});
  scheduler.Spawn("killer", [&] {
    dsim::SleepFor(absl::Seconds(1));
    scheduler.KillGroup(1);
    dsim::SleepFor(absl::Seconds(1));
    MutexLock lock(&mu);
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_TRUE(waiter_unwound);
  EXPECT_EQ(mu.holder(), kNoTask);
}

TEST(SchedulerKill, ShutdownUnwindsTasksWhoseDestructorsWaitForEachOther) {
  // "first" is unwound first (spawn order), and its destructor needs the mutex that
  // "second" holds; shutdown must let "second" unwind and release it.
  int destroyed = 0;
  {
    Mutex mu;
    Notification never;
    Scheduler scheduler;
    scheduler.Spawn("first", [&] {
      struct LocksOnDestruction {
        Mutex* mu;
        int* destroyed;
        ~LocksOnDestruction() {
          MutexLock lock(mu);
          ++*destroyed;
        }
      } guard{&mu, &destroyed};
      never.WaitForNotification();
    });
    scheduler.Spawn("second", [&] {
      MutexLock lock(&mu);
      ++destroyed;  // Counted when the lock is taken; the unwinding releases it.
      never.WaitForNotification();
    });
    EXPECT_EQ(scheduler.RunFor(absl::Seconds(1)).outcome, RunOutcome::kDeadlock);
    scheduler.Shutdown();
    EXPECT_EQ(scheduler.live_tasks(), 0u);
  }
  EXPECT_EQ(destroyed, 2);
}

TEST(SchedulerKill, ExceptionStateBelongsToEachTask) {
  // "unwinding" blocks inside a destructor while its exception is in flight; meanwhile
  // "other" throws and catches its own exception. Each must see only its own state.
  Scheduler scheduler;
  int uncaught_in_destructor = -1, uncaught_in_other = -1;
  std::string caught_by_other, caught_by_unwinding;
  scheduler.Spawn("unwinding", [&] {
    try {
      struct BlocksInDestructor {
        int* seen;
        ~BlocksInDestructor() {
          dsim::SleepFor(absl::Seconds(2));
          *seen = std::uncaught_exceptions();
        }
      } guard{&uncaught_in_destructor};
      throw std::runtime_error("first");
    } catch (const std::runtime_error& e) {
      caught_by_unwinding = e.what();
    }
  });
  scheduler.Spawn("other", [&] {
    dsim::SleepFor(absl::Seconds(1));
    uncaught_in_other = std::uncaught_exceptions();
    try {
      throw std::runtime_error("second");
    } catch (const std::runtime_error& e) {
      dsim::SleepFor(absl::Seconds(2));  // Switch away while handling it.
      caught_by_other = e.what();
    }
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(uncaught_in_destructor, 1);
  EXPECT_EQ(uncaught_in_other, 0);
  EXPECT_EQ(caught_by_unwinding, "first");
  EXPECT_EQ(caught_by_other, "second");
}

TEST(SchedulerRun, FailStopsTheRunWithTheReason) {
  Scheduler scheduler;
  scheduler.Spawn("checker", [&] {
    dsim::SleepFor(absl::Seconds(1));
    scheduler.Fail("invariant broken: two leaders");
    Yield();
  });
  scheduler.Spawn("other", [] { dsim::SleepFor(absl::Seconds(5)); });
  const RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_EQ(result.failed_task_name, "checker");
  EXPECT_THAT(result.ToString(), HasSubstr("invariant broken: two leaders"));
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Seconds(1));
}


// ---- Runaway-task watchdog ------------------------------------------------------------

// Burns real time without a scheduling point, as a spin loop on a flag would.
void SpinFor(std::chrono::milliseconds how_long) {
  const auto end = std::chrono::steady_clock::now() + how_long;
  while (std::chrono::steady_clock::now() < end) {
  }
}

RunResult RunWithARunaway(absl::Duration watchdog, bool real_sleep = false) {
  Scheduler scheduler(SchedulerOptions{.seed = 3, .watchdog = watchdog});
  scheduler.Spawn("ticker", [] {
    for (int i = 0; i < 3; ++i) dsim::SleepFor(absl::Milliseconds(1));
  });
  scheduler.Spawn("spinner", [real_sleep] {
    dsim::SleepFor(absl::Milliseconds(1));
    if (real_sleep) {
      std::this_thread::sleep_for(std::chrono::milliseconds(700));
    } else {
      SpinFor(std::chrono::milliseconds(700));
    }
    dsim::SleepFor(absl::Milliseconds(1));
  });
  return scheduler.Run();
}

TEST(Watchdog, ReportsARunawayTaskByNameWithItsStackAndChangesNothing) {
  ::testing::internal::CaptureStderr();
  const RunResult watched = RunWithARunaway(absl::Milliseconds(200));
  const std::string report = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(report, HasSubstr("dsim: watchdog: task \"spinner\" (id 2) has run for 0."));
  EXPECT_THAT(report, HasSubstr("without reaching a scheduling point"));
  EXPECT_THAT(report, HasSubstr("Stack of the running task:\n"));
  EXPECT_THAT(report, HasSubstr("scheduler_test"));  // backtrace_symbols_fd frames
  // Once per stall.
  EXPECT_EQ(report.find("dsim: watchdog:"), report.rfind("dsim: watchdog:"));
  // It only observes: the same run as without it.
  const RunResult unwatched = RunWithARunaway(absl::ZeroDuration());
  EXPECT_EQ(watched.ToString(), unwatched.ToString());
  EXPECT_EQ(watched.steps, unwatched.steps);
  EXPECT_TRUE(watched.ok());
}

TEST(Watchdog, ReportsATaskBlockedInARealSleep) {
  ::testing::internal::CaptureStderr();
  EXPECT_TRUE(RunWithARunaway(absl::Milliseconds(200), /*real_sleep=*/true).ok());
  EXPECT_THAT(::testing::internal::GetCapturedStderr(),
              HasSubstr("dsim: watchdog: task \"spinner\" (id 2)"));
}

TEST(Watchdog, ZeroTurnsItOff) {
  ::testing::internal::CaptureStderr();
  RunWithARunaway(absl::ZeroDuration());
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
}

TEST(WatchdogDeathTest, AbortsAfterTheReportWhenAsked) {
  EXPECT_DEATH(
      {
        Scheduler scheduler(SchedulerOptions{.watchdog = absl::Milliseconds(100),
                                             .watchdog_abort = true});
        scheduler.Spawn("forever", [] {
          for (;;) {
          }
        });
        scheduler.Run();
      },
#if defined(__SANITIZE_THREAD__)
      // TSan holds the signal back in a loop with no calls; the watchdog thread reports.
      "dsim: watchdog: the simulation has not reached a scheduling point for 1\\.[0-9] s");
#else
      "dsim: watchdog: task \"forever\" \\(id 1\\) has run for 0\\.[0-9] s of wall-clock time "
      "without reaching a scheduling point(.|\n)*dsim: watchdog: aborting");
#endif
}


// ---- Owner thread -----------------------------------------------------------------------

// Spawns from a second OS thread while the simulation runs on this one.
void SpawnFromAnotherThreadDuringARun() {
  Scheduler scheduler;
  std::atomic<bool> intruder_started{false};
  std::thread intruder;
  scheduler.Spawn("host", [&] {
    intruder = std::thread([&] {
      intruder_started = true;
      for (int i = 0; i < 1000; ++i) scheduler.Spawn("intruded", [] {});
    });
    // Keep the run active (in real time) until the intruder has had its chance.
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < end) {
    }
  });
  scheduler.Run();
  intruder.join();
}

TEST(OwnerThreadDeathTest, SpawnFromAnotherThreadDuringARunIsMisuse) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(SpawnFromAnotherThreadDuringARun(),
               "misuse: Scheduler::Spawn was called from an OS thread other than the one "
               "running the simulation");
}

TEST(OwnerThreadDeathTest, TimersFromAnotherThreadDuringARunAreMisuse) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        Scheduler scheduler;
        std::thread intruder;
        scheduler.Spawn("host", [&] {
          intruder = std::thread(
              [&] { scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1), [] {}); });
          const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
          while (std::chrono::steady_clock::now() < end) {
          }
        });
        scheduler.Run();
        intruder.join();
      },
      "misuse: Scheduler::AddTimer was called from an OS thread other than the one running");
}

TEST(OwnerThread, ASchedulerMayMoveToAnotherThreadBetweenRuns) {
  Scheduler scheduler;
  int runs = 0;
  scheduler.Spawn("first", [&] { ++runs; });
  scheduler.Run();
  std::thread([&] {
    scheduler.Spawn("second", [&] { ++runs; });
    scheduler.Run();
  }).join();
  EXPECT_EQ(runs, 2);
}


// ---- Swallowed unwinding ------------------------------------------------------------------

TEST(SwallowedUnwinding, ATaskThatSwallowsItIsReportedOnceAndStoppedAtShutdown) {
  int iterations_after_kill = 0;
  bool killed = false;
  ::testing::internal::CaptureStderr();
  {
    Scheduler scheduler;
    scheduler.Spawn("server", [&] {
      for (int i = 0; i < 1000; ++i) {
        if (killed) ++iterations_after_kill;
        try {
          dsim::SleepFor(absl::Seconds(1));
        } catch (...) {  // A server loop that logs and goes on.
          killed = true;
        }
      }
    }, {.daemon = true});
    scheduler.RunFor(absl::Seconds(5));
  }  // The destructor unwinds "server".
  const std::string report = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(killed);
  // Unwound once more after the report, then stopped at its next scheduling point.
  EXPECT_EQ(iterations_after_kill, 2);
  EXPECT_THAT(report, HasSubstr("dsim: task \"server\" caught the exception dsim::TaskUnwind "
                                "that stops it and went on to a scheduling point at "
                                "scheduler_test.cc:"));
  EXPECT_THAT(report, HasSubstr("catch (const dsim::TaskUnwind&) { throw; }"));
  EXPECT_EQ(report.find("caught the exception"), report.rfind("caught the exception"));
}

TEST(SwallowedUnwinding, InsideARunItFailsTheRunNamingTheTask) {
  Scheduler scheduler;
  ::testing::internal::CaptureStderr();
  const TaskHandle server = scheduler.Spawn("server", [&] {
    for (;;) {
      try {
        dsim::SleepFor(absl::Seconds(1));
      } catch (...) {
      }
    }
  });
  scheduler.Spawn("killer", [&] {
    dsim::SleepFor(absl::Milliseconds(1500));
    scheduler.Kill(server.id());
  });
  const RunResult result = scheduler.Run();
  ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(result.outcome, RunOutcome::kMisuse);
  EXPECT_EQ(result.failed_task_name, "server");
  EXPECT_THAT(result.failure, HasSubstr("caught the exception dsim::TaskUnwind"));
  EXPECT_TRUE(server.done());
}

TEST(SwallowedUnwinding, RethrowingItFromCatchAllIsFine) {
  int cleanups = 0;
  {
    Scheduler scheduler;
    scheduler.Spawn("server", [&] {
      for (;;) {
        try {
          dsim::SleepFor(absl::Seconds(1));
        } catch (const dsim::TaskUnwind&) {
          throw;
        } catch (...) {
        }
      }
    }, {.daemon = true});
    scheduler.Spawn("polite", [&] {
      try {
        dsim::SleepFor(absl::Hours(1));
      } catch (...) {
        ++cleanups;
        dsim::SleepFor(absl::Seconds(1));  // A scheduling point inside the handler.
        throw;
      }
    }, {.daemon = true});
    ::testing::internal::CaptureStderr();
    EXPECT_TRUE(scheduler.RunFor(absl::Seconds(3)).ok());
  }
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(cleanups, 1);
}


// ---- Teardown order -------------------------------------------------------------------

// A pthread-style program: main owns the shared state on its own stack and starts
// workers that use it. When the run stops with everyone blocked, the workers' unwinding
// still touches that state, so they must unwind before main's frames are gone.
struct SharedState {
  Mutex mu;
  CondVar work_ready;
  std::vector<int> queue;
  bool alive = true;
  ~SharedState() { alive = false; }
};

struct TouchesSharedStateOnExit {
  SharedState* shared;
  int* dead_touches;
  ~TouchesSharedStateOnExit() {
    if (!shared->alive) ++*dead_touches;
    shared->queue.clear();
  }
};

TEST(TeardownOrder, ChildrenUnwindBeforeTheTaskThatSpawnedThem) {
  int dead_touches = 0;
  int workers_unwound = 0;
  std::vector<std::string> order;
  ::testing::internal::CaptureStderr();
  {
    Scheduler scheduler(SchedulerOptions{.seed = 5});
    scheduler.Spawn("main", [&] {
      SharedState shared;
      std::vector<TaskHandle> workers;
      for (int i = 0; i < 4; ++i) {
        workers.push_back(dsim::Spawn(absl::StrCat("worker-", i), [&, i] {
          TouchesSharedStateOnExit guard{&shared, &dead_touches};
          // A nested helper thread, spawned by a worker: unwinds before it.
          dsim::Spawn(absl::StrCat("helper-", i), [&, i] {
            TouchesSharedStateOnExit helper_guard{&shared, &dead_touches};
            MutexLock lock(&shared.mu);
            while (shared.queue.empty()) shared.work_ready.Wait(&shared.mu);
            order.push_back(absl::StrCat("helper-", i, " done"));
          });
          MutexLock lock(&shared.mu);
          while (shared.queue.empty()) shared.work_ready.Wait(&shared.mu);
          order.push_back(absl::StrCat("worker-", i, " done"));
        }));
      }
      struct OnExit {
        std::vector<std::string>* order;
        int* workers_unwound;
        ~OnExit() { order->push_back("main unwound"); }
      } on_exit{&order, &workers_unwound};
      for (TaskHandle& worker : workers) worker.Join();  // Blocks forever: nobody pushes.
    });
    EXPECT_EQ(scheduler.Run().outcome, RunOutcome::kDeadlock);
  }  // Teardown.
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");  // No teardown misuse either.
  EXPECT_EQ(dead_touches, 0);
  ASSERT_FALSE(order.empty());
  EXPECT_EQ(order.back(), "main unwound");
}

// Killing a host in a run kills parent and children; the parent waits for its dying
// children before its own frames unwind.
TEST(TeardownOrder, AKilledParentUnwindsAfterItsKilledChildren) {
  int dead_touches = 0;
  Scheduler scheduler(SchedulerOptions{.seed = 9});
  const GroupId host = 1;
  scheduler.Spawn("parent", [&] {
    SharedState shared;
    for (int i = 0; i < 3; ++i) {
      dsim::Spawn(absl::StrCat("child-", i), [&] {
        TouchesSharedStateOnExit guard{&shared, &dead_touches};
        dsim::SleepFor(absl::Hours(1));
      });
    }
    dsim::SleepFor(absl::Hours(1));
  }, {.group = host});
  scheduler.Spawn("crasher", [&] {
    dsim::SleepFor(absl::Seconds(1));
    EXPECT_EQ(scheduler.KillGroup(host), 4u);
  });
  EXPECT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(dead_touches, 0);
  EXPECT_EQ(scheduler.live_tasks(), 0u);
}

// A child waits on a condition variable whose mutex its parent holds when the run
// stops. The parent unwinds only after its children, and the child cannot relock the
// mutex while the parent holds it: the child leaves the wait without relocking (its own
// unlock is then skipped) instead of blocking forever, which used to abort the process
// with "keeps blocking while being unwound".
TEST(TeardownOrder, AChildWaitingOnACondVarWhoseMutexItsParentHoldsStillUnwinds) {
  int dead_touches = 0;
  {
    Scheduler scheduler(SchedulerOptions{.seed = 3});
    scheduler.Spawn("parent", [&] {
      SharedState shared;
      dsim::Mutex mu;
      dsim::CondVar cv;
      bool ready = false;
      dsim::Spawn("child", [&] {
        TouchesSharedStateOnExit guard{&shared, &dead_touches};
        dsim::MutexLock lock(&mu);
        while (!ready) cv.Wait(&mu);
      });
      dsim::SleepFor(absl::Milliseconds(1));  // The child is waiting now.
      dsim::MutexLock lock(&mu);
      dsim::SleepFor(absl::Hours(1));         // Holds the mutex when the run stops.
    });
    RunResult result = scheduler.RunFor(absl::Seconds(1));
    EXPECT_EQ(result.outcome, RunOutcome::kReachedTime) << result.ToString();
  }  // The destructor unwinds both tasks: children first.
  EXPECT_EQ(dead_touches, 0);
}

// ---- Nanosecond conversions (scheduler/internal/nanos.h) --------------------------------

TEST(Nanos, DurationToNanosAgreesWithAbseilEverywhere) {
  const absl::Duration cases[] = {
      absl::ZeroDuration(), absl::Nanoseconds(1), absl::Nanoseconds(999999999),
      absl::Seconds(1), absl::Milliseconds(40), absl::Microseconds(1) / 3,  // A fraction.
      absl::Nanoseconds(3) / 4, absl::Hours(24 * 365 * 200), absl::Seconds(int64_t{1} << 33),
      absl::Seconds(int64_t{1} << 40), absl::Nanoseconds(INT64_MAX), -absl::Nanoseconds(1),
      -absl::Nanoseconds(3) / 4, -absl::Seconds(5), absl::InfiniteDuration(),
      -absl::InfiniteDuration()};
  for (absl::Duration d : cases) {
    EXPECT_EQ(internal::DurationToNanos(d), absl::ToInt64Nanoseconds(d)) << d;
  }
}

TEST(Nanos, TimeToEpochNanosClampsAsTimersDo) {
  const absl::Time epoch = Scheduler::Epoch();
  EXPECT_EQ(internal::TimeToEpochNanos(epoch), 0);
  EXPECT_EQ(internal::TimeToEpochNanos(epoch + absl::Nanoseconds(7)), 7);
  EXPECT_EQ(internal::TimeToEpochNanos(epoch + absl::Nanoseconds(7) / 2), 3);  // Truncated.
  EXPECT_EQ(internal::TimeToEpochNanos(epoch + absl::Hours(1)), int64_t{3600} * 1000000000);
  EXPECT_EQ(internal::TimeToEpochNanos(epoch - absl::Nanoseconds(1)), 0);
  EXPECT_EQ(internal::TimeToEpochNanos(absl::InfinitePast()), 0);
  EXPECT_EQ(internal::TimeToEpochNanos(absl::InfiniteFuture()), INT64_MAX);
  EXPECT_EQ(internal::TimeToEpochNanos(epoch + absl::Nanoseconds(INT64_MAX)), INT64_MAX);
  EXPECT_EQ(internal::TimeToEpochNanos(epoch + absl::Seconds(int64_t{1} << 33)),
            (int64_t{1} << 33) * 1000000000);  // The slow path's first value.
  EXPECT_EQ(internal::TimeToEpochNanos(epoch + absl::Seconds(int64_t{1} << 40)), INT64_MAX);
}

TEST(Nanos, EpochNanosToTimeInvertsTimeToEpochNanos) {
  for (int64_t ns : {int64_t{0}, int64_t{1}, int64_t{1234567890123}, int64_t{1} << 62}) {
    EXPECT_EQ(internal::EpochNanosToTime(ns), Scheduler::Epoch() + absl::Nanoseconds(ns));
    EXPECT_EQ(internal::TimeToEpochNanos(internal::EpochNanosToTime(ns)), ns);
  }
  EXPECT_EQ(internal::EpochNanosToTime(INT64_MAX), absl::InfiniteFuture());
  EXPECT_EQ(internal::SaturatingAdd(INT64_MAX - 1, 5), INT64_MAX);
  EXPECT_EQ(internal::SaturatingAdd(10, 5), 15);
}

TEST(AddTimerCall, FiresInSequenceOrderWithCallbackTimersAndCanBeCancelled) {
  Scheduler scheduler;
  std::vector<std::string> fired;
  struct Context {
    std::vector<std::string>* fired;
  } context{&fired};
  auto call = [](void* c, uint64_t argument) {
    static_cast<Context*>(c)->fired->push_back(absl::StrCat("call ", argument));
  };
  const int64_t ms = 1000000;
  scheduler.AddTimer(Scheduler::Epoch() + absl::Milliseconds(2), [&] { fired.push_back("fn 2"); });
  scheduler.AddTimerCall(2 * ms, call, &context, 2);
  const TimerId cancelled = scheduler.AddTimerCall(1 * ms, call, &context, 99);
  scheduler.AddTimerCall(3 * ms, call, &context, 3);
  EXPECT_TRUE(scheduler.CancelTimer(cancelled));
  EXPECT_FALSE(scheduler.CancelTimer(cancelled));
  EXPECT_EQ(scheduler.pending_timers(), 3u);
  EXPECT_TRUE(scheduler.RunFor(absl::Milliseconds(5)).ok());
  // The two timers due at 2 ms tie: the strategy orders them; both fire before 3 ms.
  ASSERT_EQ(fired.size(), 3u);
  EXPECT_THAT(std::vector<std::string>(fired.begin(), fired.begin() + 2),
              ::testing::UnorderedElementsAre("fn 2", "call 2"));
  EXPECT_EQ(fired[2], "call 3");
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Milliseconds(3));  // Then idle.
}

TEST(AddTimerCall, ManyTimersWithCancelsAndReArmsFireInDueOrder) {
  // Exercises the timer heap well past a few levels: timers added from callbacks while
  // others fire, and cancelled at arbitrary heap positions. Distinct due times, so the
  // expected order is simply ascending time.
  Scheduler scheduler;
  Random rng(7);
  struct State {
    std::vector<int64_t> fired;
    Scheduler* scheduler;
    Random* rng;
    int64_t next_unique = 1;  // Low bits make every due time distinct.
  } state{{}, &scheduler, &rng};
  std::vector<int64_t> expected;
  auto unique_time = [&state](int64_t base) { return base * 4096 + state.next_unique++; };
  static constexpr auto kRecord = [](void* c, uint64_t argument) {
    auto* st = static_cast<State*>(c);
    st->fired.push_back(static_cast<int64_t>(argument));
  };
  std::vector<std::pair<TimerId, int64_t>> pending;
  for (int i = 0; i < 600; ++i) {
    const int64_t when = unique_time(1 + static_cast<int64_t>(rng.Below(100000)));
    pending.emplace_back(scheduler.AddTimerCall(when, kRecord, &state, when), when);
  }
  for (size_t i = 0; i < pending.size(); ++i) {
    if (rng.Below(3) == 0) {
      ASSERT_TRUE(scheduler.CancelTimer(pending[i].first));
    } else {
      expected.push_back(pending[i].second);
    }
  }
  // A callback that adds later timers while the heap drains.
  const int64_t adder_when = unique_time(50000);
  expected.push_back(adder_when);
  std::vector<int64_t> added;
  scheduler.AddTimer(Scheduler::Epoch() + absl::Nanoseconds(adder_when), [&] {
    state.fired.push_back(adder_when);
    for (int i = 0; i < 200; ++i) {
      const int64_t when = unique_time(50001 + static_cast<int64_t>(rng.Below(60000)));
      scheduler.AddTimerCall(when, kRecord, &state, when);
      added.push_back(when);
    }
  });
  ASSERT_TRUE(scheduler.RunFor(absl::Seconds(1)).ok());
  expected.insert(expected.end(), added.begin(), added.end());
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(state.fired, expected);
}

TEST(AddTimerCall, AGroupsCallTimersDieWithTheGroup) {
  Scheduler scheduler;
  int calls = 0;
  auto call = [](void* c, uint64_t) { ++*static_cast<int*>(c); };
  scheduler.AddTimerCall(1000, call, &calls, 0, /*group=*/3);
  scheduler.AddTimerCall(1000, call, &calls, 0, /*group=*/0);
  EXPECT_EQ(scheduler.KillGroup(3), 0u);
  EXPECT_TRUE(scheduler.RunFor(absl::Milliseconds(1)).ok());
  EXPECT_EQ(calls, 1);
}

// A listener added for a category prefix hears those annotations and nothing else.
class PrefixListener : public SchedulerListener {
 public:
  void OnDecision(const Decision&, uint64_t) override { ++others; }
  void OnSpawn(const TaskView&) override { ++others; }
  void OnDispatch(const TaskView&) override { ++others; }
  void OnBlock(const TaskView&, const char*, SourceLocation) override { ++others; }
  void OnWake(const TaskView&, WakeReason) override { ++others; }
  void OnFinish(const TaskView&) override { ++others; }
  void OnTimerFired(TimerId, absl::Time) override { ++others; }
  void OnClockAdvanced(absl::Time, absl::Time) override { ++others; }
  void OnAnnotation(const Annotation& a) override { categories.emplace_back(a.category); }
  int others = 0;
  std::vector<std::string> categories;
};

TEST(SchedulerListeners, AnAnnotationListenerHearsOnlyItsPrefix) {
  Scheduler scheduler(SchedulerOptions{.seed = 2});
  PrefixListener faults;
  PrefixListener everything;
  scheduler.AddAnnotationListener(&faults, "fault.");
  scheduler.AddListener(&everything);
  scheduler.Spawn("t", [&] {
    for (const char* category : {"fault.drop", "net.send", "fault.", "faulty", "", "f"}) {
      scheduler.Annotate({.category = category});
    }
    dsim::SleepFor(absl::Milliseconds(1));
    scheduler.RemoveListener(&faults);
    scheduler.Annotate({.category = "fault.late"});
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(faults.others, 0);
  EXPECT_EQ(faults.categories, (std::vector<std::string>{"fault.drop", "fault."}));
  EXPECT_GT(everything.others, 0);
  EXPECT_EQ(everything.categories.size(), 7u);
}

// CurrentGroup() is cached at every switch (Scheduler::SetCurrent): it must name the
// running task's group after yields, blocks, sleeps and timer callbacks that interrupt
// the run, kNoGroup inside callbacks and outside the run.
TEST(SchedulerGroups, CurrentGroupFollowsTheRunningTaskAcrossEverySwitch) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    std::vector<std::string> errors;
    Notification go;
    for (GroupId group : {GroupId{1}, GroupId{2}, kNoGroup, GroupId{3}}) {
      scheduler.Spawn(absl::StrCat("t", group), [&, group] {
        for (int i = 0; i < 20; ++i) {
          if (scheduler.CurrentGroup() != group) errors.push_back(absl::StrCat("task ", group));
          if (i % 3 == 0) dsim::Yield();
          if (i % 3 == 1) dsim::SleepFor(absl::Microseconds(1 + i % 2));
          if (i == 10 && group == 1) go.Notify();
          if (i == 12 && group == 2) go.WaitForNotification();
          scheduler.SchedulingPoint();
        }
      }, SpawnOptions{.group = group});
    }
    for (int i = 1; i <= 5; ++i) {
      scheduler.AddTimer(Scheduler::Epoch() + absl::Microseconds(i), [&] {
        if (scheduler.CurrentGroup() != kNoGroup) errors.push_back("callback");
      });
    }
    ASSERT_TRUE(scheduler.Run().ok());
    EXPECT_EQ(scheduler.CurrentGroup(), kNoGroup);
    EXPECT_TRUE(errors.empty()) << "seed " << seed << ": " << absl::StrJoin(errors, ", ");
  }
}

}  // namespace
}  // namespace dsim
