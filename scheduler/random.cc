#include "scheduler/random.h"

#include <algorithm>

#include "scheduler/internal/check.h"

namespace dsim {
namespace {

// 2^53 as a double: the scale for 53-bit fractions.
constexpr double kTwoPow53 = 9007199254740992.0;

}  // namespace

uint64_t Mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t BitSource::BelowSlow(uint64_t bound, unsigned __int128 product) {
  DSIM_CHECK(bound > 0, "Below(0) has no valid result");
  // Lemire, "Fast Random Integer Generation in an Interval" (2019): reject the low
  // products that would bias the result.
  const uint64_t threshold = (0 - bound) % bound;
  while (static_cast<uint64_t>(product) < threshold) {
    product = static_cast<unsigned __int128>(NextBits()) * bound;
  }
  return static_cast<uint64_t>(product >> 64);
}

int64_t BitSource::UniformInt(int64_t lo, int64_t hi) {
  DSIM_CHECK(lo <= hi, "UniformInt needs lo <= hi, got ", lo, " > ", hi);
  const uint64_t span = static_cast<uint64_t>(hi) - static_cast<uint64_t>(lo);
  const uint64_t offset = span == UINT64_MAX ? NextBits() : Below(span + 1);
  return static_cast<int64_t>(static_cast<uint64_t>(lo) + offset);
}

double BitSource::Uniform01() { return static_cast<double>(NextBits() >> 11) / kTwoPow53; }

bool BitSource::Bernoulli(double p) {
  if (!(p > 0.0)) return false;  // Also catches NaN.
  if (p >= 1.0) return true;
  // p * 2^53 is exact (a power-of-two scale), and so is the comparison.
  return static_cast<double>(NextBits() >> 11) < p * kTwoPow53;
}

absl::Duration BitSource::UniformDuration(absl::Duration lo, absl::Duration hi) {
  DSIM_CHECK(lo <= hi, "UniformDuration needs lo <= hi");
  const int64_t lo_ns = absl::ToInt64Nanoseconds(lo);
  const int64_t hi_ns = absl::ToInt64Nanoseconds(hi);
  return absl::Nanoseconds(UniformInt(lo_ns, hi_ns));
}

absl::Duration BitSource::ExponentialDuration(absl::Duration mean) {
  const int64_t mean_ns = absl::ToInt64Nanoseconds(mean);
  if (mean_ns <= 0) return absl::ZeroDuration();
  // Von Neumann (1951), as in Knuth TAOCP vol. 2, 3.4.1: an Exp(1) variate is
  // J + U, where J counts the rejected rounds and U is the first uniform of the accepted
  // round. A round draws U1 > U2 > ... until the run breaks; it is accepted when the run
  // length is odd. Uniforms are 64-bit integers, so every step is an exact comparison.
  // The loop ends with probability 1; each round is accepted with probability 1 - 1/e.
  uint64_t whole = 0;
  for (;;) {
    const uint64_t first = NextBits();
    uint64_t previous = first;
    uint64_t run_length = 1;
    for (;;) {
      const uint64_t next = NextBits();
      if (next >= previous) break;
      previous = next;
      ++run_length;
    }
    if (run_length % 2 == 1) {
      // mean * (whole + first / 2^64), in 128-bit fixed point, rounded down.
      const unsigned __int128 fraction_ns =
          (static_cast<unsigned __int128>(first) * static_cast<uint64_t>(mean_ns)) >> 64;
      const unsigned __int128 total_ns =
          static_cast<unsigned __int128>(whole) * static_cast<uint64_t>(mean_ns) + fraction_ns;
      const unsigned __int128 cap = static_cast<unsigned __int128>(INT64_MAX);
      return absl::Nanoseconds(static_cast<int64_t>(std::min(total_ns, cap)));
    }
    ++whole;
  }
}

Random::Random(uint64_t seed) {
  uint64_t x = seed;
  for (uint64_t& word : state_) {
    x += 0x9e3779b97f4a7c15ULL;
    word = Mix64(x);
  }
}

Random Random::Fork(uint64_t stream) { return Random(Mix64(NextBits() ^ Mix64(stream))); }

}  // namespace dsim
