// //posix costs. Run with -c opt:
//   ./bazelw run -c opt //bench:posix_bench
//
// Pass-through: what every call made outside a task pays for being interposed
// (BM_PassThrough*, through the interposer) against the real libc function reached
// directly (BM_Direct*, a pointer from dlsym(RTLD_NEXT)). Target: at most 1.3x.
//
// Inside a task: the standard-library spelling through //posix (BM_Std*) against dsim's
// native primitive (BM_Dsim*). Target: at most 1.5x.
#include <dlfcn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "posix/posix.h"
#include "scheduler/mutex.h"
#include "scheduler/scheduler.h"
#include "net/network.h"
#include "sockets/socket.h"

namespace {

// ->Apply(FixedIterations): DSIM_BENCH_ITERATIONS=n fixes the iteration count, so
// bench/posix_bench_callgrind.sh can count instructions at two counts and subtract.
void FixedIterations(benchmark::internal::Benchmark* benchmark) {
  if (const char* n = std::getenv("DSIM_BENCH_ITERATIONS")) {
    benchmark->Iterations(std::strtoll(n, nullptr, 10));
  }
}

template <typename F>
F Direct(const char* name) {
  // RTLD_NEXT from the main program skips the program's own (interposing) definition.
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}

// ---- Pass-through ---------------------------------------------------------------------

void BM_PassThroughClockGettime(benchmark::State& state) {
  timespec ts;
  for (auto _ : state) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
    benchmark::DoNotOptimize(ts);
  }
}
BENCHMARK(BM_PassThroughClockGettime)->Apply(FixedIterations);

void BM_DirectClockGettime(benchmark::State& state) {
  auto direct = Direct<int (*)(clockid_t, timespec*)>("clock_gettime");
  timespec ts;
  for (auto _ : state) {
    direct(CLOCK_MONOTONIC, &ts);
    benchmark::DoNotOptimize(ts);
  }
}
BENCHMARK(BM_DirectClockGettime)->Apply(FixedIterations);

void BM_PassThroughMutexLockUnlock(benchmark::State& state) {
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  for (auto _ : state) {
    pthread_mutex_lock(&mu);
    pthread_mutex_unlock(&mu);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_PassThroughMutexLockUnlock)->Apply(FixedIterations);

void BM_DirectMutexLockUnlock(benchmark::State& state) {
  auto lock = Direct<int (*)(pthread_mutex_t*)>("pthread_mutex_lock");
  auto unlock = Direct<int (*)(pthread_mutex_t*)>("pthread_mutex_unlock");
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  for (auto _ : state) {
    lock(&mu);
    unlock(&mu);
    benchmark::ClobberMemory();
  }
}
BENCHMARK(BM_DirectMutexLockUnlock)->Apply(FixedIterations);

// A real pipe, one byte written (directly) and read per iteration.
template <bool kInterposed>
void PipeRead(benchmark::State& state) {
  auto direct_read = Direct<ssize_t (*)(int, void*, size_t)>("read");
  auto direct_write = Direct<ssize_t (*)(int, const void*, size_t)>("write");
  int fds[2];
  if (pipe(fds) != 0) {
    state.SkipWithError("pipe");
    return;
  }
  char byte = 'x';
  for (auto _ : state) {
    direct_write(fds[1], &byte, 1);
    if (kInterposed) {
      benchmark::DoNotOptimize(read(fds[0], &byte, 1));
    } else {
      benchmark::DoNotOptimize(direct_read(fds[0], &byte, 1));
    }
  }
  close(fds[0]);
  close(fds[1]);
}

void BM_PassThroughPipeRead(benchmark::State& state) { PipeRead<true>(state); }
BENCHMARK(BM_PassThroughPipeRead)->Apply(FixedIterations);
void BM_DirectPipeRead(benchmark::State& state) { PipeRead<false>(state); }
BENCHMARK(BM_DirectPipeRead)->Apply(FixedIterations);

// ---- Inside tasks -----------------------------------------------------------------------
// Google Benchmark reads clocks to time itself; inside a task those clocks are virtual,
// so each benchmark runs its whole batch of iterations in one simulation, timed from
// outside (manual time = wall time; the `cpu_ns` counter = this thread's CPU time, the
// steadier figure on a shared machine).

// This thread's CPU time: unlike wall time, a loaded machine does not inflate it.
double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs the simulation and reports its wall time per iteration (manual time) and its
// CPU time per iteration (the `cpu_ns` counter).
void TimeRun(benchmark::State& state, dsim::Scheduler& scheduler, int64_t iterations) {
  const double cpu_start = ThreadCpuSeconds();
  const auto start = std::chrono::steady_clock::now();
  scheduler.Run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double cpu_seconds = ThreadCpuSeconds() - cpu_start;
  for (auto _ : state) state.SetIterationTime(seconds / static_cast<double>(iterations));
  state.counters["cpu_ns"] = cpu_seconds * 1e9 / static_cast<double>(iterations);
}

template <typename Body>
void RunBatch(benchmark::State& state, Body spawn) {
  const int64_t iterations = state.max_iterations;
  dsim::Scheduler scheduler;
  spawn(scheduler, iterations);
  TimeRun(state, scheduler, iterations);
}

// Two tasks taking turns on one mutex (as //bench:scheduler_bench BM_MutexHandoff).
template <typename Mutex, typename Lock>
void MutexHandoff(benchmark::State& state) {
  Mutex mu;
  int64_t count = 0;
  RunBatch(state, [&](dsim::Scheduler& scheduler, int64_t iterations) {
    for (int i = 0; i < 2; ++i) {
      scheduler.Spawn(absl::StrCat("locker-", i), [&, iterations] {
        for (;;) {
          Lock lock(mu);
          if (count >= iterations) break;
          ++count;
        }
      });
    }
  });
}

struct DsimLock {
  explicit DsimLock(dsim::Mutex& mu) : lock(&mu) {}
  dsim::MutexLock lock;
};

void BM_StdMutexHandoff(benchmark::State& state) {
  MutexHandoff<std::mutex, std::lock_guard<std::mutex>>(state);
}
BENCHMARK(BM_StdMutexHandoff)->UseManualTime()->Apply(FixedIterations);
void BM_DsimMutexHandoff(benchmark::State& state) { MutexHandoff<dsim::Mutex, DsimLock>(state); }
BENCHMARK(BM_DsimMutexHandoff)->UseManualTime()->Apply(FixedIterations);

// Strict alternation through a condition variable.
void BM_StdCondVarPingPong(benchmark::State& state) {
  std::mutex mu;
  std::condition_variable turn_changed;
  int turn = 0;
  int64_t count = 0;
  RunBatch(state, [&](dsim::Scheduler& scheduler, int64_t iterations) {
    for (int me = 0; me < 2; ++me) {
      scheduler.Spawn(absl::StrCat("player-", me), [&, me, iterations] {
        std::unique_lock<std::mutex> lock(mu);
        for (;;) {
          while (turn != me && count < iterations) turn_changed.wait(lock);
          if (count >= iterations) break;
          ++count;
          turn = 1 - me;
          turn_changed.notify_one();
        }
        turn_changed.notify_one();
      });
    }
  });
}
BENCHMARK(BM_StdCondVarPingPong)->UseManualTime()->Apply(FixedIterations);

void BM_DsimCondVarPingPong(benchmark::State& state) {
  dsim::Mutex mu;
  dsim::CondVar turn_changed;
  int turn = 0;
  int64_t count = 0;
  RunBatch(state, [&](dsim::Scheduler& scheduler, int64_t iterations) {
    for (int me = 0; me < 2; ++me) {
      scheduler.Spawn(absl::StrCat("player-", me), [&, me, iterations] {
        dsim::MutexLock lock(&mu);
        for (;;) {
          while (turn != me && count < iterations) turn_changed.Wait(&mu);
          if (count >= iterations) break;
          ++count;
          turn = 1 - me;
          turn_changed.Signal();
        }
        turn_changed.Signal();
      });
    }
  });
}
BENCHMARK(BM_DsimCondVarPingPong)->UseManualTime()->Apply(FixedIterations);

// ---- Echo over simulated TCP: epoll + libc names against dsim's native calls ----------

constexpr size_t kEchoBytes = 64;

sockaddr_storage ServerAddress(socklen_t* length) {
  sockaddr_storage address;
  *length = dsim::MakeSockaddr("10.0.0.1", 7000, &address);
  return address;
}

// One round trip per iteration: the client writes 64 bytes and reads them back.
template <bool kEpoll>
void TcpEcho(benchmark::State& state) {
  const int64_t iterations = state.max_iterations;
  dsim::Scheduler scheduler;
  dsim::Network network(&scheduler);
  dsim::NetworkHost& server = network.AddHost("server", {"10.0.0.1"});
  dsim::NetworkHost& client = network.AddHost("client", {"10.0.0.2"});
  server.Spawn("echo", [] {
    socklen_t length;
    sockaddr_storage address = ServerAddress(&length);
    char buffer[kEchoBytes];
    if (kEpoll) {
      const int listener = socket(AF_INET, SOCK_STREAM, 0);
      bind(listener, reinterpret_cast<sockaddr*>(&address), length);
      listen(listener, 1);
      const int connection = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
      const int epfd = epoll_create1(0);
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.fd = connection;
      epoll_ctl(epfd, EPOLL_CTL_ADD, connection, &event);
      for (;;) {
        epoll_wait(epfd, &event, 1, -1);
        const ssize_t n = read(connection, buffer, sizeof(buffer));
        if (n <= 0 && errno != EAGAIN) break;
        if (n > 0) write(connection, buffer, static_cast<size_t>(n));
      }
    } else {
      const int listener = dsim::Socket(AF_INET, SOCK_STREAM, 0);
      dsim::Bind(listener, reinterpret_cast<sockaddr*>(&address), length);
      dsim::Listen(listener, 1);
      const int connection = dsim::Accept(listener, nullptr, nullptr);
      ssize_t n;
      while ((n = dsim::Read(connection, buffer, sizeof(buffer))) > 0) {
        dsim::Write(connection, buffer, static_cast<size_t>(n));
      }
    }
  }, {.daemon = true});
  client.Spawn("client", [iterations] {
    socklen_t length;
    sockaddr_storage address = ServerAddress(&length);
    char message[kEchoBytes] = {};
    char reply[kEchoBytes];
    const int fd = kEpoll ? socket(AF_INET, SOCK_STREAM, 0) : dsim::Socket(AF_INET, SOCK_STREAM, 0);
    if (kEpoll) {
      connect(fd, reinterpret_cast<sockaddr*>(&address), length);
    } else {
      dsim::Connect(fd, reinterpret_cast<sockaddr*>(&address), length);
    }
    for (int64_t i = 0; i < iterations; ++i) {
      if (kEpoll) {
        write(fd, message, sizeof(message));
        for (size_t got = 0; got < sizeof(reply);) got += read(fd, reply, sizeof(reply) - got);
      } else {
        dsim::Write(fd, message, sizeof(message));
        for (size_t got = 0; got < sizeof(reply);) got += dsim::Read(fd, reply, sizeof(reply) - got);
      }
    }
  });
  TimeRun(state, scheduler, iterations);
}

void BM_EpollTcpEcho(benchmark::State& state) { TcpEcho<true>(state); }
BENCHMARK(BM_EpollTcpEcho)->UseManualTime()->Apply(FixedIterations);
void BM_NativeTcpEcho(benchmark::State& state) { TcpEcho<false>(state); }
BENCHMARK(BM_NativeTcpEcho)->UseManualTime()->Apply(FixedIterations);

}  // namespace
