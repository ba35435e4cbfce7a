// Blocking primitives: mutual exclusion, wake-ups, and timeouts exactly at the deadline.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "scheduler/notification.h"
#include "scheduler/scheduler.h"
#include "scheduler/semaphore.h"
#include "scheduler/wait_group.h"

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

}  // namespace
}  // namespace dsim
