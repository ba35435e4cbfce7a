// The schedule parser's fuzz property (schedule_fuzz.h) over seeded, generated inputs,
// in the default suite: valid schedules of every decision kind, then each mutated
// (bytes flipped, cut, inserted, varints replaced by huge values), half of them with a
// valid checksum so the parser sees the mutation and not just a bad checksum. The same
// inputs every run; the libFuzzer target explores further.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "scheduler/random.h"
#include "scheduler/schedule.h"
#include "tests/fuzz/schedule_fuzz.h"

namespace dsim {
namespace {

// A valid schedule of `entries` decisions of every kind, its fields drawn from `rng`,
// with steps and times that sometimes jump towards the top of their range.
Schedule RandomSchedule(Random& rng, int entries) {
  Schedule schedule(absl::StrCat("random(seed=", rng.NextBits() % 1000, ")"), rng.NextBits());
  uint64_t step = 0;
  int64_t time_ns = 0;
  for (int i = 0; i < entries; ++i) {
    ScheduleEntry e;
    e.kind = static_cast<DecisionKind>(rng.Below(4));
    step += rng.Below(8) == 0 ? rng.NextBits() % (uint64_t{1} << 62) : rng.Below(5);
    time_ns += rng.Below(8) == 0 ? static_cast<int64_t>(rng.NextBits() % (uint64_t{1} << 60))
                                 : static_cast<int64_t>(rng.Below(1000));
    e.step = step;
    e.time_ns = time_ns;
    e.current = rng.Below(5);
    if (e.kind == DecisionKind::kValue) {
      e.num_options = rng.Below(3) == 0 ? 0 : 1 + rng.Below(100);
      e.chosen = e.num_options == 0 ? rng.NextBits() : rng.Below(e.num_options);
      e.label = rng.Below(2) == 0 ? "random" : absl::StrCat("label-", rng.Below(4));
    } else {
      const uint64_t n = 1 + rng.Below(4);
      for (uint64_t c = 0; c < n; ++c) e.candidates.push_back(1 + rng.Below(6));
      e.num_options = n;
      e.chosen = rng.Below(n);
    }
    schedule.Add(std::move(e));
  }
  return schedule;
}

// One mutation of `bytes`.
std::string Mutate(Random& rng, std::string bytes) {
  const int edits = 1 + static_cast<int>(rng.Below(4));
  for (int k = 0; k < edits && !bytes.empty(); ++k) {
    const size_t at = rng.Below(bytes.size());
    switch (rng.Below(5)) {
      case 0: bytes[at] = static_cast<char>(bytes[at] ^ (1 << rng.Below(8))); break;
      case 1: bytes.resize(at); break;
      case 2: bytes.insert(at, 1, static_cast<char>(rng.Below(256))); break;
      case 3: bytes.insert(at, std::string(9, '\xff') + '\x00'); break;  // A huge varint.
      default: bytes.insert(at, "\xff\xff\xff\xff\xff\xff\xff\xff\x7f"); break;  // 2^63-1.
    }
  }
  return bytes;
}

TEST(ScheduleParseFuzz, GeneratedAndMutatedInputsNeverBreakTheParser) {
  Random rng(20261129);
  const auto start = std::chrono::steady_clock::now();
  int inputs = 0, parsed = 0;
  for (int round = 0; round < 5000; ++round) {
    const Schedule schedule = RandomSchedule(rng, 1 + static_cast<int>(rng.Below(12)));
    absl::StatusOr<std::string> bytes = schedule.Serialize();
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    ASSERT_TRUE(fuzz::CheckScheduleBytes(*bytes));
    ++inputs;
    const std::string body = bytes->substr(0, bytes->size() - 8);
    for (int m = 0; m < 20; ++m) {
      // Mutate the body; CheckScheduleBytes tries it raw and with a fresh checksum.
      if (fuzz::CheckScheduleBytes(Mutate(rng, body))) ++parsed;
      ++inputs;
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("schedule parse fuzz: %d inputs, %d parsed, %.2fs\n", inputs, parsed, seconds);
  EXPECT_GT(parsed, 0) << "some mutations should still parse (the property was exercised)";
}

// The crafted inputs that once broke the parser stay in the driver's corpus.
TEST(ScheduleParseFuzz, KnownCrashersAreClearErrors) {
  // Two next-task entries whose time deltas sum past INT64_MAX (signed overflow).
  std::string body = "DSIMSCHD\x01\x07";
  body += '\x00';  // strategy ""
  body += '\x02';  // two entries
  const std::string big = "\xff\xff\xff\xff\xff\xff\xff\xff\x7f";
  for (int i = 0; i < 2; ++i) {
    body += '\x00';                        // next-task
    body += '\x00';                        // step delta
    body += i == 0 ? big : std::string("\x01");
    body += std::string("\x00\x01\x01\x00", 4);  // current 0, 1 candidate {1}, chosen 0
  }
  EXPECT_FALSE(Schedule::Parse(fuzz::WithChecksum(body)).ok());
  EXPECT_FALSE(fuzz::CheckScheduleBytes(body));
}

}  // namespace
}  // namespace dsim
