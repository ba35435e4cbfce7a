// The dsim demo: a replicated key-value store under faults, one seed or a sweep.
//
//   ./bazelw run //sim:demo -- --seed=7                  # one run, a short summary
//   ./bazelw run //sim:demo -- --seed=7 --trace_out=/tmp/demo.json   # + Perfetto trace
//   ./bazelw run //sim:demo -- --seeds=200 --bug         # sweep; find the planted bug
//   ./bazelw run //sim:demo -- --seed=<N> --bug          # reproduce a failing seed
//
// What runs is in sim/demo/scenario.h; the store in sim/demo/kv_store.h. The process
// exits 0 when every seed passed and 1 when one failed.
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "sim/demo/scenario.h"

ABSL_FLAG(uint64_t, seed, 1, "The seed to run; with --seeds, the first seed of the sweep.");
ABSL_FLAG(uint64_t, seeds, 0,
          "Sweep this many seeds (--seed, --seed+1, ...), print one FAIL line and a rerun "
          "command per failing seed, and a total. 0: run --seed alone and print its summary.");
ABSL_FLAG(bool, bug, false,
          "Plant the bug: reads return the first replica's answer instead of a majority's. "
          "Some seeds then read stale values.");
ABSL_FLAG(std::string, trace_out, "",
          "Write the run's trace here (one seed only). A .json path gives Chrome trace JSON "
          "for https://ui.perfetto.dev; any other path, text.");
ABSL_FLAG(int, operations, 30, "Reads and writes per client.");
ABSL_FLAG(int, jobs, 0,
          "OS threads for --seeds (0: one per core). Output does not depend on it: each "
          "seed is its own simulation, and results print in seed order.");

namespace {

std::string RerunCommand(uint64_t seed, bool bug) {
  return absl::StrCat("./bazelw run //sim:demo -- --seed=", seed, bug ? " --bug" : "");
}

int RunOneSeed(const dsim::demo::DemoOptions& options) {
  const dsim::demo::DemoResult result = dsim::demo::RunDemo(options);
  std::cout << result.summary;
  if (!options.trace_path.empty() && result.status.ok()) {
    std::cout << "trace: " << options.trace_path << " (open it in https://ui.perfetto.dev)\n";
  }
  return result.status.ok() ? 0 : 1;
}

int RunSweep(const dsim::demo::DemoOptions& options, uint64_t seeds, int jobs) {
  uint64_t failed = 0;
  for (const dsim::demo::DemoResult& result : dsim::demo::RunDemoSeeds(options, seeds, jobs)) {
    if (result.status.ok()) continue;
    ++failed;
    std::cout << result.fail_line << "\n  rerun: " << RerunCommand(result.seed, options.bug)
              << "\n";
  }
  std::cout << seeds << " seeds, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "a replicated key-value store (3 replicas, 2 clients) under partitions, a crash and "
      "packet delay, checked for stale reads.\n"
      "  demo --seed=7              one run and its summary\n"
      "  demo --seeds=200 --bug     sweep seeds 1..200 with the planted bug\n"
      "  demo --seed=N --bug        reproduce a failing seed");
  absl::ParseCommandLine(argc, argv);

  dsim::demo::DemoOptions options;
  options.seed = absl::GetFlag(FLAGS_seed);
  options.bug = absl::GetFlag(FLAGS_bug);
  options.trace_path = absl::GetFlag(FLAGS_trace_out);
  options.operations_per_client = absl::GetFlag(FLAGS_operations);
  const uint64_t seeds = absl::GetFlag(FLAGS_seeds);

  if (seeds > 0 && !options.trace_path.empty()) {
    std::cerr << "--trace_out writes one run's trace: use it with --seed, not --seeds\n";
    return 2;
  }
  return seeds > 0 ? RunSweep(options, seeds, absl::GetFlag(FLAGS_jobs)) : RunOneSeed(options);
}
