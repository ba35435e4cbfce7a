// Blocking primitives: mutual exclusion, wake-ups, and timeouts exactly at the deadline.
#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "scheduler/notification.h"
#include "scheduler/scheduler.h"
#include "scheduler/semaphore.h"
#include "scheduler/wait_group.h"
#include "scheduler/internal/wait_queue.h"

namespace dsim {
namespace {

TEST(Mutex, ExcludesOtherTasksUnderEverySeed) {
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    Mutex mu;
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    int inside = 0, max_inside = 0, total = 0;
    for (int t = 0; t < 4; ++t) {
      scheduler.Spawn(absl::StrCat("t", t), [&] {
        for (int i = 0; i < 10; ++i) {
          MutexLock lock(&mu);
          max_inside = std::max(max_inside, ++inside);
          Yield();  // Try hard to let someone else in.
          ++total;
          --inside;
        }
      });
    }
    ASSERT_TRUE(scheduler.Run().ok());
    EXPECT_EQ(max_inside, 1) << "seed " << seed;
    EXPECT_EQ(total, 40);
  }
}

TEST(Mutex, TryLockFailsWhileHeldAndSucceedsWhenFree) {
  Mutex mu;
  Scheduler scheduler;
  std::vector<bool> results;
  scheduler.Spawn("holder", [&] {
    MutexLock lock(&mu);
    dsim::SleepFor(absl::Seconds(2));
  });
  scheduler.Spawn("trier", [&] {
    dsim::SleepFor(absl::Seconds(1));
    results.push_back(mu.TryLock());
    dsim::SleepFor(absl::Seconds(2));
    results.push_back(mu.TryLock());
    mu.Unlock();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(results, (std::vector<bool>{false, true}));
}

TEST(CondVar, WaitWithTimeoutTimesOutExactlyAtTheDeadline) {
  Mutex mu;
  CondVar cv;
  Scheduler scheduler;
  absl::Time woke;
  bool timed_out = false;
  scheduler.Spawn("waiter", [&] {
    dsim::SleepFor(absl::Milliseconds(3));
    MutexLock lock(&mu);
    timed_out = cv.WaitWithTimeout(&mu, absl::Milliseconds(250));
    woke = Now();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(woke, Scheduler::Epoch() + absl::Milliseconds(253));
}

TEST(CondVar, SignalBeforeTheDeadlineIsNotATimeout) {
  Mutex mu;
  CondVar cv;
  Scheduler scheduler;
  bool ready = false, timed_out = true;
  absl::Time woke;
  scheduler.Spawn("waiter", [&] {
    MutexLock lock(&mu);
    while (!ready) {
      timed_out = cv.WaitWithDeadline(&mu, Scheduler::Epoch() + absl::Seconds(10));
      if (timed_out) break;
    }
    woke = Now();
  });
  scheduler.Spawn("signaller", [&] {
    dsim::SleepFor(absl::Seconds(4));
    MutexLock lock(&mu);
    ready = true;
    cv.Signal();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_FALSE(timed_out);
  EXPECT_EQ(woke, Scheduler::Epoch() + absl::Seconds(4));
}

TEST(CondVar, SignalAllWakesEveryWaiter) {
  Mutex mu;
  CondVar cv;
  Scheduler scheduler;
  bool go = false;
  int woken = 0;
  for (int i = 0; i < 5; ++i) {
    scheduler.Spawn(absl::StrCat("w", i), [&] {
      MutexLock lock(&mu);
      while (!go) cv.Wait(&mu);
      ++woken;
    });
  }
  scheduler.Spawn("broadcaster", [&] {
    dsim::SleepFor(absl::Seconds(1));
    MutexLock lock(&mu);
    go = true;
    cv.SignalAll();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(woken, 5);
}

TEST(CondVar, WhichWaiterASignalWakesDependsOnTheSeed) {
  std::set<std::string> firsts;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Mutex mu;
    CondVar cv;
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    int tokens = 0;
    std::string first;
    for (int i = 0; i < 4; ++i) {
      scheduler.Spawn(absl::StrCat("w", i), [&, i] {
        MutexLock lock(&mu);
        while (tokens == 0) cv.Wait(&mu);
        --tokens;
        if (first.empty()) first = absl::StrCat("w", i);
      });
    }
    scheduler.Spawn("signaller", [&] {
      dsim::SleepFor(absl::Seconds(1));
      for (int i = 0; i < 4; ++i) {
        MutexLock lock(&mu);
        ++tokens;
        cv.Signal();
      }
    });
    ASSERT_TRUE(scheduler.Run().ok());
    firsts.insert(first);
  }
  EXPECT_GE(firsts.size(), 3u);
}

TEST(Notification, WaitReturnsAtOnceAfterNotify) {
  Notification done;
  Scheduler scheduler;
  absl::Time woke;
  scheduler.Spawn("notifier", [&] {
    dsim::SleepFor(absl::Seconds(2));
    done.Notify();
  });
  scheduler.Spawn("waiter", [&] {
    done.WaitForNotification();
    woke = Now();
    done.WaitForNotification();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_TRUE(done.HasBeenNotified());
  EXPECT_EQ(woke, Scheduler::Epoch() + absl::Seconds(2));
}

TEST(Notification, TimeoutReportsWhetherNotifiedAndExpiresExactly) {
  Notification late, early;
  Scheduler scheduler;
  std::vector<std::string> results;
  scheduler.Spawn("waiter", [&] {
    const bool got_late = late.WaitForNotificationWithTimeout(absl::Seconds(1));
    results.push_back(absl::StrCat("late=", got_late, " at +",
                                   absl::FormatDuration(Now() - Scheduler::Epoch())));
    const bool got_early = early.WaitForNotificationWithTimeout(absl::Seconds(10));
    results.push_back(absl::StrCat("early=", got_early, " at +",
                                   absl::FormatDuration(Now() - Scheduler::Epoch())));
  });
  scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(5), [&] { late.Notify(); });
  scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(3), [&] { early.Notify(); });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(results, (std::vector<std::string>{"late=0 at +1s", "early=1 at +3s"}));
}

TEST(Semaphore, CountsPermitsAndBlocksAtZero) {
  Semaphore slots(2);
  Scheduler scheduler;
  int inside = 0, max_inside = 0;
  for (int i = 0; i < 6; ++i) {
    scheduler.Spawn(absl::StrCat("user-", i), [&] {
      slots.Acquire();
      max_inside = std::max(max_inside, ++inside);
      dsim::SleepFor(absl::Seconds(1));
      --inside;
      slots.Release();
    });
  }
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(max_inside, 2);
  EXPECT_EQ(slots.count(), 2);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Seconds(3));
}

TEST(Semaphore, AcquireWithTimeoutGivesUpExactlyAtTheDeadline) {
  Semaphore empty(0);
  Scheduler scheduler;
  bool acquired = true;
  scheduler.Spawn("waiter", [&] { acquired = empty.AcquireWithTimeout(absl::Milliseconds(40)); });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_FALSE(acquired);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Milliseconds(40));
  EXPECT_EQ(empty.count(), 0);
}

TEST(WaitGroup, WaitReturnsWhenEveryWorkerIsDone) {
  WaitGroup group;
  Scheduler scheduler;
  absl::Time done_at;
  scheduler.Spawn("coordinator", [&] {
    for (int i = 1; i <= 3; ++i) {
      group.Add(1);
      Spawn(absl::StrCat("worker-", i), [&, i] {
        dsim::SleepFor(absl::Seconds(i));
        group.Done();
      });
    }
    group.Wait();
    done_at = Now();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(done_at, Scheduler::Epoch() + absl::Seconds(3));
}

TEST(WaitGroup, WaitWithTimeoutExpiresWhileWorkRemains) {
  WaitGroup group;
  Scheduler scheduler;
  bool finished = true;
  scheduler.Spawn("coordinator", [&] {
    group.Add(1);
    finished = group.WaitWithTimeout(absl::Seconds(2));
    group.Done();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_FALSE(finished);
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Seconds(2));
}


// ---- Misuse inside a run fails that run, not the process ---------------------------

bool Mentions(const RunResult& result, absl::string_view task_name) {
  for (const TaskReport& task : result.tasks) {
    if (task.name == task_name) return true;
  }
  return false;
}

TEST(MisuseInARun, DestroyingAHeldMutexFailsTheRunNamingBothTasks) {
  std::optional<Mutex> mu;
  mu.emplace();
  Scheduler scheduler;
  scheduler.Spawn("holder", [&] {
    mu->Lock();
    dsim::SleepFor(absl::Hours(1));
  });
  scheduler.Spawn("destroyer", [&] {
    dsim::SleepFor(absl::Seconds(1));
    mu.reset();
  });
  const RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kMisuse);
  EXPECT_FALSE(result.ok());
  EXPECT_EQ(result.failed_task_name, "destroyer");
  EXPECT_NE(result.failure.find("a Mutex was destroyed by task \"destroyer\" while task "
                                "\"holder\" holds it"),
            std::string::npos)
      << result.failure;
  EXPECT_TRUE(Mentions(result, "holder"));
  EXPECT_TRUE(Mentions(result, "destroyer"));
  EXPECT_NE(result.ToString().find("misuse at virtual time +1s"), std::string::npos)
      << result.ToString();
}

TEST(MisuseInARun, UnlockByANonHolderFailsTheRunAndStopsTheTaskThere) {
  Mutex mu;
  bool intruder_went_on = false;
  Scheduler scheduler;
  scheduler.Spawn("owner", [&] {
    MutexLock lock(&mu);
    dsim::SleepFor(absl::Seconds(10));
  });
  scheduler.Spawn("intruder", [&] {
    dsim::SleepFor(absl::Seconds(1));
    mu.Unlock();
    intruder_went_on = true;
  });
  const RunResult result = scheduler.Run();
  ASSERT_EQ(result.outcome, RunOutcome::kMisuse);
  EXPECT_NE(result.failure.find("task \"intruder\" unlocked a Mutex it does not hold (held "
                                "by task 1)"),
            std::string::npos)
      << result.failure;
  EXPECT_TRUE(Mentions(result, "owner"));
  EXPECT_FALSE(intruder_went_on);
  EXPECT_EQ(mu.holder(), 1u);  // The bad unlock changed nothing.
}

TEST(MisuseInARun, DestroyingACondVarWithWaitersFailsTheRunNamingTheWaiter) {
  Mutex mu;
  auto cv = std::make_unique<CondVar>();
  Scheduler scheduler;
  scheduler.Spawn("waiter", [&] {
    MutexLock lock(&mu);
    cv->Wait(&mu);
  });
  scheduler.Spawn("destroyer", [&] {
    dsim::SleepFor(absl::Seconds(1));
    cv.reset();
  });
  const RunResult result = scheduler.Run();
  ASSERT_EQ(result.outcome, RunOutcome::kMisuse);
  EXPECT_NE(result.failure.find("a CondVar was destroyed by task \"destroyer\" while task "
                                "\"waiter\" waits on it"),
            std::string::npos)
      << result.failure;
  EXPECT_TRUE(Mentions(result, "waiter"));
  // The scheduler's destructor unwinds the waiter, which must not touch the dead queue
  // (ASan checks this under --config=asan).
}

TEST(MisuseInARun, OtherMisusesFailTheRunToo) {
  struct Case {
    const char* name;
    std::function<void()> body;
    const char* message;
  };
  Notification notification;
  WaitGroup group;
  Semaphore semaphore(1);
  Mutex mu;
  CondVar cv;
  TaskHandle self;
  const std::vector<Case> cases = {
      {"notify-twice", [&] { notification.Notify(); notification.Notify(); },
       "Notification::Notify called twice"},
      {"wait-group", [&] { group.Done(); }, "WaitGroup counter went negative"},
      {"semaphore", [&] { semaphore.Release(0); }, "the count must be positive"},
      {"wait-unlocked", [&] { cv.Wait(&mu); }, "called CondVar::Wait without holding the mutex"},
      {"assert-held", [&] { mu.AssertHeld(); }, "the calling task does not hold the mutex"},
      {"narcissus", [&] { self.Join(); }, "joined itself"},
  };
  for (const Case& c : cases) {
    Scheduler scheduler;
    self = scheduler.Spawn(c.name, c.body);
    const RunResult result = scheduler.Run();
    EXPECT_EQ(result.outcome, RunOutcome::kMisuse) << c.name;
    EXPECT_EQ(result.failed_task_name, c.name);
    EXPECT_NE(result.failure.find(c.message), std::string::npos) << result.failure;
  }
}

// The shape of a seed sweep: seed-dependent misuse fails those seeds; the loop goes on,
// and each failing seed fails the same way again.
TEST(MisuseInARun, ASweepSurvivesSeedsThatMisuseAndReportsThem) {
  auto run_seed = [](uint64_t seed) {
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    auto mu = std::make_unique<Mutex>();
    bool locked = false;
    scheduler.Spawn("user", [&] {
      mu->Lock();
      locked = true;
      dsim::SchedulingPoint();
      mu->Unlock();  // The last use of *mu.
    });
    scheduler.Spawn("freer", [&] {
      while (!locked) dsim::Yield();
      dsim::SchedulingPoint();
      mu.reset();  // Races with Unlock: misuse in the seeds where "user" still holds it.
    });
    return scheduler.Run();
  };
  int failed = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    const RunResult result = run_seed(seed);
    if (result.ok()) continue;
    ++failed;
    ASSERT_EQ(result.outcome, RunOutcome::kMisuse) << result.ToString();
    EXPECT_EQ(run_seed(seed).ToString(), result.ToString());
  }
  EXPECT_GT(failed, 0);
  EXPECT_LT(failed, 40);
}


// ---- Abseil shapes: move-only task bodies, ReleasableMutexLock, conditions -----------

TEST(Spawn, TakesBodiesWithMoveOnlyCaptures) {
  Scheduler scheduler;
  auto owned = std::make_unique<int>(41);
  int seen = 0;
  scheduler.Spawn("owner", [owned = std::move(owned), &seen]() mutable {
    seen = ++*owned;
    owned.reset();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(seen, 42);
}

TEST(ReleasableMutexLock, ReleaseUnlocksEarlyAndTheDestructorDoesNothing) {
  Mutex mu;
  std::vector<std::string> events;
  Scheduler scheduler;
  scheduler.Spawn("early", [&] {
    ReleasableMutexLock lock(&mu);
    events.push_back("early holds");
    lock.Release();
    EXPECT_EQ(mu.holder(), kNoTask);
    dsim::SleepFor(absl::Seconds(1));
  });
  scheduler.Spawn("late", [&] {
    dsim::SleepFor(absl::Milliseconds(1));
    MutexLock lock(&mu);  // Free while "early" sleeps.
    events.push_back("late holds");
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(events, (std::vector<std::string>{"early holds", "late holds"}));
}

TEST(MutexAwait, LockWhenWaitsForTheConditionUnderEverySeed) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Mutex mu;
    int items = 0;
    std::vector<int> taken;
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    for (int c = 0; c < 3; ++c) {
      scheduler.Spawn(absl::StrCat("consumer-", c), [&] {
        auto has_item = [&] { return items > 0; };
        MutexLock lock(&mu, Condition(&has_item));
        EXPECT_GT(items, 0);
        taken.push_back(items--);
      });
    }
    scheduler.Spawn("producer", [&] {
      for (int i = 0; i < 3; ++i) {
        dsim::SleepFor(absl::Milliseconds(1));
        MutexLock lock(&mu);
        ++items;
      }
    });
    ASSERT_TRUE(scheduler.Run().ok()) << "seed " << seed;
    EXPECT_EQ(taken.size(), 3u);
    EXPECT_EQ(items, 0);
  }
}

TEST(MutexAwait, AwaitWithTimeoutGivesUpExactlyAtTheDeadlineHoldingTheMutex) {
  Mutex mu;
  bool ready = false;
  Scheduler scheduler;
  scheduler.Spawn("waiter", [&] {
    MutexLock lock(&mu);
    EXPECT_FALSE(mu.AwaitWithTimeout(Condition(&ready), absl::Seconds(2)));
    EXPECT_EQ(dsim::Now(), Scheduler::Epoch() + absl::Seconds(2));
    mu.AssertHeld();
  });
  scheduler.Spawn("toggler", [&] {
    dsim::SleepFor(absl::Seconds(1));
    MutexLock lock(&mu);  // A release that does not make the condition true.
  });
  ASSERT_TRUE(scheduler.Run().ok());
}

}  // namespace
}  // namespace dsim

// ---- WaitQueue watchers (what epoll's entries hook into a file's queues) -------------

namespace dsim {
namespace {

struct CountingWatcher : internal::Waiter {
  int notified = 0;
  static void Notify(internal::Waiter* waiter) {
    ++static_cast<CountingWatcher*>(waiter)->notified;
  }
  CountingWatcher() { notify = &CountingWatcher::Notify; }
};

TEST(WaitQueueWatcher, IsNotifiedOnEveryWakeAllAndStaysLinked) {
  Scheduler scheduler;
  internal::WaitQueue queue;
  CountingWatcher watcher;
  queue.Watch(&watcher);
  bool woke = false;
  scheduler.Spawn("waiter", [&] {
    queue.Wait("test", SourceLocation::Current());
    woke = true;
  });
  scheduler.Spawn("waker", [&] {
    while (queue.size() < 2) Yield();  // The watcher and the blocked task.
    EXPECT_EQ(queue.WakeAll(), 1u);  // The task; the watcher is notified, not counted.
    EXPECT_EQ(queue.WakeAll(), 0u);
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_TRUE(woke);
  EXPECT_EQ(watcher.notified, 2);
  EXPECT_EQ(watcher.queue, &queue);
  queue.Remove(&watcher);
  EXPECT_TRUE(queue.empty());
}

TEST(WaitQueueWatcher, DestroyedQueueUnlinksItsWatchers) {
  CountingWatcher watcher;
  {
    internal::WaitQueue queue;
    queue.Watch(&watcher);
    EXPECT_FALSE(queue.empty());
  }
  EXPECT_EQ(watcher.queue, nullptr);
  EXPECT_EQ(watcher.notified, 0);
}

TEST(WaitQueueWatcher, WakeOneNeverPicksAWatcher) {
  Scheduler scheduler;
  internal::WaitQueue queue;
  CountingWatcher watcher;
  queue.Watch(&watcher);  // Ahead of the task in the queue.
  bool woke = false;
  const TaskId waiter = scheduler.Spawn("waiter", [&] {
    queue.Wait("test", SourceLocation::Current());
    woke = true;
  }).id();
  scheduler.Spawn("waker", [&] {
    while (queue.size() < 2) Yield();
    EXPECT_EQ(queue.FirstWaiter(), waiter);
    EXPECT_TRUE(queue.WakeOne());
    EXPECT_FALSE(queue.WakeOne());
  });
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_TRUE(woke);
  EXPECT_EQ(watcher.notified, 0);
  queue.Remove(&watcher);
}

}  // namespace
}  // namespace dsim
