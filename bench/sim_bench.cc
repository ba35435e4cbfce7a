// Simulation-layer benchmarks. Run with:
//   ./bazelw run -c opt //bench:sim_bench
//
// BM_SweepSerial / BM_SweepParallel: a CPU-bound seed sweep (no I/O, no sleeping in
// wall time) on 1 and 2 OS threads; BM_SweepParallelSpeedup reports their ratio, and
// BM_SweepParallelSpeedup/demo the same for a sweep of the demo scenario.
// Traces are on (the default), as in real sweeps.
//
// BM_DemoSeed: one seed of the demo scenario (//sim:demo: a replicated key-value store
// on 5 hosts, under partitions, a crash and packet delay) per iteration: seeds per
// second, and sim_seconds_per_wall_second (virtual time simulated per wall second).
#include <benchmark/benchmark.h>

#include <memory>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "bench/echo_paths.h"
#include "scheduler/mutex.h"
#include "sim/demo/scenario.h"
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

// One seed of the demo scenario, with the correct store (every seed passes).
absl::Status DemoBody(Simulation& sim) {
  return demo::RunDemoScenario(sim, demo::DemoOptions{}).status;
}

enum class Scenario { kCpuBound, kDemo };

double SweepSeconds(int jobs, Scenario scenario = Scenario::kCpuBound) {
  std::ostringstream log;
  SweepOptions options;
  options.seeds = kSeedsPerSweep;
  options.jobs = jobs;
  options.report_to_gtest = false;
  options.log = &log;
  options.env = [](absl::string_view) -> std::optional<std::string> { return std::nullopt; };
  if (scenario == Scenario::kDemo) options.simulation = demo::DemoSimulationOptions({});
  SweepResult result =
      SeedSweep(options).Run(scenario == Scenario::kDemo ? DemoBody : CpuBoundBody);
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
void SweepParallelSpeedup(benchmark::State& state, Scenario scenario) {
  double serial = 0;
  double parallel = 0;
  for (auto _ : state) {
    serial += SweepSeconds(1, scenario);
    parallel += SweepSeconds(2, scenario);
  }
  state.counters["speedup"] = serial / parallel;
  state.counters["speedup_2_jobs"] = serial / parallel;  // The original name.
}

void BM_SweepParallelSpeedup(benchmark::State& state) {
  SweepParallelSpeedup(state, Scenario::kCpuBound);
}
BENCHMARK(BM_SweepParallelSpeedup)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(5);
BENCHMARK_CAPTURE(SweepParallelSpeedup, demo, Scenario::kDemo)
    ->Name("BM_SweepParallelSpeedup/demo")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

// One demo seed per iteration, a new seed each time (as a sweep runs them).
void BM_DemoSeed(benchmark::State& state) {
  uint64_t seed = 1;
  double virtual_seconds = 0;
  for (auto _ : state) {
    const demo::DemoResult result = demo::RunDemo({.seed = seed++});
    if (!result.status.ok()) std::abort();
    virtual_seconds += absl::ToDoubleSeconds(result.virtual_time);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["sim_seconds_per_wall_second"] =
      benchmark::Counter(virtual_seconds, benchmark::Counter::kIsRate);
}
BENCHMARK(BM_DemoSeed)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Apply(bench::FixedIterationsFromEnv);

}  // namespace
}  // namespace dsim
