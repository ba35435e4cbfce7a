// Under real `bazel test` sharding (shard_count = 3 in BUILD): every shard runs the
// sweep test (//sim:harness_main keeps GoogleTest from dropping it), each shard runs
// exactly the seeds at its positions of the seed list, and the status file is touched.
// Run outside Bazel it is one unsharded sweep.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "sim/harness.h"

namespace dsim {
namespace {

int EnvInt(const char* name, int otherwise) {
  const char* value = std::getenv(name);
  return value != nullptr ? std::atoi(value) : otherwise;
}

// Set by the sweep test; checked when the whole binary ends, so a shard in which
// GoogleTest skipped the sweep fails instead of passing with nothing run.
bool sweep_ran = false;

class SweepMustRun : public ::testing::Environment {
 public:
  void TearDown() override {
    EXPECT_TRUE(sweep_ran) << "shard " << EnvInt("TEST_SHARD_INDEX", 0)
                           << " did not run the sweep test";
  }
};

const auto* const kRegistered = ::testing::AddGlobalTestEnvironment(new SweepMustRun);

TEST(ShardedSweep, EachShardRunsItsShareOfTheSeeds) {
  sweep_ran = true;
  const int shards = EnvInt("TEST_TOTAL_SHARDS", 1);
  const int index = EnvInt("TEST_SHARD_INDEX", 0);
  SweepOptions options;
  options.seeds = 30;
  std::vector<uint64_t> ran;
  SweepResult result = SeedSweep(options).Run([&](Simulation& sim) {
    ran.push_back(sim.seed());
    sim.Spawn("t", [] { dsim::SleepFor(absl::Milliseconds(1)); });
    return sim.Run().status();
  });
  ASSERT_TRUE(result.ok());
  std::vector<uint64_t> want;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    if (static_cast<int>((seed - 1) % shards) == index) want.push_back(seed);
  }
  EXPECT_EQ(ran, want);
  if (const char* status = std::getenv("TEST_SHARD_STATUS_FILE")) {
    EXPECT_TRUE(std::ifstream(status).good());
  }
}

// More test cases than shards, so that if GoogleTest sharded test cases, every shard
// would get at least one test, run the environment's TearDown, and fail there.
TEST(ShardedSweepCanary, One) {}
TEST(ShardedSweepCanary, Two) {}
TEST(ShardedSweepCanary, Three) {}

}  // namespace
}  // namespace dsim
