// Simulation-layer benchmarks. Run with:
//   ./bazelw run -c opt //bench:sim_bench
//
// BM_SweepSerial / BM_SweepParallel: a CPU-bound seed sweep (no I/O, no sleeping in
// wall time) on 1 and 2 OS threads; BM_SweepParallelSpeedup reports their ratio.
// Traces are on (the default), as in real sweeps.
#include <benchmark/benchmark.h>

#include <memory>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "scheduler/mutex.h"
#include "sim/harness.h"

namespace dsim {
namespace {

constexpr int kSeedsPerSweep = 64;

// Eight tasks contend for a mutex for 100 rounds each, drawing random values: about
// 2,000 scheduling steps per seed, all CPU.
absl::Status CpuBoundBody(Simulation& sim) {
  auto mu = std::make_shared<Mutex>();
  auto sum = std::make_shared<uint64_t>(0);
  for (int t = 0; t < 8; ++t) {
    sim.Spawn(absl::StrCat("worker-", t), [&sim, mu, sum] {
      for (int round = 0; round < 100; ++round) {
        MutexLock lock(mu.get());
        *sum += sim.random().Below(1000);
        dsim::Yield();
      }
    });
  }
  return sim.Run().status();
}

double SweepSeconds(int jobs) {
  std::ostringstream log;
  SweepOptions options;
  options.seeds = kSeedsPerSweep;
  options.jobs = jobs;
  options.report_to_gtest = false;
  options.log = &log;
  options.env = [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
  SweepResult result = SeedSweep(options).Run(CpuBoundBody);
  if (!result.ok()) std::abort();
  return result.wall_seconds;
}

void BM_SweepSerial(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(SweepSeconds(1));
  state.counters["seeds_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kSeedsPerSweep), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SweepSerial)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_SweepParallel(benchmark::State& state) {
  const int jobs = static_cast<int>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(SweepSeconds(jobs));
  state.counters["seeds_per_s"] = benchmark::Counter(
      static_cast<double>(state.iterations() * kSeedsPerSweep), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SweepParallel)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Serial and 2-thread sweeps back to back, so both see the same machine load.
void BM_SweepParallelSpeedup(benchmark::State& state) {
  double serial = 0;
  double parallel = 0;
  for (auto _ : state) {
    serial += SweepSeconds(1);
    parallel += SweepSeconds(2);
  }
  state.counters["speedup_2_jobs"] = serial / parallel;
}
BENCHMARK(BM_SweepParallelSpeedup)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);

}  // namespace
}  // namespace dsim
