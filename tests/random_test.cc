// dsim's PRNG and distributions must give identical numbers on every platform.
#include "scheduler/random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace dsim {
namespace {

// Golden values: xoshiro256** seeded through SplitMix64 with seed 42. These pin the
// algorithm; a change here breaks every recorded seed, so it must be deliberate. The
// words and the bounded draws were cross-checked against an independent Python
// implementation of SplitMix64 + xoshiro256** + Lemire.
TEST(Random, SameSeedGivesTheSameKnownSequence) {
  Random rng(42);
  std::vector<uint64_t> words;
  for (int i = 0; i < 4; ++i) words.push_back(rng.NextBits());
  Random again(42);
  for (uint64_t word : words) EXPECT_EQ(again.NextBits(), word);
  EXPECT_EQ(words, (std::vector<uint64_t>{0x15780b2e0c2ec716ULL, 0x6104d9866d113a7eULL,
                                             0xae17533239e499a1ULL, 0xecb8ad4703b360a1ULL}));
}

TEST(Random, DistributionsGiveKnownValuesForAFixedSeed) {
  Random rng(7);
  EXPECT_EQ(rng.Below(1000), 700u);
  EXPECT_EQ(rng.UniformInt(-5, 5), -2);
  EXPECT_EQ(absl::ToInt64Nanoseconds(
                rng.UniformDuration(absl::Milliseconds(1), absl::Milliseconds(10))),
            8556647);
  EXPECT_EQ(absl::ToInt64Nanoseconds(rng.ExponentialDuration(absl::Milliseconds(5))),
            4905488);
}

TEST(Random, BelowStaysInRangeAndCoversIt) {
  Random rng(1);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = rng.Below(10);
    ASSERT_LT(v, 10u);
    ++counts[v];
  }
  for (int c : counts) EXPECT_NEAR(c, 10000, 600);
}

TEST(Random, BelowInlineDrawsExactlyWhatBelowDraws) {
  // Bounds near 2^64 make the rejection loop run often; small ones rarely.
  const uint64_t bounds[] = {2, 3, 10, 1000, (uint64_t{1} << 63) + 1, UINT64_MAX - 5};
  Random a(42), b(42);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t bound = bounds[i % 6];
    ASSERT_EQ(a.Below(bound), b.BelowInline(bound)) << "draw " << i;
  }
  EXPECT_EQ(a.NextBits(), b.NextBits());  // The streams stayed in step.
}

TEST(Random, BernoulliMatchesItsProbability) {
  Random rng(3);
  int hits = 0;
  for (int i = 0; i < 100000; ++i) hits += rng.Bernoulli(0.25);
  EXPECT_NEAR(hits, 25000, 800);
  EXPECT_FALSE(rng.Bernoulli(0.0));
  EXPECT_TRUE(rng.Bernoulli(1.0));
  EXPECT_FALSE(rng.Bernoulli(std::nan("")));
}

TEST(Random, ExponentialDurationHasTheRequestedMean) {
  Random rng(5);
  double total_ms = 0;
  constexpr int kSamples = 50000;
  for (int i = 0; i < kSamples; ++i) {
    total_ms += absl::ToDoubleMilliseconds(rng.ExponentialDuration(absl::Milliseconds(4)));
  }
  EXPECT_NEAR(total_ms / kSamples, 4.0, 0.1);
}

TEST(Random, UniformIntHandlesTheFullRange) {
  Random rng(9);
  for (int i = 0; i < 100; ++i) {
    const int64_t v = rng.UniformInt(INT64_MIN, INT64_MAX);
    (void)v;  // Any value is valid; the call must not loop or trap.
  }
  EXPECT_EQ(rng.UniformInt(17, 17), 17);
}

TEST(Random, ForkedStreamsAreIndependentAndReproducible) {
  Random a(11), b(11);
  Random fork_a = a.Fork(1), fork_b = b.Fork(1);
  EXPECT_EQ(fork_a.NextBits(), fork_b.NextBits());
  Random c(11);
  EXPECT_NE(c.Fork(2).NextBits(), Random(11).Fork(1).NextBits());
}

}  // namespace
}  // namespace dsim
