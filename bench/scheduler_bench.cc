// Scheduler benchmarks, side by side with their floor (bare fcontext) and the peer a
// C++ user would otherwise reach for (Boost.Fiber).
//
//   ./bazelw run -c opt //bench:scheduler_bench
//
// Ping-pong benchmarks: both sides of the ping-pong call state.KeepRunning(), so one
// iteration is one hand-off (one yield, one switch) in every variant, and the times per
// iteration compare directly. For BM_SchedulerYield the seeded random strategy stays on:
// each yield is a real decision between the two runnable tasks, and the strategy may
// keep the yielding task running; the counter `switch_fraction` says how often it did
// not, and `ns_per_switch` charges the whole cost to the real switches only.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <boost/context/detail/fcontext.hpp>
#include <boost/fiber/all.hpp>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "scheduler/scheduler.h"

namespace {

namespace ctx = boost::context::detail;

// ---- BM_RawFcontextSwitch: the floor ------------------------------------------

struct RawPair {
  benchmark::State* state;
  ctx::fcontext_t main = nullptr;
};

void RawPartner(ctx::transfer_t transfer) {
  auto* pair = static_cast<RawPair*>(transfer.data);
  pair->main = transfer.fctx;
  for (;;) {
    if (!pair->state->KeepRunning()) break;
    pair->main = ctx::jump_fcontext(pair->main, pair).fctx;
  }
  // Out of iterations on this side: return to the driver for good.
  ctx::jump_fcontext(pair->main, nullptr);
}

void BM_RawFcontextSwitch(benchmark::State& state) {
  std::vector<char> stack(64 * 1024);
  RawPair pair{&state};
  ctx::fcontext_t partner =
      ctx::make_fcontext(stack.data() + stack.size(), stack.size(), &RawPartner);
  for (;;) {
    ctx::transfer_t back = ctx::jump_fcontext(partner, &pair);
    if (back.data == nullptr) break;  // The partner ran out of iterations.
    partner = back.fctx;
    if (!state.KeepRunning()) break;
  }
}
BENCHMARK(BM_RawFcontextSwitch);

// ---- BM_SchedulerYield: two dsim tasks yielding to each other -----------------

class SwitchCounter : public dsim::SchedulerListener {
 public:
  void OnDispatch(const dsim::TaskView& task) override {
    if (task.id != last_) ++switches_;
    last_ = task.id;
  }
  int64_t switches() const { return switches_; }

 private:
  dsim::TaskId last_ = dsim::kNoTask;
  int64_t switches_ = 0;
};

void BM_SchedulerYield(benchmark::State& state) {
  dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 1});
  bool done = false;
  int64_t yields = 0;
  for (int i = 0; i < 2; ++i) {
    scheduler.Spawn(absl::StrCat("yielder-", i), [&] {
      while (!done) {
        if (!state.KeepRunning()) {
          done = true;
          break;
        }
        ++yields;
        dsim::Yield();
      }
    });
  }
  scheduler.Run();
  // Count switches in a second, untimed run of the same seed: the listener would
  // otherwise sit on the measured path.
  SwitchCounter counter;
  dsim::Scheduler replay(dsim::SchedulerOptions{.seed = 1});
  replay.AddListener(&counter);
  int64_t replay_yields = 0;
  for (int i = 0; i < 2; ++i) {
    replay.Spawn(absl::StrCat("yielder-", i), [&] {
      while (replay_yields < yields) {
        ++replay_yields;
        dsim::Yield();
      }
    });
  }
  replay.Run();
  const double fraction = yields ? static_cast<double>(counter.switches()) / yields : 0;
  state.counters["switch_fraction"] = fraction;
  state.counters["ns_per_switch"] = benchmark::Counter(
      static_cast<double>(counter.switches()), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SchedulerYield);

// ---- BM_BoostFiberYield: the peer ----------------------------------------------

void BM_BoostFiberYield(benchmark::State& state) {
  bool done = false;
  auto body = [&] {
    while (!done) {
      if (!state.KeepRunning()) {
        done = true;
        break;
      }
      boost::this_fiber::yield();
    }
  };
  boost::fibers::fiber a(body);
  boost::fibers::fiber b(body);
  a.join();
  b.join();
}
BENCHMARK(BM_BoostFiberYield);

// ---- BM_SleepWake/N: a sleep and wake with N other timers pending ---------------

void BM_SleepWake(benchmark::State& state) {
  const int64_t pending = state.range(0);
  dsim::Scheduler scheduler;
  // N far-future timers that never fire during the benchmark.
  for (int64_t i = 0; i < pending; ++i) {
    scheduler.AddTimer(dsim::Scheduler::Epoch() + absl::Hours(24) + absl::Nanoseconds(i), [] {});
  }
  scheduler.Spawn("sleeper", [&] {
    for (auto _ : state) dsim::SleepFor(absl::Microseconds(1));
  });
  scheduler.Run();
  state.counters["pending_timers"] = static_cast<double>(pending);
}
BENCHMARK(BM_SleepWake)->Arg(1)->Arg(1000)->Arg(1000000);

// ---- BM_MutexHandoff: two tasks taking turns on one mutex -----------------------

void BM_MutexHandoff(benchmark::State& state) {
  dsim::Mutex mu;
  dsim::Scheduler scheduler;
  bool done = false;
  for (int i = 0; i < 2; ++i) {
    scheduler.Spawn(absl::StrCat("locker-", i), [&] {
      while (!done) {
        dsim::MutexLock lock(&mu);
        // The other task may have finished the benchmark while this one waited.
        if (!done && !state.KeepRunning()) done = true;
      }
    });
  }
  scheduler.Run();
}
BENCHMARK(BM_MutexHandoff);

// ---- BM_CondVarPingPong: strict alternation through a condition variable --------

void BM_CondVarPingPong(benchmark::State& state) {
  dsim::Mutex mu;
  dsim::CondVar turn_changed;
  dsim::Scheduler scheduler;
  int turn = 0;
  bool done = false;
  for (int me = 0; me < 2; ++me) {
    scheduler.Spawn(absl::StrCat("player-", me), [&, me] {
      dsim::MutexLock lock(&mu);
      while (!done) {
        while (turn != me && !done) turn_changed.Wait(&mu);
        if (done) break;
        if (!state.KeepRunning()) done = true;
        turn = 1 - me;
        turn_changed.Signal();
      }
    });
  }
  scheduler.Run();
}
BENCHMARK(BM_CondVarPingPong);

// ---- BM_SpawnJoin: create a task and wait for it ---------------------------------

void BM_SpawnJoin(benchmark::State& state) {
  dsim::Scheduler scheduler;
  scheduler.Spawn("parent", [&] {
    for (auto _ : state) {
      dsim::TaskHandle child = dsim::Spawn("child", [] {});
      child.Join();
    }
  });
  scheduler.Run();
}
BENCHMARK(BM_SpawnJoin);

// ---- BM_MillionSleepingTasks: memory of a million blocked tasks ------------------

int64_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return -1;
  long size_pages = 0, resident_pages = 0;
  const int n = std::fscanf(f, "%ld %ld", &size_pages, &resident_pages);
  std::fclose(f);
  return n == 2 ? static_cast<int64_t>(resident_pages) * sysconf(_SC_PAGESIZE) : -1;
}

void BM_MillionSleepingTasks(benchmark::State& state) {
  constexpr int kTasks = 1000000;
  for (auto _ : state) {
    const int64_t rss_before = ResidentBytes();
    auto scheduler = std::make_unique<dsim::Scheduler>();
    for (int i = 0; i < kTasks; ++i) {
      scheduler->Spawn("sleeper", [] { dsim::SleepFor(absl::Hours(1)); });
    }
    // Every task starts and blocks in its sleep; none wakes before the run ends.
    const dsim::RunResult result = scheduler->RunFor(absl::Minutes(1));
    const int64_t rss_bytes = ResidentBytes() - rss_before;
    if (result.outcome != dsim::RunOutcome::kReachedTime || scheduler->live_tasks() != kTasks) {
      state.SkipWithError("the tasks did not all block");
    }
    state.counters["rss_bytes"] = static_cast<double>(rss_bytes);
    state.counters["rss_bytes_per_task"] = static_cast<double>(rss_bytes) / kTasks;
    state.counters["tasks"] = kTasks;
    state.PauseTiming();
    scheduler.reset();  // Unwinds a million fibers; not part of the measurement.
    state.ResumeTiming();
  }
}
BENCHMARK(BM_MillionSleepingTasks)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
