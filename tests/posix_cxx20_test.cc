// C++20 synchronization compiled by a user's target (this one builds with -std=c++20;
// the library itself is C++17): std::latch, std::barrier, std::counting_semaphore and
// std::atomic::wait reach //posix through syscall(SYS_futex) and sched_yield, so they
// block tasks in virtual time instead of the process's one thread.
#include <atomic>
#include <barrier>
#include <chrono>
#include <latch>
#include <semaphore>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "scheduler/scheduler.h"

static_assert(__cplusplus >= 202002L, "this test must be compiled as C++20");

namespace dsim {
namespace {

using std::chrono::milliseconds;

RunResult RunTask(Scheduler& scheduler, std::function<void()> body) {
  scheduler.Spawn("main", std::move(body));
  return scheduler.Run();
}

TEST(PosixCxx20, LatchBarrierSemaphoreAndAtomicWaitBlockTasksInVirtualTime) {
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  int phases = 0;
  RunResult result = RunTask(scheduler, [&] {
    const auto start = std::chrono::steady_clock::now();
    std::latch done(3);
    std::barrier sync(3, [&]() noexcept { ++phases; });
    std::counting_semaphore<4> slots(0);
    std::atomic<int> flag{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([&, t] {
        std::this_thread::sleep_for(milliseconds(10 * (t + 1)));
        sync.arrive_and_wait();  // Phase 1 ends when the slowest (30 ms) arrives.
        sync.arrive_and_wait();
        slots.release();
        done.count_down();
      });
    }
    std::thread waker([&] {
      std::this_thread::sleep_for(milliseconds(50));
      flag.store(1);
      flag.notify_all();
    });
    done.wait();
    EXPECT_EQ(std::chrono::steady_clock::now() - start, milliseconds(30));
    for (int i = 0; i < 3; ++i) slots.acquire();
    EXPECT_FALSE(slots.try_acquire());
    flag.wait(0);  // Until the waker stores 1 at 50 ms.
    EXPECT_EQ(std::chrono::steady_clock::now() - start, milliseconds(50));
    for (std::thread& thread : threads) thread.join();
    waker.join();
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(phases, 2);
  for (const posix::EscapedCall& call : posix::EscapedCalls(scheduler)) {
    ADD_FAILURE() << "escaped: " << call.call << " " << call.detail;
  }
}

}  // namespace
}  // namespace dsim
