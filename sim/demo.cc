// The dsim demo: a replicated key-value store under faults, one seed or a sweep.
//
//   ./bazelw run //sim:demo -- --seed=7                  # one run, a short summary
//   ./bazelw run //sim:demo -- --seed=7 --trace_out=/tmp/demo.json   # + Perfetto trace
//   ./bazelw run //sim:demo -- --seeds=200 --bug         # sweep; find the planted bug
//   ./bazelw run //sim:demo -- --seed=<N> --bug          # reproduce a failing seed
//
// A failing seed's history goes to --html_dir: the linearizability checker's page
// (seed-<N>.html, open it in a browser) and the history in Jepsen's EDN (seed-<N>.edn,
// for //sim:check_history, Knossos or Porcupine). Their paths are printed.
//
// What runs is in sim/demo/scenario.h; the store in sim/demo/kv_store.h. The process
// exits 0 when every seed passed and 1 when one failed.
#include <cstdint>
#include <filesystem>
#include <fstream>
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
          "Some seeds then read stale values, which the linearizability checker finds.");
ABSL_FLAG(std::string, trace_out, "",
          "Write the run's trace here (one seed only). A .json path gives Chrome trace JSON "
          "for https://ui.perfetto.dev; any other path, text.");
ABSL_FLAG(int, operations, 30, "Reads and writes per client.");
ABSL_FLAG(std::string, html_dir, "/tmp/dsim-demo",
          "Where a failing seed's linearizability page (seed-<N>.html) and history "
          "(seed-<N>.edn) are written; empty: nowhere.");
ABSL_FLAG(int, jobs, 0,
          "OS threads for --seeds (0: one per core). Output does not depend on it: each "
          "seed is its own simulation, and results print in seed order.");

namespace {

std::string RerunCommand(uint64_t seed, bool bug) {
  return absl::StrCat("./bazelw run //sim:demo -- --seed=", seed, bug ? " --bug" : "");
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

// Saves a failing seed's page and history; returns the report lines, with `indent`.
std::string SaveFailure(const dsim::demo::DemoResult& result, bool bug, const char* indent) {
  const std::string dir = absl::GetFlag(FLAGS_html_dir);
  if (dir.empty() || result.html.empty()) return "";
  std::error_code ignored;  // A directory that cannot be made shows as a failed write.
  std::filesystem::create_directories(dir, ignored);
  const std::string stem = absl::StrCat(dir, "/seed-", result.seed, bug ? "-bug" : "");
  std::string lines;
  if (WriteFile(stem + ".html", result.html)) {
    absl::StrAppend(&lines, indent, "page: ", stem, ".html (open it in a browser)\n");
  } else {
    absl::StrAppend(&lines, indent, "page: cannot write ", stem, ".html\n");
  }
  if (WriteFile(stem + ".edn", result.history.ToEdn())) {
    absl::StrAppend(&lines, indent, "history: ", stem,
                    ".edn (./bazelw run //sim:check_history -- --model=kv ", stem, ".edn)\n");
  }
  return lines;
}

int RunOneSeed(const dsim::demo::DemoOptions& options) {
  const dsim::demo::DemoResult result = dsim::demo::RunDemo(options);
  std::cout << result.summary << SaveFailure(result, options.bug, "");
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
              << "\n" << SaveFailure(result, options.bug, "  ");
  }
  std::cout << seeds << " seeds, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "a replicated key-value store (3 replicas, 2 clients) under partitions, a crash and "
      "packet delay, its history checked for linearizability.\n"
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
