// Fiber stacks (guarded and slab), overflow reports, and misuse errors.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/attributes.h"
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


// ---- Overflows by large frames: every shape ends with the named diagnostic ------------

// Keeps `p` (and the writes through it) alive without a real use.
void Keep(volatile char* p) { asm volatile("" : : "r"(p) : "memory"); }

// A 256 KiB local array, filled: four times the task's stack.
ABSL_ATTRIBUTE_NOINLINE void LargeLocalArray() {
  char big[256 * 1024];
  std::memset(big, 1, sizeof(big));
  Keep(big);
}

// A 96 KiB frame, written at both ends.
ABSL_ATTRIBUTE_NOINLINE void NinetySixKiBFrame() {
  volatile char frame[96 * 1024];
  frame[sizeof(frame) - 1] = 1;
  frame[0] = 1;
  Keep(frame);
}

// A large buffer written only at its low end, far below the guard page.
ABSL_ATTRIBUTE_NOINLINE void LowEndWrite() {
  volatile char buffer[200 * 1024];
  buffer[0] = 1;
  Keep(buffer);
}

void OverflowWithNeighbours(void (*shape)()) {
  Scheduler scheduler;
  for (int i = 0; i < 4; ++i) {
    scheduler.Spawn("neighbour", [] { dsim::SleepFor(absl::Hours(1)); },
                    SpawnOptions{.stack_size = 64 * 1024});
  }
  scheduler.Spawn("large-frame", [shape] { shape(); }, SpawnOptions{.stack_size = 64 * 1024});
  scheduler.Run();
}

TEST(FiberStackDeathTest, LargeLocalArrayOnAGuardedStackNamesTheTask) {
  EXPECT_DEATH(OverflowWithNeighbours(&LargeLocalArray),
               "stack overflow in task \"large-frame\"");
}

TEST(FiberStackDeathTest, NinetySixKiBFrameOnAGuardedStackNamesTheTask) {
  EXPECT_DEATH(OverflowWithNeighbours(&NinetySixKiBFrame),
               "stack overflow in task \"large-frame\"");
}

TEST(FiberStackDeathTest, LowEndWriteOnAGuardedStackNamesTheTask) {
  EXPECT_DEATH(OverflowWithNeighbours(&LowEndWrite), "stack overflow in task \"large-frame\"");
}

// In a slab, the lowest slots sit on the slab's guard page: every shape reaches it.
TEST(FiberStackDeathTest, LargeFramesOnTheLowestSlabSlotNameTheTask) {
  for (void (*shape)() : {&LargeLocalArray, &NinetySixKiBFrame, &LowEndWrite}) {
    EXPECT_DEATH(
        {
          GuardedBudget none(0);
          Scheduler scheduler;
          scheduler.Spawn("large-frame", [shape] { shape(); },
                          SpawnOptions{.stack_size = 64 * 1024});
          scheduler.Run();
        },
        "stack overflow in task \"large-frame\"");
  }
}

// Higher in a slab, a large frame that is still active when the task switches away is
// caught there, before any other task runs on the damaged memory.
ABSL_ATTRIBUTE_NOINLINE void LargeFrameAcrossASwitch() {
  volatile char frame[96 * 1024];
  frame[sizeof(frame) - 1] = 1;
  dsim::Yield();
  Keep(frame);
}

TEST(FiberStackDeathTest, LargeFrameActiveAtASwitchOnASlabStackNamesTheTask) {
  EXPECT_DEATH(
      {
        GuardedBudget none(0);
        Scheduler scheduler;
        for (int i = 0; i < 8; ++i) {
          scheduler.Spawn("neighbour", [] { dsim::SleepFor(absl::Hours(1)); },
                          SpawnOptions{.stack_size = 64 * 1024});
        }
        scheduler.Spawn("large-frame", [] { LargeFrameAcrossASwitch(); },
                        SpawnOptions{.stack_size = 64 * 1024});
        scheduler.Run();
      },
      "stack overflow in task \"large-frame\"");
}


TEST(FiberStackDeathTest, RunningOutOfMappingsNamesTheLimitAndTheFix) {
  EXPECT_DEATH(
      {
        Scheduler scheduler;
        StackPool::FailMappingsForTesting(true);  // As at vm.max_map_count.
        for (int i = 0; i < 300; ++i) {
          scheduler.Spawn("many", [] {}, SpawnOptions{.stack_size = 72 * 1024});
        }
      },
      "misuse: cannot create more fiber stacks: mmap of [0-9]+ bytes failed with ENOMEM, "
      "which here means the process reached the kernel's limit on memory mappings, "
      "vm.max_map_count = [0-9]+ .*Raise the limit \\(sysctl -w vm.max_map_count=1048576\\)");
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
