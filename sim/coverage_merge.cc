// Sums the coverage JSON files that the shards of a sweep wrote, prints the report of
// the whole sweep, and optionally writes the merged JSON.
//
//   coverage_merge [--fail_on_never_hit] [--out=merged.json] shard0.json shard1.json ...
//
// Exits 1 on a file it cannot read, or with --fail_on_never_hit when a SOMETIMES,
// REACHABLE or BUGGIFY site was hit in no seed of any shard.
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "sim/coverage.h"

int main(int argc, char** argv) {
  bool fail_on_never_hit = false;
  std::string out_path;
  std::vector<std::string> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--fail_on_never_hit") {
      fail_on_never_hit = true;
    } else if (absl::StartsWith(arg, "--out=")) {
      out_path = arg.substr(6);
    } else {
      paths.push_back(arg);
    }
  }
  if (paths.empty()) {
    std::cerr << "usage: coverage_merge [--fail_on_never_hit] [--out=merged.json] files...\n";
    return 2;
  }
  absl::StatusOr<dsim::SweepCoverage> merged = dsim::MergeCoverageFiles(paths);
  if (!merged.ok()) {
    std::cerr << "coverage_merge: " << merged.status() << "\n";
    return 1;
  }
  dsim::CoverageOptions options;
  std::cout << merged->ReportText(options);
  if (!out_path.empty()) {
    std::ofstream out(out_path);
    out << merged->ToJson("merged", 0, 1);
  }
  if (fail_on_never_hit && !merged->NeverHit(options).empty()) return 1;
  return 0;
}
