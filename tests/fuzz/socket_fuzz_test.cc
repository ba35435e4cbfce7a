// The seeded twin of the libFuzzer target (socket_fuzz_libfuzzer.cc), in the default
// suite: pseudo-random inputs drive the whole socket API across hosts, tasks and faults
// (tests/fuzz/socket_program.h); each input runs twice and the fingerprints must match.
// A crash, a sanitizer report or an internal check failing is a failure too.
//
// DSIM_FUZZ_INPUTS=n runs n inputs (default 300, a few seconds); DSIM_FUZZ_SEED=s
// starts the input generator at s, so a failing input reproduces alone.
#include <cstdlib>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "scheduler/random.h"
#include "tests/fuzz/socket_program.h"

namespace dsim {
namespace {

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long value = std::strtoull(text, &end, 10);
  if (*end != '\0' || text[0] == '-') {
    ADD_FAILURE() << name << "=" << text << " is not a non-negative integer";
    return fallback;
  }
  return value;
}

std::string Input(uint64_t seed) {
  Random rng(seed);
  std::string bytes(16 + rng.Below(3000), '\0');
  for (char& c : bytes) c = static_cast<char>(rng.Below(256));
  return bytes;
}

TEST(SocketFuzz, EveryInputRunsTwiceWithTheSameFingerprint) {
  const uint64_t inputs = EnvOr("DSIM_FUZZ_INPUTS", 300);
  const uint64_t first = EnvOr("DSIM_FUZZ_SEED", 1);
  std::set<uint64_t> distinct;
  for (uint64_t seed = first; seed < first + inputs; ++seed) {
    const std::string input = Input(seed);
    const auto* data = reinterpret_cast<const uint8_t*>(input.data());
    const uint64_t a = fuzz::RunSocketProgram(data, input.size());
    const uint64_t b = fuzz::RunSocketProgram(data, input.size());
    ASSERT_EQ(a, b) << "input seed " << seed << " ran differently twice; rerun with "
                    << "DSIM_FUZZ_SEED=" << seed << " DSIM_FUZZ_INPUTS=1";
    distinct.insert(a);
  }
  // Different inputs make different runs (the driver is not stuck on one program).
  EXPECT_GT(distinct.size(), inputs * 9 / 10);
}

}  // namespace
}  // namespace dsim
