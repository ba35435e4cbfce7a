// The linearizability checker (check/) on histories generated in simulation.
//
//   ./bazelw run -c opt //bench:checker_bench
//
// Histories (each built once, outside the timed loop):
//   BM_CheckDemo/<ops>/<bug>       the demo's replicated store (sim/demo/), 2 clients, 2
//                                  keys, partitions, a crash, packet delay; <ops> in
//                                  all; bug=1 plants the stale-read bug, so the check
//                                  also finds and explains the violation.
//   BM_CheckRegister/<ops>/<clients>  one atomic register in a simulation: each client
//                                  invokes, waits, applies its read/write/cas at a
//                                  linearization point inside the interval, waits,
//                                  completes; 2% of the operations time out (info),
//                                  half of those took effect.
//   BM_CheckKv/<ops>/<clients>/<keys> the same over <keys> registers (KV model,
//                                  P-compositionality).
// Counters: ops (operations in the history), per_op (check time per operation).
// DSIM_DUMP_HISTORY=<dir> writes each history there as JSON.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "check/history.h"
#include "check/linearizability.h"
#include "check/recorder.h"
#include "scheduler/scheduler.h"
#include "sim/demo/scenario.h"
#include "sim/simulation.h"

namespace {

using dsim::check::CheckLinearizability;
using dsim::check::CheckResult;
using dsim::check::History;
using dsim::check::Value;
using dsim::check::Verdict;

// A simulation of `clients` clients on `keys` atomic registers, `ops` operations in
// all, recorded with dsim::check::Recorder.
History SimulatedRegisters(int ops, int clients, int keys, uint64_t seed, bool keyed) {
  dsim::check::Recorder recorder;
  dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = seed});
  std::vector<int64_t> registers(keys, -1);  // -1: nil.
  auto value_of = [](int64_t v) { return v < 0 ? Value() : Value(v); };
  int64_t next_value = 0;
  for (int c = 0; c < clients; ++c) {
    const int mine = ops / clients + (c < ops % clients ? 1 : 0);
    scheduler.Spawn(absl::StrCat("client-", c), [&, c, mine] {
      dsim::BitSource& random = scheduler.random();
      for (int i = 0; i < mine; ++i) {
        const int key = static_cast<int>(random.Below(keys));
        const std::optional<Value> key_value =
            keyed ? std::optional<Value>(Value(static_cast<int64_t>(key))) : std::nullopt;
        const int kind = static_cast<int>(random.Below(10));  // 0-4 read, 5-8 write, 9 cas.
        const bool times_out = random.Below(50) == 0;
        const bool applies = !times_out || random.Below(2) == 0;
        dsim::SleepFor(absl::Microseconds(1 + random.Below(100)));
        int64_t& reg = registers[key];
        if (kind < 5) {
          dsim::check::PendingOp op = recorder.Invoke(c, "read", Value(), key_value);
          dsim::SleepFor(absl::Microseconds(random.Below(50)));
          const int64_t seen = reg;
          dsim::SleepFor(absl::Microseconds(random.Below(50)));
          times_out ? op.Info() : op.Ok(value_of(seen));
        } else if (kind < 9) {
          const int64_t v = next_value++;
          dsim::check::PendingOp op = recorder.Invoke(c, "write", Value(v), key_value);
          dsim::SleepFor(absl::Microseconds(random.Below(50)));
          if (applies) reg = v;
          dsim::SleepFor(absl::Microseconds(random.Below(50)));
          times_out ? op.Info() : op.Ok();
        } else {
          const int64_t expected = reg < 0 ? 0 : reg;  // Often right, sometimes stale.
          const int64_t v = next_value++;
          dsim::check::PendingOp op =
              recorder.Invoke(c, "cas", Value::List({Value(expected), Value(v)}), key_value);
          dsim::SleepFor(absl::Microseconds(random.Below(50)));
          const bool swapped = reg == expected && applies;
          if (swapped) reg = v;
          dsim::SleepFor(absl::Microseconds(random.Below(50)));
          if (times_out) {
            op.Info();
          } else {
            swapped ? op.Ok() : op.Fail();
          }
        }
      }
    });
  }
  scheduler.Run();
  return recorder.history();
}

// The demo's store, with enough operations per client for `ops` in all.
History DemoHistory(int ops, bool bug, uint64_t seed) {
  dsim::demo::DemoOptions options{.seed = seed, .bug = bug, .operations_per_client = ops / 2};
  dsim::SimulationOptions sim_options = dsim::demo::DemoSimulationOptions(options);
  sim_options.max_virtual_time = absl::Hours(10);
  dsim::Simulation sim(sim_options);
  return dsim::demo::RunDemoScenario(sim, options).history;
}

void Report(benchmark::State& state, const std::string& label, const History& history,
            const CheckResult& result, Verdict expected) {
  // DSIM_DUMP_HISTORY=<dir>: also write each history there as JSON (for
  // //sim:check_history, or another checker on the same input).
  if (const char* dir = std::getenv("DSIM_DUMP_HISTORY"); dir != nullptr) {
    std::ofstream(absl::StrCat(dir, "/", label, ".json")) << history.ToJson();
  }
  if (!result.error.ok() || result.verdict != expected) {
    state.SkipWithError(absl::StrCat("unexpected verdict ", dsim::check::VerdictName(result.verdict),
                                     " ", result.error.ToString())
                            .c_str());
    return;
  }
  const double ops = static_cast<double>(result.operations.size());
  state.counters["ops"] = ops;
  state.counters["events"] = static_cast<double>(history.size());
  state.counters["per_op"] = benchmark::Counter(
      ops, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_CheckDemo(benchmark::State& state) {
  const int ops = static_cast<int>(state.range(0));
  const bool bug = state.range(1) != 0;
  // With the bug, a seed whose history fails; without, seed 1.
  History history;
  for (uint64_t seed = 1; seed < 50; ++seed) {
    history = DemoHistory(ops, bug, seed);
    const Verdict verdict = CheckLinearizability(history, dsim::check::KvModel()).verdict;
    if (!bug || verdict == Verdict::kNotLinearizable) break;
  }
  CheckResult result;
  for (auto _ : state) {
    result = CheckLinearizability(history, dsim::check::KvModel());
    benchmark::DoNotOptimize(result.verdict);
  }
  Report(state, absl::StrCat("demo-", ops, "-", bug), history, result,
         bug ? Verdict::kNotLinearizable : Verdict::kLinearizable);
}
BENCHMARK(BM_CheckDemo)
    ->Args({1000, 0})->Args({1000, 1})->Args({10000, 0})->Args({10000, 1})
    ->Unit(benchmark::kMillisecond);

void BM_CheckRegister(benchmark::State& state) {
  const History history =
      SimulatedRegisters(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)), 1, 7,
                         /*keyed=*/false);

  CheckResult result;
  for (auto _ : state) {
    result = CheckLinearizability(history, dsim::check::RegisterModel());
    benchmark::DoNotOptimize(result.verdict);
  }
  Report(state, absl::StrCat("register-", state.range(0), "-", state.range(1)), history, result,
         Verdict::kLinearizable);
}
BENCHMARK(BM_CheckRegister)
    ->ArgsProduct({{1000, 10000, 100000}, {5, 50}})
    ->Unit(benchmark::kMillisecond);

void BM_CheckKv(benchmark::State& state) {
  const History history =
      SimulatedRegisters(static_cast<int>(state.range(0)), static_cast<int>(state.range(1)),
                         static_cast<int>(state.range(2)), 11, /*keyed=*/true);
  CheckResult result;
  for (auto _ : state) {
    result = CheckLinearizability(history, dsim::check::KvModel());
    benchmark::DoNotOptimize(result.verdict);
  }
  Report(state, absl::StrCat("kv-", state.range(0), "-", state.range(1), "-", state.range(2)),
         history, result, Verdict::kLinearizable);
}
// Sizes at 10 keys; then 1,000 operations per key for 1 to 100 keys (the time should
// grow about linearly with the keys).
BENCHMARK(BM_CheckKv)
    ->ArgsProduct({{1000, 10000, 100000}, {5, 50}, {10}})
    ->Args({1000, 20, 1})->Args({10000, 20, 10})->Args({100000, 20, 100})
    ->Unit(benchmark::kMillisecond);

}  // namespace
