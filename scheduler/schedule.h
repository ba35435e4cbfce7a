// Schedule: the record of every decision one simulation made, and the strategies that
// write one (RecordingStrategy) and play one back (ReplayStrategy).
//
// A seed reproduces a run only while the code stays the same. A schedule reproduces it
// decision by decision, and when the code has changed so that it no longer fits, replay
// says where: the decision, the step, and the expected versus the actual runnable set.
//
// Example: record a failing run, save it, replay it later.
//
//   auto recorder = std::make_shared<dsim::RecordingStrategy>(
//       std::make_shared<dsim::RandomStrategy>(seed), seed);
//   {
//     dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = seed, .strategy = recorder});
//     ... spawn tasks ...
//     if (!scheduler.Run().ok()) recorder->Save("/tmp/failing.dsched").IgnoreError();
//   }
//   // Later, or on another machine (also DSIM_STRATEGY=replay:/tmp/failing.dsched):
//   auto replay = std::make_shared<dsim::ReplayStrategy>(*dsim::Schedule::Load(path));
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.strategy = replay});
//   ... spawn the same tasks ...
//   dsim::RunResult result = scheduler.Run();   // the same run, decision for decision
//   if (!replay->status().ok()) { ... the code changed; status() says where ... }
//
// Everything a simulation decides goes through its Strategy (scheduler/strategy.h): task
// order, timer order, wake order, and every random value a model draws (latency, loss,
// faults). So a schedule holds all of it, with no help from the models.
//
// File format, version 1 (all integers are LEB128 varints unless noted):
//
//   "DSIMSCHD"            8 bytes of magic
//   version               = 1
//   seed                  the seed of the recorded run (informational)
//   strategy              string: the recording's Strategy::Describe()
//   count                 number of entries
//   entry * count
//   [version 2 only] names: count, (task id, name string) * count: the recorded run's
//                   task names, for reports (written as version 2 only when present)
//   checksum              8 bytes, little-endian FNV-1a 64 of every byte before it
//
//   string := length, bytes
//   entry  := head, step_delta, time_delta_ns, current, body
//     head         byte: bits 0-1 the DecisionKind; bit 2 set when the candidates equal
//                  those of the previous entry of the same kind (and are omitted);
//                  bit 3 set when a new label follows (kValue)
//     step_delta   Decision::step minus the previous entry's (steps never decrease)
//     time_delta_ns  virtual nanoseconds since the previous entry (time never decreases)
//     current      the running task id, 0 for none
//     body for kNextTask, kTimerOrder, kWakeOne:
//                  [count, id * count unless bit 2], chosen index
//     body for kValue:
//                  num_options (0 = 2^64), [label string if bit 3] label index, value
//   Labels form a table in order of first use; a new label gets the next index.
#ifndef DSIM_SCHEDULER_SCHEDULE_H_
#define DSIM_SCHEDULER_SCHEDULE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <tuple>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "scheduler/strategy.h"

namespace dsim {

// One decision as recorded.
struct ScheduleEntry {
  DecisionKind kind = DecisionKind::kNextTask;
  uint64_t step = 0;    // Decision::step.
  int64_t time_ns = 0;  // Decision::now, in virtual nanoseconds since Scheduler::Epoch().
  TaskId current = kNoTask;
  // kValue: the number of options (0 = 2^64). Others: candidates.size().
  uint64_t num_options = 0;
  std::vector<uint64_t> candidates;  // Empty for kValue.
  // The index chosen; for kValue, the value itself.
  uint64_t chosen = 0;
  std::string label;  // kValue only.

  // The identity chosen: the candidate's id, or the value for kValue.
  uint64_t chosen_id() const { return candidates.empty() ? chosen : candidates[chosen]; }
  // A kNextTask decision that switches away from a task that could have gone on running
  // (the current task is among the candidates and another one is chosen).
  bool is_preemption() const;
  // A kNextTask decision that runs a task other than the current one (a preemption, or
  // a choice after the current task blocked or finished).
  bool is_context_switch() const;
  // "#12 step 40 +3ms next-task current=2 {1,2,3} -> 3".
  std::string ToString(uint64_t index) const;
  bool operator==(const ScheduleEntry& other) const;
  bool operator!=(const ScheduleEntry& other) const { return !(*this == other); }
};

// Sizes that shrinking reduces.
struct ScheduleStats {
  uint64_t decisions = 0;
  uint64_t task_choices = 0;  // kNextTask decisions.
  uint64_t preemptions = 0;
  uint64_t context_switches = 0;
  uint64_t values = 0;          // kValue decisions.
  uint64_t nonzero_values = 0;  // kValue decisions with a bounded range and a value != 0.
  uint64_t last_step = 0;       // Step of the last decision: the run's length, roughly.

  std::string ToString() const;
};

class Schedule {
 public:
  // Version 2 adds the task name table; files without names are still written, and
  // read, as version 1.
  static constexpr uint64_t kFormatVersion = 2;

  Schedule() = default;
  Schedule(std::string strategy, uint64_t seed) : strategy_(std::move(strategy)), seed_(seed) {}

  const std::vector<ScheduleEntry>& entries() const { return entries_; }
  std::vector<ScheduleEntry>& mutable_entries() { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const ScheduleEntry& operator[](size_t index) const { return entries_[index]; }
  void Add(ScheduleEntry entry) { entries_.push_back(std::move(entry)); }

  const std::string& strategy() const { return strategy_; }
  uint64_t seed() const { return seed_; }

  // The recorded run's task names by id (for reports; decide nothing).
  const std::map<TaskId, std::string>& task_names() const { return task_names_; }
  void SetTaskName(TaskId id, std::string name) { task_names_[id] = std::move(name); }

  ScheduleStats Stats() const;

  // OK, or InvalidArgument naming the first entry that goes back in steps or time, or
  // contradicts itself (a choice out of range, no candidates). Only valid schedules
  // serialize: hand-edited or generated ones get this error, never a crash.
  absl::Status Validate() const;
  // The compact binary form (see the format above), and back. Serialize fails as
  // Validate does. Parse rejects unknown versions, truncation, bad checksums, steps or
  // times that overflow, and entries that contradict themselves, with an error naming
  // the entry; no input makes it crash, allocate without bound or overflow.
  absl::StatusOr<std::string> Serialize() const;
  static absl::StatusOr<Schedule> Parse(absl::string_view bytes);
  absl::Status Save(const std::string& path) const;
  static absl::StatusOr<Schedule> Load(const std::string& path);

  // One line per decision, for people and for diffs.
  std::string ToString() const;

  bool operator==(const Schedule& other) const { return entries_ == other.entries_; }

 private:
  std::string strategy_;
  uint64_t seed_ = 0;
  std::vector<ScheduleEntry> entries_;
  std::map<TaskId, std::string> task_names_;
};

// Wraps a strategy and records every decision it makes. A new simulation (decision
// index 0 again) starts a new schedule: the recorder holds the latest simulation's.
class RecordingStrategy final : public Strategy {
 public:
  // `seed` is stored in the schedule for people to read; it decides nothing.
  explicit RecordingStrategy(std::shared_ptr<Strategy> inner, uint64_t seed = 0);

  uint64_t Choose(const Decision& decision) override;
  // The inner strategy's description: recording changes no decision.
  std::string Describe() const override { return inner_->Describe(); }
  void OnRunEnd(uint64_t steps) override { inner_->OnRunEnd(steps); }
  bool ObservesYields() const override { return inner_->ObservesYields(); }
  void OnYield(TaskId task) override { inner_->OnYield(task); }

  const Schedule& schedule() const { return schedule_; }
  Schedule TakeSchedule() { return std::move(schedule_); }
  absl::Status Save(const std::string& path) const { return schedule_.Save(path); }

 private:
  void NameTasks(const Decision& decision);

  std::shared_ptr<Strategy> inner_;
  uint64_t seed_;
  Schedule schedule_;
  uint64_t next_index_ = 0;
  std::vector<bool> named_;  // By task id: already in the schedule's name table.
};

// Where a replayed program stopped fitting its schedule.
struct Divergence {
  uint64_t index = 0;  // Decision index.
  uint64_t step = 0;
  int64_t time_ns = 0;
  TaskId current = kNoTask;
  // What the schedule holds at `index` (absent when the program asked for more
  // decisions than were recorded) and what the program asked.
  std::optional<ScheduleEntry> expected;
  ScheduleEntry actual;
  // Who is who, from the replaying run (filled by ReplayStrategy while it runs). Up to
  // the divergence the run followed the schedule decision for decision, so a task id
  // names the same task in the recording and in this run.
  std::map<TaskId, std::string> task_names;      // Live tasks' names in this run.
  std::map<TaskId, std::string> recorded_names;  // The recording's (schedule v2).
  std::string current_name;                  // The running task's, or "".
  std::string current_site;                  // Where it blocked ("kv.cc:88"), if it did.

  // "replay diverged at decision 17 (step 40, +3ms, task 2 "client-2" blocked in
  // CondVar::Wait at kv.cc:88): the schedule expected next-task among {1 "server", 2
  // "client-2"} and chose 2 "client-2" (recorded at step 40, +3ms, in task 2
  // "client-2"); the program asked next-task among {1 "server", 3 "client-3"}".
  std::string ToString() const;
};

// Plays a schedule back. Every decision must match the recorded one: the same kind, the
// same candidate set (order aside) and, for values, the same range and label. The
// recorded choice is taken by identity (the same task id, timer or value).
//
// On the first mismatch the replay records a Divergence and stops the run: it adds a
// timer due at once whose callback throws, so the run ends with RunOutcome::kTaskFailed
// and a failure message that is the divergence report; the rest of the run makes
// deterministic fallback choices. So a diverged replay can never pass for the recorded
// run. Callers can also read divergence() / status(). A program that makes fewer
// decisions than recorded cannot be caught during the run; CheckComplete() reports it.
class ReplayStrategy final : public Strategy {
 public:
  explicit ReplayStrategy(Schedule schedule);

  uint64_t Choose(const Decision& decision) override;
  std::string Describe() const override;

  // OK, or FailedPrecondition with the divergence report.
  absl::Status status() const;
  // As status(), and also FailedPrecondition when the program made fewer decisions than
  // the schedule holds (it ended early: the code changed). Call it once the Scheduler is
  // destroyed: tearing a scheduler down unwinds tasks, which may still make decisions.
  absl::Status CheckComplete() const;
  const std::optional<Divergence>& divergence() const { return divergence_; }
  // Decisions replayed so far, and whether every recorded decision was replayed.
  uint64_t consumed() const { return next_index_; }
  bool finished() const { return next_index_ == schedule_.size(); }
  const Schedule& schedule() const { return schedule_; }

 private:
  std::optional<Divergence> Check(const Decision& decision) const;
  void Diverge(Divergence divergence);
  uint64_t Fallback(const Decision& decision) const;

  Schedule schedule_;
  uint64_t next_index_ = 0;
  std::optional<Divergence> divergence_;
};

// Follows a recorded schedule wherever it still fits, and asks `fallback` wherever it
// does not, so a changed program (a fix) can be run against the exact scenario that
// failed: DSIM_STRATEGY=guided:<file>. Decisions find their recorded counterpart by
// (kind, running task, how many such decisions that task made before), which survives
// decisions added or removed in other tasks. A recorded entry fits when it is of the
// same kind and its choice is still possible: the same task or timer among the
// candidates, or a value of the same range and label. Never fails a run.
class GuidedReplayStrategy final : public Strategy {
 public:
  GuidedReplayStrategy(Schedule schedule, std::shared_ptr<Strategy> fallback);

  uint64_t Choose(const Decision& decision) override;
  // "guided(812 decisions of random(seed=7), 790 followed, 4 by random(seed=7))".
  std::string Describe() const override;
  void OnRunEnd(uint64_t steps) override { fallback_->OnRunEnd(steps); }

  uint64_t followed() const { return followed_; }
  uint64_t fell_back() const { return fell_back_; }

 private:
  using Key = std::tuple<int, TaskId, uint64_t>;  // kind, running task, ordinal.
  std::optional<uint64_t> Recorded(const Decision& decision, const ScheduleEntry& e) const;

  Schedule schedule_;
  std::shared_ptr<Strategy> fallback_;
  std::map<Key, size_t> entry_of_;         // Looked up only; built once.
  std::map<std::pair<int, TaskId>, uint64_t> ordinals_;
  uint64_t followed_ = 0;
  uint64_t fell_back_ = 0;
};

// The entry a decision would be recorded as, with `chosen`.
ScheduleEntry EntryFromDecision(const Decision& decision, uint64_t chosen);

}  // namespace dsim

#endif  // DSIM_SCHEDULER_SCHEDULE_H_
