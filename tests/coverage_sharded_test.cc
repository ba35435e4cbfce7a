// Under real `bazel test` sharding (shard_count = 2): each shard writes its own
// coverage JSON (dsim_coverage.<test>.shard-<i>-of-<k>.json) into
// TEST_UNDECLARED_OUTPUTS_DIR, covering exactly its seeds, so the shards' files sum
// (//sim:coverage_merge) to the whole sweep.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "sim/assertions.h"
#include "sim/harness.h"

namespace dsim {
namespace {

int EnvInt(const char* name, int otherwise) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : otherwise;
}

TEST(CoverageShards, EachShardWritesItsOwnMergeableFile) {
  const int shards = EnvInt("TEST_TOTAL_SHARDS", 1);
  const int index = EnvInt("TEST_SHARD_INDEX", 0);
  SweepOptions options;
  options.seeds = 40;
  SweepResult result = SeedSweep(options).Run([](Simulation& sim) {
    const uint64_t seed = sim.seed();
    sim.Spawn("t", [seed] { DSIM_SOMETIMES(seed % 4 == 0, "seed divisible by four"); });
    return sim.Run().status();
  });
  ASSERT_TRUE(result.ok());
  uint64_t want_hits = 0, want_seeds = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    if (static_cast<int>((seed - 1) % shards) != index) continue;
    ++want_seeds;
    want_hits += seed % 4 == 0;
  }
  EXPECT_EQ(result.coverage.SeedsHit("sometimes seed divisible by four"), want_hits);
  const char* outputs = std::getenv("TEST_UNDECLARED_OUTPUTS_DIR");
  if (outputs == nullptr) GTEST_SKIP() << "not under bazel test";
  std::string path = absl::StrCat(outputs, "/dsim_coverage.CoverageShards.EachShardWritesItsOwnMergeableFile");
  if (shards > 1) absl::StrAppend(&path, ".shard-", index, "-of-", shards);
  absl::StatusOr<SweepCoverage> file = MergeCoverageFiles({path + ".json"});
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->seeds(), want_seeds);
  EXPECT_EQ(file->SeedsHit("sometimes seed divisible by four"), want_hits);
}

}  // namespace
}  // namespace dsim
