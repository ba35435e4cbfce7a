// Random: dsim's own seeded PRNG and distributions, identical on every platform.
//
// Simulations must never use std::random_device, absl::BitGen or the std::*_distribution
// templates: their output differs across standard libraries, or is nondeterministic by
// design. Everything here is integer arithmetic on a fixed algorithm (xoshiro256**,
// seeded through SplitMix64), so a seed gives the same numbers with any compiler, any
// libm, on any machine. Even the exponential distribution avoids floating-point `log`,
// whose last bit differs between libm versions.
//
// Example:
//
//   dsim::Random rng(/*seed=*/42);
//   uint64_t die = rng.Below(6) + 1;                       // 1..6
//   bool drop = rng.Bernoulli(0.01);                       // true 1% of the time
//   absl::Duration d = rng.UniformDuration(absl::Milliseconds(1), absl::Milliseconds(10));
//   absl::Duration gap = rng.ExponentialDuration(absl::Milliseconds(5));
//
// `BitSource` is the interface the distributions are built on, so other sources of bits
// (a scheduler that records every draw for replay) get the same distributions.
#ifndef DSIM_SCHEDULER_RANDOM_H_
#define DSIM_SCHEDULER_RANDOM_H_

#include <cstdint>

#include "absl/time/time.h"

namespace dsim {

// A source of uniformly distributed 64-bit words, plus distributions derived from them
// by fixed integer algorithms.
class BitSource {
 public:
  virtual ~BitSource() = default;

  // The next uniformly distributed 64-bit word.
  virtual uint64_t NextBits() = 0;

  // Uniform integer in [0, bound). `bound` must be positive. Unbiased (Lemire's method
  // with rejection). Inline: the scheduler draws one per decision.
  uint64_t Below(uint64_t bound) {
    const unsigned __int128 product = static_cast<unsigned __int128>(NextBits()) * bound;
    if (static_cast<uint64_t>(product) >= bound && bound != 0) return static_cast<uint64_t>(product >> 64);
    return BelowSlow(bound, product);
  }

  // Uniform integer in [lo, hi], inclusive. Requires lo <= hi.
  int64_t UniformInt(int64_t lo, int64_t hi);

  // Uniform double in [0, 1) with 53 random bits (exact, no rounding).
  double Uniform01();

  // True with probability `p` (clamped to [0, 1]). Exact: compares 53 random bits
  // against p scaled by a power of two.
  bool Bernoulli(double p);

  // Uniform duration in [lo, hi], at nanosecond resolution. Requires lo <= hi.
  absl::Duration UniformDuration(absl::Duration lo, absl::Duration hi);

  // Exponentially distributed duration with the given mean, at nanosecond resolution.
  // Uses von Neumann's comparison method, so only integer comparisons are involved.
  absl::Duration ExponentialDuration(absl::Duration mean);

 protected:
  uint64_t BelowSlow(uint64_t bound, unsigned __int128 product);
};

// xoshiro256** seeded through SplitMix64. Not cryptographic; fast and reproducible.
class Random final : public BitSource {
 public:
  explicit Random(uint64_t seed);

  uint64_t NextBits() override {
    const uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
    const uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = RotateLeft(state_[3], 45);
    return result;
  }

  // A new generator whose stream is independent of this one's, derived from this one's
  // next output and `stream`. Use it to give subsystems their own streams so that one
  // drawing more numbers does not shift the others.
  Random Fork(uint64_t stream);

  // Below(bound) with the draw inlined (no virtual NextBits): the same value and the
  // same stream. For the scheduler's per-decision draw.
  uint64_t BelowInline(uint64_t bound) {
    const unsigned __int128 product = static_cast<unsigned __int128>(Random::NextBits()) * bound;
    if (static_cast<uint64_t>(product) >= bound && bound != 0) {
      return static_cast<uint64_t>(product >> 64);
    }
    return BelowSlow(bound, product);
  }

 private:
  static uint64_t RotateLeft(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t state_[4];
};

// SplitMix64's mixing step: a bijective, well-distributed hash of a 64-bit word.
uint64_t Mix64(uint64_t x);

}  // namespace dsim

#endif  // DSIM_SCHEDULER_RANDOM_H_
