// //posix: standard C++ and POSIX calls made inside tasks are simulated; the same calls
// outside tasks reach the real libc.
#include "posix/posix.h"

#include <pthread.h>
#include <sched.h>
#include <linux/futex.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "scheduler/scheduler.h"

// Test hook of //posix (posix/internal/state.h, not a public header): marks an address
// range as sanitizer-runtime code.
namespace dsim::posix::internal {
void AddRuntimeRangeForTesting(const void* begin, const void* end);
}  // namespace dsim::posix::internal

// A stand-in for a sanitizer runtime: the only code in its own section, whose bounds the
// linker provides, so exactly this function is registered as runtime code. UBSan probes
// memory with pipe() and ASan reads its thread key from inside tasks like this.
extern "C" char __start_dsim_fake_runtime[];
extern "C" char __stop_dsim_fake_runtime[];
__attribute__((section("dsim_fake_runtime"), noinline)) int64_t FakeRuntimeProbe(int* pipe_fds) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (pipe(pipe_fds) != 0) return -1;
  return now.tv_sec;
}

namespace dsim {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

RunResult RunTask(Scheduler& scheduler, std::function<void()> body) {
  scheduler.Spawn("main", std::move(body));
  return scheduler.Run();
}

TEST(PosixTime, ClocksReadVirtualTimeInsideTasksOnly) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  const auto real_before = std::chrono::system_clock::now();
  RunResult result = RunTask(scheduler, [] {
    const auto system_start = std::chrono::system_clock::now();
    EXPECT_EQ(std::chrono::duration_cast<seconds>(system_start.time_since_epoch()).count(),
              946684800);  // 2000-01-01: the simulation's epoch.
    const auto steady_start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(milliseconds(1500));
    EXPECT_EQ(std::chrono::steady_clock::now() - steady_start, milliseconds(1500));
    EXPECT_EQ(std::chrono::system_clock::now() - system_start, milliseconds(1500));
    EXPECT_EQ(time(nullptr), 946684801);
    timespec ts;
    ASSERT_EQ(clock_gettime(CLOCK_BOOTTIME, &ts), 0);
    EXPECT_EQ(ts.tv_sec, 3601);  // Monotonic clocks start an hour before the epoch.
    EXPECT_EQ(ts.tv_nsec, 500000000);
    ASSERT_EQ(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
    EXPECT_EQ(ts.tv_sec, 1);  // CPU clocks: virtual time since the simulation began.
    EXPECT_EQ(clock_gettime(12345, &ts), -1);
    EXPECT_EQ(errno, EINVAL);
    usleep(250000);
    sleep(1);
    timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += 2;
    EXPECT_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, nullptr), 0);
    EXPECT_EQ(std::chrono::steady_clock::now() - steady_start, milliseconds(4750));
    EXPECT_EQ(clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &until, nullptr), EINVAL);
    timespec bad{0, 1000000000};
    EXPECT_EQ(nanosleep(&bad, nullptr), -1);
    EXPECT_EQ(errno, EINVAL);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Milliseconds(4750));
  // Outside the task: the real clock.
  EXPECT_GE(std::chrono::system_clock::now(), real_before);
}

// Host clocks (scheduler/clock.h) reach interposed code: CLOCK_MONOTONIC runs at the
// host's drifted rate and ignores steps, CLOCK_REALTIME follows the host's wall clock,
// and a std::this_thread::sleep_for lasts that long on the host's clock.
TEST(PosixTime, InterposedClocksAndSleepsFollowTheHostClock) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  HostClock clock(scheduler.Now());
  clock.SetDrift(scheduler.Now(), /*drift_ppb=*/100'000'000);  // 10% fast.
  clock.Step(scheduler.Now(), absl::Seconds(-30));            // An NTP step back.
  const GroupId host = 1;
  scheduler.SetGroupClock(host, &clock);
  int64_t monotonic_elapsed_ns = 0;
  int64_t realtime_elapsed_ns = 0;
  absl::Duration true_elapsed;
  scheduler.Spawn("drifting", [&] {
    timespec mono0, mono1, real0, real1;
    clock_gettime(CLOCK_MONOTONIC, &mono0);
    clock_gettime(CLOCK_REALTIME, &real0);
    const absl::Time true_start = scheduler.Now();
    std::this_thread::sleep_for(seconds(11));  // 11 s of host time: 10 s of true time.
    true_elapsed = scheduler.Now() - true_start;
    clock_gettime(CLOCK_MONOTONIC, &mono1);
    clock_gettime(CLOCK_REALTIME, &real1);
    monotonic_elapsed_ns = absl::ToInt64Nanoseconds(absl::DurationFromTimespec(mono1) -
                                                    absl::DurationFromTimespec(mono0));
    realtime_elapsed_ns = absl::ToInt64Nanoseconds(absl::DurationFromTimespec(real1) -
                                                   absl::DurationFromTimespec(real0));
    EXPECT_LT(absl::DurationFromTimespec(real0),
              absl::FromUnixSeconds(946684800) - absl::UnixEpoch());  // Stepped back.
  }, {.group = host});
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(true_elapsed, absl::Seconds(10));
  EXPECT_EQ(monotonic_elapsed_ns, 11'000'000'000);
  EXPECT_EQ(realtime_elapsed_ns, 11'000'000'000);
}

TEST(PosixTime, AbslNowAndSleepForAreVirtual) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  RunResult result = RunTask(scheduler, [] {
    const absl::Time start = absl::Now();
    EXPECT_EQ(start, Scheduler::Epoch());
    absl::SleepFor(absl::Seconds(3));
    EXPECT_EQ(absl::Now() - start, absl::Seconds(3));
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_GT(absl::Now(), absl::FromUnixSeconds(1600000000));  // Real again.
}

TEST(PosixThreads, StdThreadIsATaskOnTheCallersGroup) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  std::vector<std::string> names;
  RunResult result = RunTask(scheduler, [&] {
    std::thread::id main_id = std::this_thread::get_id();
    std::thread::id child_id;
    std::thread t([&] {
      child_id = std::this_thread::get_id();
      names.push_back(std::string(CurrentTaskName()));
      std::this_thread::sleep_for(seconds(1));
    });
    t.join();
    EXPECT_NE(child_id, main_id);
    EXPECT_EQ(Now(), Scheduler::Epoch() + absl::Seconds(1));
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0], "main/thread-1");
}

TEST(PosixThreads, PthreadJoinReturnsValueAndPthreadExitWorks) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  RunResult result = RunTask(scheduler, [] {
    pthread_t a, b;
    static int x = 7;
    ASSERT_EQ(pthread_create(&a, nullptr, [](void*) -> void* { return &x; }, nullptr), 0);
    ASSERT_EQ(pthread_create(&b, nullptr, [](void*) -> void* {
      pthread_exit(reinterpret_cast<void*>(42));
    }, nullptr), 0);
    void* value = nullptr;
    EXPECT_EQ(pthread_join(a, &value), 0);
    EXPECT_EQ(value, &x);
    EXPECT_EQ(pthread_join(b, &value), 0);
    EXPECT_EQ(value, reinterpret_cast<void*>(42));
    EXPECT_EQ(pthread_join(pthread_self(), nullptr), EINVAL);  // Not a created thread.
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixSync, MutexAndConditionVariableHandOff) {
  Scheduler scheduler(SchedulerOptions{.seed = 5});
  std::mutex mu;
  std::condition_variable cv;
  int produced = 0;
  int consumed = 0;
  RunResult result = RunTask(scheduler, [&] {
    std::thread consumer([&] {
      for (int i = 0; i < 10; ++i) {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return produced > consumed; });
        ++consumed;
        cv.notify_all();
      }
    });
    for (int i = 0; i < 10; ++i) {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return produced == consumed; });
      ++produced;
      cv.notify_all();
    }
    consumer.join();
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(consumed, 10);
}

TEST(PosixSync, WaitForTimesOutExactlyAtTheVirtualDeadline) {
  Scheduler scheduler(SchedulerOptions{.seed = 5});
  std::mutex mu;
  std::condition_variable cv;
  RunResult result = RunTask(scheduler, [&] {
    std::unique_lock<std::mutex> lock(mu);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(cv.wait_for(lock, milliseconds(250)), std::cv_status::timeout);
    EXPECT_EQ(std::chrono::steady_clock::now() - start, milliseconds(250));
    EXPECT_EQ(cv.wait_until(lock, std::chrono::system_clock::now() + seconds(2)),
              std::cv_status::timeout);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(scheduler.Now(), Scheduler::Epoch() + absl::Milliseconds(2250));
}

TEST(PosixSync, MutexKindsBehaveAsGlibc) {
  Scheduler scheduler(SchedulerOptions{.seed = 5});
  RunResult result = RunTask(scheduler, [] {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_t recursive;
    pthread_mutex_init(&recursive, &attr);
    EXPECT_EQ(pthread_mutex_lock(&recursive), 0);
    EXPECT_EQ(pthread_mutex_lock(&recursive), 0);
    EXPECT_EQ(pthread_mutex_unlock(&recursive), 0);
    EXPECT_EQ(pthread_mutex_unlock(&recursive), 0);
    EXPECT_EQ(pthread_mutex_unlock(&recursive), EPERM);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
    pthread_mutex_t checked;
    pthread_mutex_init(&checked, &attr);
    EXPECT_EQ(pthread_mutex_lock(&checked), 0);
    EXPECT_EQ(pthread_mutex_lock(&checked), EDEADLK);
    EXPECT_EQ(pthread_mutex_trylock(&checked), EBUSY);
    std::thread other([&] {
      EXPECT_EQ(pthread_mutex_unlock(&checked), EPERM);
      EXPECT_EQ(pthread_mutex_trylock(&checked), EBUSY);
      timespec deadline;
      clock_gettime(CLOCK_REALTIME, &deadline);
      deadline.tv_sec += 1;
      EXPECT_EQ(pthread_mutex_timedlock(&checked, &deadline), ETIMEDOUT);
    });
    other.join();
    EXPECT_EQ(Now(), Scheduler::Epoch() + absl::Seconds(1));
    EXPECT_EQ(pthread_mutex_unlock(&checked), 0);
    pthread_mutex_destroy(&checked);
    pthread_mutex_destroy(&recursive);
    pthread_mutexattr_destroy(&attr);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
}

// //posix caches where a pthread mutex's simulated state is in the mutex's own bytes
// (sync.cc, MutexOf). The cache must never be trusted across simulations: here `a`
// keeps the tag of the first run's slot 0, which in the second run is `b`'s slot.
TEST(PosixSync, MutexTagLeftByAnotherSimulationIsNotTrusted) {
  pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_t b = PTHREAD_MUTEX_INITIALIZER;
  {
    Scheduler first(SchedulerOptions{.seed = 1});
    RunResult result = RunTask(first, [&] {
      EXPECT_EQ(pthread_mutex_lock(&a), 0);
      EXPECT_EQ(pthread_mutex_unlock(&a), 0);
      EXPECT_EQ(pthread_mutex_lock(&b), 0);
      EXPECT_EQ(pthread_mutex_unlock(&b), 0);
    });
    ASSERT_TRUE(result.ok()) << result.ToString();
  }
  // Between runs, real code uses the same objects with the real libc.
  EXPECT_EQ(pthread_mutex_lock(&a), 0);
  EXPECT_EQ(pthread_mutex_trylock(&a), EBUSY);
  EXPECT_EQ(pthread_mutex_unlock(&a), 0);
  Scheduler second(SchedulerOptions{.seed = 2});
  int a_locked = -1;
  second.Spawn("holds-b", [&] {
    EXPECT_EQ(pthread_mutex_lock(&b), 0);  // b gets this run's slot 0.
    std::this_thread::sleep_for(milliseconds(10));
    EXPECT_EQ(pthread_mutex_unlock(&b), 0);
  });
  second.Spawn("takes-a", [&] {
    std::this_thread::sleep_for(milliseconds(1));
    a_locked = pthread_mutex_trylock(&a);  // Free: a is not b.
    if (a_locked == 0) {
      EXPECT_EQ(pthread_mutex_unlock(&a), 0);
    }
  });
  RunResult result = second.Run();
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(a_locked, 0);
  EXPECT_EQ(pthread_mutex_destroy(&a), 0);
  EXPECT_EQ(pthread_mutex_destroy(&b), 0);
}

// Simulations on two OS threads that share one mutex (a library's global) each keep
// their own view of it; the tag in the object flips between them without confusing
// either run.
TEST(PosixSync, MutexSharedBySimulationsOnTwoThreads) {
  static pthread_mutex_t shared = PTHREAD_MUTEX_INITIALIZER;
  auto run = [](uint64_t seed, bool* ok) {
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    pthread_mutex_t own = PTHREAD_MUTEX_INITIALIZER;
    int64_t total = 0;
    for (int i = 0; i < 2; ++i) {
      scheduler.Spawn("locker", [&] {
        for (int n = 0; n < 2000; ++n) {
          pthread_mutex_lock(&own);  // Takes slot 0 or 1 in each run, in its own order.
          pthread_mutex_lock(&shared);
          ++total;
          pthread_mutex_unlock(&shared);
          pthread_mutex_unlock(&own);
        }
      });
    }
    RunResult result = scheduler.Run();
    *ok = result.ok() && total == 4000;
  };
  bool ok1 = false, ok2 = false;
  std::thread t1(run, 1, &ok1);
  std::thread t2(run, 2, &ok2);
  t1.join();
  t2.join();
  EXPECT_TRUE(ok1);
  EXPECT_TRUE(ok2);
}

// Robust mutexes keep glibc's robust-list word untouched (their __list is glibc's).
TEST(PosixSync, RobustMutexBytesAreNotTagged) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_t robust;
  pthread_mutex_init(&robust, &attr);
  pthread_mutex_t normal;
  pthread_mutex_init(&normal, nullptr);
  Scheduler scheduler(SchedulerOptions{.seed = 4});
  RunResult result = RunTask(scheduler, [&] {
    EXPECT_EQ(pthread_mutex_lock(&robust), 0);
    EXPECT_EQ(pthread_mutex_unlock(&robust), 0);
    EXPECT_EQ(pthread_mutex_lock(&normal), 0);
    EXPECT_EQ(pthread_mutex_unlock(&normal), 0);
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(robust.__data.__list.__next, nullptr);
  EXPECT_NE(normal.__data.__list.__next, nullptr);  // The tag (the cache is in use).
  EXPECT_EQ(pthread_mutex_lock(&robust), 0);  // Real again, outside the run.
  EXPECT_EQ(pthread_mutex_unlock(&robust), 0);
  EXPECT_EQ(pthread_mutex_destroy(&robust), 0);
  EXPECT_EQ(pthread_mutex_destroy(&normal), 0);
  pthread_mutexattr_destroy(&attr);
}

TEST(PosixSync, LockOrderDeadlockIsReportedWithTheCallers) {
  Scheduler scheduler(SchedulerOptions{.seed = 2});
  std::mutex a, b;
  scheduler.Spawn("one", [&] {
    std::lock_guard<std::mutex> first(a);
    std::this_thread::sleep_for(milliseconds(1));
    std::lock_guard<std::mutex> second(b);
  });
  scheduler.Spawn("two", [&] {
    std::lock_guard<std::mutex> first(b);
    std::this_thread::sleep_for(milliseconds(1));
    std::lock_guard<std::mutex> second(a);
  });
  RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kDeadlock);
  const std::string report = result.ToString();
  EXPECT_NE(report.find("task \"one\" blocked in pthread_mutex_lock at "), std::string::npos)
      << report;
  EXPECT_NE(report.find("task \"two\" blocked in pthread_mutex_lock at "), std::string::npos)
      << report;
  EXPECT_NE(report.find("posix_test"), std::string::npos) << report;
  std::cout << report << "\n";
}

TEST(PosixSync, SharedMutexAndOnceAndKeys) {
  Scheduler scheduler(SchedulerOptions{.seed = 9});
  static pthread_key_t key;
  static int destroyed = 0;
  pthread_key_create(&key, [](void*) { ++destroyed; });
  std::shared_mutex rw;
  std::once_flag once;
  int once_calls = 0;
  int readers_inside = 0, max_readers = 0;
  RunResult result = RunTask(scheduler, [&] {
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
      threads.emplace_back([&, i] {
        std::call_once(once, [&] { ++once_calls; });
        pthread_setspecific(key, reinterpret_cast<void*>(intptr_t{i + 1}));
        {
          std::shared_lock<std::shared_mutex> lock(rw);
          ++readers_inside;
          max_readers = std::max(max_readers, readers_inside);
          std::this_thread::sleep_for(milliseconds(5));
          --readers_inside;
        }
        EXPECT_EQ(pthread_getspecific(key), reinterpret_cast<void*>(intptr_t{i + 1}));
        std::unique_lock<std::shared_mutex> lock(rw);
        EXPECT_EQ(readers_inside, 0);
      });
    }
    for (std::thread& t : threads) t.join();
    EXPECT_EQ(pthread_getspecific(key), nullptr);  // The main task set nothing.
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
  EXPECT_EQ(once_calls, 1);
  EXPECT_EQ(max_readers, 3);
  EXPECT_EQ(destroyed, 3);
  pthread_key_delete(key);
}

// What std::atomic<int>::wait / notify_one compile to in C++20 (this suite is C++17).
TEST(PosixSync, FutexWaitAndWakeAreSimulated) {
  Scheduler scheduler(SchedulerOptions{.seed = 9});
  RunResult result = RunTask(scheduler, [] {
    std::atomic<int> flag{0};
    std::thread waker([&] {
      std::this_thread::sleep_for(seconds(1));
      flag.store(1);
      EXPECT_EQ(syscall(SYS_futex, &flag, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0), 1);
    });
    timespec timeout{0, 1000};
    EXPECT_EQ(syscall(SYS_futex, &flag, FUTEX_WAIT_PRIVATE, 0, &timeout, nullptr, 0), -1);
    EXPECT_EQ(errno, ETIMEDOUT);
    EXPECT_EQ(syscall(SYS_futex, &flag, FUTEX_WAIT_PRIVATE, 5, nullptr, nullptr, 0), -1);
    EXPECT_EQ(errno, EAGAIN);
    while (flag.load() == 0) {
      syscall(SYS_futex, &flag, FUTEX_WAIT_PRIVATE, 0, nullptr, nullptr, 0);
    }
    EXPECT_EQ(flag.load(), 1);
    EXPECT_EQ(Now(), Scheduler::Epoch() + absl::Seconds(1));
    waker.join();
  });
  ASSERT_TRUE(result.ok()) << result.ToString();
}

TEST(PosixRandom, GetrandomReplaysBySeed) {
  auto draw = [](uint64_t seed) {
    Scheduler scheduler(SchedulerOptions{.seed = seed});
    uint64_t values[3] = {};
    RunTask(scheduler, [&] {
      EXPECT_EQ(getrandom(&values[0], 8, 0), 8);
      EXPECT_EQ(getentropy(&values[1], 8), 0);
      EXPECT_EQ(syscall(SYS_getrandom, &values[2], 8, 0), 8);
    });
    return std::vector<uint64_t>(values, values + 3);
  };
  EXPECT_EQ(draw(4), draw(4));
  EXPECT_NE(draw(4), draw(5));
}

TEST(PosixEscapes, ForkInATaskFailsTheRunNamingTaskAndCall) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  scheduler.Spawn("forker", [] { EXPECT_EQ(fork(), -1); });
  RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_NE(result.ToString().find("task \"forker\" called fork from "), std::string::npos)
      << result.ToString();
  // The user's side of the call, not //posix's fork or its helper (both linked into
  // this executable). Which user frame depends on inlining (-O1 folds the lambda into
  // absl's invoker), so only //posix's own frames are ruled out.
  EXPECT_EQ(result.ToString().find("called fork from fork "), std::string::npos)
      << result.ToString();
  EXPECT_EQ(result.ToString().find("Refuse"), std::string::npos) << result.ToString();
  std::vector<posix::EscapedCall> escapes = posix::EscapedCalls(scheduler);
  ASSERT_EQ(escapes.size(), 1u);
  EXPECT_TRUE(escapes[0].fatal);
  EXPECT_EQ(escapes[0].call, "fork");
}

TEST(PosixEscapes, RawSocketSyscallFailsTheRun) {
  Scheduler scheduler(SchedulerOptions{.seed = 1});
  scheduler.Spawn("raw", [] { EXPECT_EQ(syscall(SYS_socket, AF_INET, SOCK_STREAM, 0), -1); });
  RunResult result = scheduler.Run();
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_NE(result.ToString().find("raw system call"), std::string::npos) << result.ToString();
}

TEST(PosixPassThrough, OutsideTasksEverythingIsReal) {
  std::mutex mu;
  std::condition_variable cv;
  bool ready = false;
  std::thread t([&] {
    std::this_thread::sleep_for(milliseconds(1));
    std::lock_guard<std::mutex> lock(mu);
    ready = true;
    cv.notify_one();
  });
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return ready; });
  }
  t.join();
  EXPECT_GT(time(nullptr), 1600000000);
  EXPECT_TRUE(posix::Linked());
}

TEST(PosixPassThrough, CallsFromASanitizerRuntimeReachTheRealLibcInsideTasks) {
  posix::internal::AddRuntimeRangeForTesting(__start_dsim_fake_runtime, __stop_dsim_fake_runtime);
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  // The task is on no host: a pipe() of its own would fail the run as an escape.
  RunResult result = RunTask(scheduler, [] {
    int fds[2] = {-1, -1};
    EXPECT_GT(FakeRuntimeProbe(fds), 1600000000);  // Real time, not 2000-01-01.
    ASSERT_GE(fds[0], 0);
    EXPECT_EQ(write(fds[1], "x", 1), 1);  // Real descriptors (the task is on no host).
    char byte = 0;
    EXPECT_EQ(read(fds[0], &byte, 1), 1);
    EXPECT_EQ(byte, 'x');
    close(fds[0]);
    close(fds[1]);
    EXPECT_EQ(time(nullptr), 946684800);  // The task's own calls stay simulated.
  });
  EXPECT_TRUE(result.ok()) << result.ToString();
}

}  // namespace
}  // namespace dsim
