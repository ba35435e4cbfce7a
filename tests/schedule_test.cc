// Schedules: the file format, recording, and replay that reproduces a run exactly or
// says where it stopped fitting.
#include <cstdio>
#include <memory>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "scheduler/semaphore.h"
#include "scheduler/schedule.h"
#include "scheduler/scheduler.h"
#include "scheduler/strategies.h"
#include "tests/races/race_corpus.h"

namespace dsim {
namespace {

using races::FindProgram;
using races::RaceOutcome;
using races::RaceProgram;
using races::RaceRunOptions;
using races::Variant;

std::string TempPath(absl::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/", name);
}

// A program that makes every kind of decision: task order, wakes, simultaneous timers,
// labelled values and 64-bit random draws.
RunResult RunEveryKind(std::shared_ptr<Strategy> strategy, int extra_tasks = 0) {
  const int waiters = 3 + extra_tasks;
  Semaphore tokens(0);
  Scheduler scheduler(SchedulerOptions{.strategy = strategy});
  for (int i = 0; i < waiters; ++i) {
    scheduler.Spawn(absl::StrCat("waiter-", i), [&] { tokens.Acquire(); });
  }
  scheduler.Spawn("producer", [&] {
    Scheduler& s = *Scheduler::Current();
    for (int i = 0; i < waiters; ++i) {
      dsim::SleepFor(absl::Milliseconds(1 + s.ChooseValue(5, "net.delay_ms")));
      s.random().Bernoulli(0.5);
      tokens.Release();
    }
  });
  for (int i = 0; i < 3; ++i) scheduler.AddTimer(Scheduler::Epoch() + absl::Milliseconds(2), [] {});
  return scheduler.Run();
}

Schedule RecordEveryKind(uint64_t seed) {
  auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(seed), seed);
  EXPECT_TRUE(RunEveryKind(recorder).ok());
  return recorder->TakeSchedule();
}

TEST(Schedule, RecordsEveryKindOfDecision) {
  const Schedule schedule = RecordEveryKind(3);
  int kinds[4] = {};
  for (const ScheduleEntry& e : schedule.entries()) ++kinds[static_cast<int>(e.kind)];
  EXPECT_GT(kinds[static_cast<int>(DecisionKind::kNextTask)], 0);
  EXPECT_GT(kinds[static_cast<int>(DecisionKind::kTimerOrder)], 0);
  EXPECT_GT(kinds[static_cast<int>(DecisionKind::kWakeOne)], 0);
  EXPECT_GT(kinds[static_cast<int>(DecisionKind::kValue)], 0);
  EXPECT_EQ(schedule.strategy(), "random(seed=3)");
}

TEST(Schedule, SerializeThenParseGivesTheSameSchedule) {
  const Schedule schedule = RecordEveryKind(4);
  absl::StatusOr<Schedule> parsed = Schedule::Parse(schedule.Serialize().value());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, schedule);
  EXPECT_EQ(parsed->strategy(), schedule.strategy());
  EXPECT_EQ(parsed->seed(), 4u);
}

TEST(Schedule, KeepsTheRecordedTaskNamesAndStillReadsVersion1) {
  const Schedule schedule = RecordEveryKind(4);
  ASSERT_FALSE(schedule.task_names().empty());
  EXPECT_EQ(schedule.task_names().at(1), "waiter-0");
  absl::StatusOr<Schedule> parsed = Schedule::Parse(schedule.Serialize().value());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->task_names(), schedule.task_names());
  Schedule unnamed(schedule.strategy(), schedule.seed());
  for (const ScheduleEntry& e : schedule.entries()) unnamed.Add(e);
  const std::string v1 = unnamed.Serialize().value();
  EXPECT_EQ(v1[8], 1) << "no names: written as version 1";
  EXPECT_TRUE(Schedule::Parse(v1).ok());
}

TEST(Schedule, SaveThenLoadGivesTheSameSchedule) {
  const Schedule schedule = RecordEveryKind(5);
  const std::string path = TempPath("save_load.dsched");
  ASSERT_TRUE(schedule.Save(path).ok());
  absl::StatusOr<Schedule> loaded = Schedule::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*loaded, schedule);
}

TEST(Schedule, TaskChoicesTakeAFewBytesEach) {
  // Beyond the fixed header and checksum, a task choice takes a few bytes: runnable sets
  // that repeat are omitted, and every number is a small varint. Fixed-width fields
  // would take over 50 bytes (step, time, task, choice and three task ids at 8 bytes).
  // (A 64-bit random draw is incompressible: up to 10 bytes.)
  auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(6));
  FindProgram("circular_buffer")->run(Variant::kFixed, RaceRunOptions{recorder});
  const Schedule& schedule = recorder->schedule();
  ASSERT_GT(schedule.size(), 20u);
  const size_t empty = Schedule(schedule.strategy(), schedule.seed()).Serialize()->size();
  const double bytes_per_decision =
      static_cast<double>(schedule.Serialize()->size() - empty) / schedule.size();
  EXPECT_LT(bytes_per_decision, 10.0) << schedule.size() << " decisions";
}

TEST(Schedule, ParseRejectsEveryFlippedByteAndEveryTruncation) {
  const std::string bytes = RecordEveryKind(7).Serialize().value();
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string flipped = bytes;
    flipped[i] ^= 0x20;
    EXPECT_FALSE(Schedule::Parse(flipped).ok()) << "byte " << i;
    EXPECT_FALSE(Schedule::Parse(bytes.substr(0, i)).ok()) << "length " << i;
  }
}

// FNV-1a 64, as the format documents, to forge a well-formed file of another version.
uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) hash = (hash ^ c) * 0x100000001b3ULL;
  return hash;
}

TEST(Schedule, ParseRejectsAnUnknownVersion) {
  std::string bytes = RecordEveryKind(8).Serialize().value();
  bytes.resize(bytes.size() - 8);
  ASSERT_EQ(bytes[8], 2);  // The version follows the 8-byte magic (2: with task names).
  bytes[8] = 3;
  const uint64_t checksum = Fnv1a64(bytes);
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>(checksum >> (8 * i)));
  absl::StatusOr<Schedule> parsed = Schedule::Parse(bytes);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kUnimplemented) << parsed.status();
}

// A well-formed file around `entries`: header, count, the entries' bytes, checksum.
std::string ForgeFile(int count, const std::string& entries) {
  std::string bytes = "DSIMSCHD";
  bytes += '\x01';           // version
  bytes += '\x07';           // seed 7
  bytes += '\x00';           // strategy ""
  bytes += static_cast<char>(count);
  bytes += entries;
  const uint64_t checksum = Fnv1a64(bytes);
  for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<char>(checksum >> (8 * i)));
  return bytes;
}

std::string Varint(uint64_t value) {
  std::string out;
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
  return out;
}

// A next-task entry: head 0, deltas, current 0, one candidate (task 1), chosen 0.
std::string TaskEntry(uint64_t step_delta, uint64_t time_delta) {
  return std::string(1, '\0') + Varint(step_delta) + Varint(time_delta) + Varint(0) +
         Varint(1) + Varint(1) + Varint(0);
}

TEST(Schedule, ParseRejectsATimeThatOverflowsInsteadOfOverflowing) {
  const uint64_t max_time = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  ASSERT_TRUE(Schedule::Parse(ForgeFile(1, TaskEntry(0, max_time))).ok());
  // Under UBSan the old parser stopped here: int64 overflow adding the second delta.
  absl::StatusOr<Schedule> parsed =
      Schedule::Parse(ForgeFile(2, TaskEntry(0, max_time) + TaskEntry(0, 1)));
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kDataLoss) << parsed.status();
  EXPECT_TRUE(absl::StrContains(parsed.status().message(), "virtual time overflows at entry 1"))
      << parsed.status();
  parsed = Schedule::Parse(ForgeFile(1, TaskEntry(0, ~uint64_t{0})));
  EXPECT_FALSE(parsed.ok());
}

TEST(Schedule, ParseRejectsAStepThatWrapsAround) {
  absl::StatusOr<Schedule> parsed =
      Schedule::Parse(ForgeFile(2, TaskEntry(~uint64_t{0}, 0) + TaskEntry(1, 0)));
  EXPECT_TRUE(absl::StrContains(parsed.status().message(), "step overflows at entry 1"))
      << parsed.status();
}

TEST(Schedule, SerializingAScheduleThatGoesBackIsAnErrorNotACrash) {
  Schedule schedule = RecordEveryKind(9);
  ASSERT_GT(schedule.size(), 3u);
  schedule.mutable_entries()[2].step = schedule[1].step + 1000000;
  absl::StatusOr<std::string> bytes = schedule.Serialize();
  EXPECT_EQ(bytes.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bytes.status().message(), "schedule entry 3 goes back in steps"))
      << bytes.status();
  Schedule back_in_time = RecordEveryKind(9);
  back_in_time.mutable_entries()[0].time_ns = -5;
  EXPECT_TRUE(absl::StrContains(back_in_time.Serialize().status().message(),
                                "entry 0 goes back in time"));
  const std::string path = TempPath("invalid.dsched");
  const absl::Status saved = schedule.Save(path);
  EXPECT_FALSE(saved.ok());
  EXPECT_TRUE(absl::StrContains(saved.message(), "not saving")) << saved;
}

TEST(Schedule, SerializingAChoiceOutOfRangeIsAnError) {
  Schedule schedule("hand-made", 1);
  ScheduleEntry entry;
  entry.candidates = {1, 2};
  entry.num_options = 2;
  entry.chosen = 2;
  schedule.Add(entry);
  EXPECT_EQ(schedule.Serialize().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(RecordingStrategy, ChangesNoDecision) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    const RunResult plain = RunEveryKind(std::make_shared<RandomStrategy>(seed));
    auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(seed));
    const RunResult recorded = RunEveryKind(recorder);
    EXPECT_EQ(plain.ToString(), recorded.ToString());
  }
}

// Records the first failing random-walk run of a buggy program.
Schedule FirstFailure(const RaceProgram& program, RaceOutcome* outcome) {
  for (uint64_t seed = 1; seed < 1000; ++seed) {
    auto recorder = std::make_shared<RecordingStrategy>(std::make_shared<RandomStrategy>(seed));
    *outcome = program.run(Variant::kBuggy, RaceRunOptions{recorder});
    if (outcome->bug) return recorder->TakeSchedule();
  }
  ADD_FAILURE() << program.name << " never failed";
  return Schedule();
}

TEST(ReplayStrategy, ReproducesEveryRecordedFailureDecisionForDecision) {
  for (const RaceProgram& program : races::Corpus()) {
    RaceOutcome original;
    const Schedule failing = FirstFailure(program, &original);
    auto replay = std::make_shared<ReplayStrategy>(failing);
    auto rerecorder = std::make_shared<RecordingStrategy>(replay);
    const RaceOutcome replayed = program.run(Variant::kBuggy, RaceRunOptions{rerecorder});
    EXPECT_TRUE(replay->status().ok()) << program.name << ": " << replay->status();
    EXPECT_TRUE(replay->finished()) << program.name;
    EXPECT_EQ(rerecorder->schedule(), failing) << program.name;
    EXPECT_EQ(replayed.Signature(), original.Signature()) << program.name;
    EXPECT_EQ(replayed.result.ToString(), original.result.ToString()) << program.name;
  }
}

TEST(ReplayStrategy, ReproducesRunsWithTimersWakesAndValues) {
  const Schedule schedule = RecordEveryKind(9);
  auto replay = std::make_shared<ReplayStrategy>(schedule);
  auto rerecorder = std::make_shared<RecordingStrategy>(replay);
  EXPECT_TRUE(RunEveryKind(rerecorder).ok());
  EXPECT_TRUE(replay->status().ok()) << replay->status();
  EXPECT_EQ(rerecorder->schedule(), schedule);
}

TEST(ReplayStrategy, FromAFileThroughMakeStrategy) {
  RaceOutcome original;
  const Schedule failing = FirstFailure(*FindProgram("bank_audit"), &original);
  const std::string path = TempPath("bank_audit.dsched");
  ASSERT_TRUE(failing.Save(path).ok());
  absl::StatusOr<std::shared_ptr<Strategy>> replay = MakeStrategy("replay:" + path, 999);
  ASSERT_TRUE(replay.ok()) << replay.status();
  const RaceOutcome replayed =
      FindProgram("bank_audit")->run(Variant::kBuggy, RaceRunOptions{*replay});
  EXPECT_EQ(replayed.Signature(), original.Signature());
  EXPECT_TRUE(absl::StartsWith((*replay)->Describe(), "replay("));
}

TEST(ReplayStrategy, StopsTheRunAndReportsWhereTheChangedProgramDiverged) {
  // The schedule of a run with 3 waiters, replayed against a program with 4: the first
  // task choice already offers a task the schedule never saw.
  const Schedule schedule = RecordEveryKind(10);
  auto replay = std::make_shared<ReplayStrategy>(schedule);
  const RunResult result = RunEveryKind(replay, /*extra_tasks=*/1);
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  EXPECT_TRUE(absl::StartsWith(result.failure, "replay diverged at decision 0")) << result.failure;
  ASSERT_TRUE(replay->divergence().has_value());
  const Divergence& d = *replay->divergence();
  EXPECT_EQ(d.index, 0u);
  ASSERT_TRUE(d.expected.has_value());
  EXPECT_EQ(d.expected->candidates.size() + 1, d.actual.candidates.size());
  // Each side names its own tasks: id 4 was the producer in the recording, and is the
  // fourth waiter in the changed program.
  EXPECT_TRUE(absl::StrContains(result.failure,
                                "the program asked next-task among {1 \"waiter-0\", 2 \"waiter-1\", "
                                "3 \"waiter-2\", 4 \"waiter-3\", 5 \"producer\"}"))
      << result.failure;
  EXPECT_TRUE(absl::StrContains(result.failure, "the schedule expected next-task among {1 \"waiter-0\", "
                                                "2 \"waiter-1\", 3 \"waiter-2\", 4 \"producer\"}"))
      << result.failure;
  EXPECT_EQ(replay->status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ReplayStrategy, ReportsAFixedProgramAsDiverged) {
  // The fixed twins lock differently, so the buggy run's schedule no longer fits them.
  // The replay must say so rather than pass or fail for the wrong reason: a mismatch
  // during the run stops it; a program that ends early is caught by CheckComplete.
  for (const char* name : {"bank_audit", "two_sections", "lock_order", "stack_underflow"}) {
    RaceOutcome original;
    const Schedule failing = FirstFailure(*FindProgram(name), &original);
    auto replay = std::make_shared<ReplayStrategy>(failing);
    const RaceOutcome fixed = FindProgram(name)->run(Variant::kFixed, RaceRunOptions{replay});
    EXPECT_FALSE(replay->CheckComplete().ok()) << name;
    if (!replay->status().ok()) {
      EXPECT_EQ(fixed.result.outcome, RunOutcome::kTaskFailed) << name;
      EXPECT_TRUE(absl::StartsWith(fixed.result.failure, "replay diverged")) << name;
    } else {
      EXPECT_FALSE(replay->finished()) << name;
      EXPECT_TRUE(absl::StartsWith(replay->CheckComplete().message(), "replay incomplete"));
    }
  }
}

TEST(ReplayStrategy, CompleteReplayChecksComplete) {
  const Schedule schedule = RecordEveryKind(12);
  auto replay = std::make_shared<ReplayStrategy>(schedule);
  RunEveryKind(replay);
  EXPECT_TRUE(replay->CheckComplete().ok()) << replay->CheckComplete();
}

TEST(ReplayStrategy, ReportsAProgramThatAsksForMoreDecisionsThanRecorded) {
  Schedule schedule = RecordEveryKind(11);
  schedule.mutable_entries().resize(schedule.size() / 2);
  auto replay = std::make_shared<ReplayStrategy>(schedule);
  const RunResult result = RunEveryKind(replay);
  EXPECT_EQ(result.outcome, RunOutcome::kTaskFailed);
  ASSERT_TRUE(replay->divergence().has_value());
  EXPECT_FALSE(replay->divergence()->expected.has_value());
  EXPECT_EQ(replay->divergence()->index, schedule.size());
  EXPECT_TRUE(absl::StrContains(result.failure, "the schedule has only")) << result.failure;
}

TEST(ScheduleEntry, PreemptionSwitchesAwayFromARunnableTask) {
  ScheduleEntry e;
  e.kind = DecisionKind::kNextTask;
  e.current = 2;
  e.candidates = {1, 2, 3};
  e.num_options = 3;
  e.chosen = 1;  // Task 2 itself: no switch.
  EXPECT_FALSE(e.is_preemption());
  EXPECT_FALSE(e.is_context_switch());
  e.chosen = 2;  // Task 3 while task 2 could run: a preemption.
  EXPECT_TRUE(e.is_preemption());
  EXPECT_TRUE(e.is_context_switch());
  e.candidates = {1, 3};  // Task 2 blocked: a switch, but not a preemption.
  e.num_options = 2;
  e.chosen = 1;
  EXPECT_FALSE(e.is_preemption());
  EXPECT_TRUE(e.is_context_switch());
}

}  // namespace
}  // namespace dsim
