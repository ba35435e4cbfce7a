// main() for GoogleTest binaries with seed sweeps: use instead of gtest_main.
//
// Under `bazel test` with shard_count, Bazel tells both the test and GoogleTest how
// many shards there are. This main takes sharding away from GoogleTest, so that every
// shard runs every test, and each SeedSweep runs only its shard's share of the seeds
// (see sim/harness.h). Tests without sweeps run in every shard.
#include "gtest/gtest.h"
#include "sim/harness.h"

int main(int argc, char** argv) {
  dsim::TakeOverTestSharding();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
