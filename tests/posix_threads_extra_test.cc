// //posix: pthread barriers and pthread_key_delete inside tasks.
#include <pthread.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "posix/posix.h"
#include "scheduler/scheduler.h"

namespace dsim {
namespace {

RunResult RunTask(std::function<void()> body, uint64_t seed = 1) {
  Scheduler scheduler(SchedulerOptions{.seed = seed});
  scheduler.Spawn("main", std::move(body));
  return scheduler.Run();
}

TEST(PosixBarrier, OneSerialWaiterPerRoundAndNobodyLeavesBeforeTheLastArrives) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    constexpr int kThreads = 4;
    constexpr int kRounds = 3;
    int serial[kRounds] = {};
    int arrived[kRounds] = {};
    bool early = false;
    RunResult result = RunTask(
        [&] {
          pthread_barrier_t barrier;
          ASSERT_EQ(pthread_barrier_init(&barrier, nullptr, kThreads), 0);
          std::vector<std::thread> threads;
          for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&, t] {
              for (int round = 0; round < kRounds; ++round) {
                usleep(100 * (t + round));  // Arrive at different virtual times.
                ++arrived[round];
                const int r = pthread_barrier_wait(&barrier);
                if (arrived[round] != kThreads) early = true;
                if (r == PTHREAD_BARRIER_SERIAL_THREAD) {
                  ++serial[round];
                } else {
                  EXPECT_EQ(r, 0);
                }
              }
            });
          }
          for (std::thread& thread : threads) thread.join();
          EXPECT_EQ(pthread_barrier_destroy(&barrier), 0);
        },
        seed);
    ASSERT_TRUE(result.ok()) << result.ToString();
    EXPECT_FALSE(early) << "seed " << seed;
    for (int round = 0; round < kRounds; ++round) EXPECT_EQ(serial[round], 1) << round;
  }
}

TEST(PosixBarrier, CountZeroIsInvalidAndABlockedBarrierIsBusy) {
  RunResult result = RunTask([] {
    pthread_barrier_t barrier;
    EXPECT_EQ(pthread_barrier_init(&barrier, nullptr, 0), EINVAL);
    ASSERT_EQ(pthread_barrier_init(&barrier, nullptr, 2), 0);
    std::thread waiter([&] { pthread_barrier_wait(&barrier); });
    usleep(1000);
    EXPECT_EQ(pthread_barrier_destroy(&barrier), EBUSY);
    EXPECT_EQ(pthread_barrier_wait(&barrier), PTHREAD_BARRIER_SERIAL_THREAD);
    waiter.join();
    EXPECT_EQ(pthread_barrier_destroy(&barrier), 0);
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixBarrier, AWaiterThatNeverGetsCompanyIsADeadlockReport) {
  RunResult result = RunTask([] {
    static pthread_barrier_t barrier;
    ASSERT_EQ(pthread_barrier_init(&barrier, nullptr, 2), 0);
    pthread_barrier_wait(&barrier);
  });
  EXPECT_FALSE(result.ok());
  EXPECT_NE(result.ToString().find("pthread_barrier_wait"), std::string::npos)
      << result.ToString();
}

int destructor_calls = 0;
void CountDestructor(void*) { ++destructor_calls; }

TEST(PosixKeys, ADeletedKeysValuesAreUnreachableAndItsNumberStartsEmpty) {
  destructor_calls = 0;
  RunResult result = RunTask([] {
    pthread_key_t key;
    ASSERT_EQ(pthread_key_create(&key, CountDestructor), 0);
    std::thread thread([key] {
      static int value;
      ASSERT_EQ(pthread_setspecific(key, &value), 0);
      ASSERT_EQ(pthread_getspecific(key), &value);
      ASSERT_EQ(pthread_key_delete(key), 0);
      EXPECT_EQ(pthread_getspecific(key), nullptr);
      pthread_key_t again;
      ASSERT_EQ(pthread_key_create(&again, nullptr), 0);
      EXPECT_EQ(again, key);  // glibc hands out the lowest free key.
      EXPECT_EQ(pthread_getspecific(again), nullptr);
      ASSERT_EQ(pthread_key_delete(again), 0);
    });
    thread.join();
    EXPECT_EQ(pthread_key_delete(key), EINVAL);  // Already deleted.
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(destructor_calls, 0);  // Deleted keys' destructors never run.
}

}  // namespace
}  // namespace dsim
