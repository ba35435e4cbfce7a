// Fiber stacks (guarded and slab), overflow reports, and misuse errors.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/stack_pool.h"
#include "scheduler/mutex.h"
#include "scheduler/notification.h"
#include "scheduler/scheduler.h"

namespace dsim {
namespace {

using internal::StackPool;

// Restores the process-wide guarded-stack budget when a test is done with it.
class GuardedBudget {
 public:
  explicit GuardedBudget(int64_t budget)
      : previous_(StackPool::SetGuardedStackBudgetForTesting(budget)) {}
  ~GuardedBudget() { StackPool::SetGuardedStackBudgetForTesting(previous_); }

 private:
  int64_t previous_;
};

// Recursion that writes its whole frame, as most deep recursion does.
int RecurseDensely(int depth) {
  volatile char frame[512];
  for (char& c : const_cast<char(&)[512]>(frame)) c = static_cast<char>(depth);
  if (depth == 0) return frame[0];
  return RecurseDensely(depth - 1) + frame[1];
}

// Recursion the compiler cannot turn into a loop or drop.
int Recurse(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  if (depth == 0) return frame[0];
  return Recurse(depth - 1) + frame[0];
}

void OverflowInATask() {
  Scheduler scheduler;
  scheduler.Spawn("deep-recursion", [] { Recurse(1 << 20); },
                  SpawnOptions{.stack_size = 64 * 1024});
  scheduler.Run();
}

TEST(FiberStackDeathTest, OverflowOnAGuardedStackNamesTheTask) {
  EXPECT_DEATH(OverflowInATask(), "stack overflow in task \"deep-recursion\"");
}

TEST(FiberStackDeathTest, OverflowOnASlabStackNamesTheTask) {
  // No guarded stacks left: the task gets a slab stack with a canary.
  EXPECT_DEATH(
      {
        GuardedBudget none(0);
        OverflowInATask();
      },
      "stack overflow in task \"deep-recursion\"");
}

TEST(FiberStackDeathTest, ModestOverflowOnASlabStackIsCaughtAtTheNextSwitch) {
  // A task that runs past its slab slot by a little, into the neighbour's top bytes,
  // then returns and blocks: the canary check at the switch names it before any other
  // task runs on the damaged memory.
  EXPECT_DEATH(
      {
        GuardedBudget none(0);
        Scheduler scheduler;
        scheduler.Spawn("neighbour", [] { dsim::SleepFor(absl::Hours(1)); });
        scheduler.Spawn("slightly-too-deep", [] {
          RecurseDensely(140);  // Over 72 KiB of frames on a 64 KiB stack.
          dsim::SleepFor(absl::Seconds(1));
        }, SpawnOptions{.stack_size = 64 * 1024});
        scheduler.Run();
      },
      "stack overflow in task \"slightly-too-deep\"");
}

TEST(FiberStack, SlabStacksRunTasksNormally) {
  GuardedBudget none(0);
  Scheduler scheduler;
  int finished = 0;
  for (int i = 0; i < 200; ++i) {
    scheduler.Spawn(absl::StrCat("slab-", i), [&] {
      Recurse(20);
      dsim::SleepFor(absl::Milliseconds(1));
      ++finished;
    });
  }
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(finished, 200);
}

TEST(FiberStack, GuardedStacksStayWithinTheProcessBudget) {
  GuardedBudget small(16);
  Scheduler scheduler;
  for (int i = 0; i < 100; ++i) {
    scheduler.Spawn("sleeper", [] { dsim::SleepFor(absl::Seconds(1)); });
  }
  scheduler.RunFor(absl::Milliseconds(1));
  EXPECT_LE(StackPool::GuardedStacksInProcess(), 16);
  EXPECT_TRUE(scheduler.Run().ok());
}

TEST(FiberStack, StacksAreReusedAfterTasksFinish) {
  Scheduler scheduler;
  scheduler.Spawn("parent", [] {
    for (int i = 0; i < 1000; ++i) Spawn("child", [] {}).Join();
  });
  const int64_t guarded_before = StackPool::GuardedStacksInProcess();
  ASSERT_TRUE(scheduler.Run().ok());
  // A thousand sequential children share a handful of stacks.
  EXPECT_LE(StackPool::GuardedStacksInProcess() - guarded_before, 4);
}

void RunTenSleepers() {
  Scheduler scheduler;
  for (int i = 0; i < 10; ++i) {
    scheduler.Spawn("sleeper", [] { dsim::SleepFor(absl::Milliseconds(1)); });
  }
  ASSERT_TRUE(scheduler.Run().ok());
}

TEST(FiberStack, SequentialSchedulersOnAThreadReuseTheirStacks) {
  // A seed sweep builds one scheduler after another; mapping fresh stacks for each
  // dominated sweeps before stacks were cached per thread.
  std::thread([] {
    RunTenSleepers();
    const int64_t after_first = StackPool::GuardedStacksInProcess();
    for (int i = 0; i < 20; ++i) RunTenSleepers();
    EXPECT_EQ(StackPool::GuardedStacksInProcess(), after_first);
  }).join();
}

TEST(FiberStack, AThreadsCachedStacksAreUnmappedWhenItExits) {
  const int64_t before = StackPool::GuardedStacksInProcess();
  std::thread([] { RunTenSleepers(); }).join();
  EXPECT_EQ(StackPool::GuardedStacksInProcess(), before);
}

// ---- Misuse: clear, always-on errors -------------------------------------------

TEST(MisuseDeathTest, BlockingOutsideATask) {
  EXPECT_DEATH(dsim::SleepFor(absl::Seconds(1)),
               "misuse: dsim::SleepFor was called with no simulation running on this thread");
}

TEST(MisuseDeathTest, BlockingInATimerCallback) {
  EXPECT_DEATH(
      {
        Scheduler scheduler;
        scheduler.AddTimer(Scheduler::Epoch() + absl::Seconds(1),
                           [] { dsim::SleepFor(absl::Seconds(1)); });
        scheduler.Run();
      },
      "SleepUntil was called outside a task");
}

TEST(MisuseDeathTest, LockingAMutexOutsideATask) {
  EXPECT_DEATH(
      {
        Mutex mu;
        mu.Lock();
      },
      "Mutex::Lock was called outside a task");
}

TEST(MisuseDeathTest, JoiningFromOutsideATask) {
  EXPECT_DEATH(
      {
        Scheduler scheduler;
        TaskHandle handle = scheduler.Spawn("worker", [] {});
        handle.Join();
      },
      "TaskHandle::Join was called outside a task");
}

// Misuse inside a run fails the run (tests/primitives_test.cc, MisuseInARun); misuse
// outside a run still ends the process.
TEST(MisuseDeathTest, DestroyingAHeldMutexOutsideARun) {
  EXPECT_DEATH(
      {
        auto mu = std::make_unique<Mutex>();
        Scheduler scheduler;
        scheduler.Spawn("holder", [&] {
          mu->Lock();
          dsim::SleepFor(absl::Hours(1));
        });
        scheduler.RunFor(absl::Seconds(1));
        mu.reset();  // Between runs: process-ending.
      },
      "misuse: a Mutex was destroyed by the main thread while task \"holder\" holds it");
}

TEST(MisuseDeathTest, NotifyingTwice) {
  EXPECT_DEATH(
      {
        Notification n;
        n.Notify();
        n.Notify();
      },
      "Notification::Notify called twice");
}

TEST(MisuseDeathTest, RunningASchedulerFromItsOwnTask) {
  EXPECT_DEATH(
      {
        Scheduler scheduler;
        scheduler.Spawn("recursive", [&] { scheduler.Run(); });
        scheduler.Run();
      },
      "Scheduler::Run called while a run is active");
}

}  // namespace
}  // namespace dsim
