// EventLog: a test-only SchedulerListener that records every event as one line of text,
// so tests can compare whole traces ("it passed once" proves nothing about ordering).
#ifndef DSIM_TESTS_TESTING_EVENT_LOG_H_
#define DSIM_TESTS_TESTING_EVENT_LOG_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/scheduler.h"

namespace dsim::testing {

class EventLog : public SchedulerListener {
 public:
  void OnDecision(const Decision& d, uint64_t chosen) override {
    Add(absl::StrCat("decide ", DecisionKindName(d.kind), " [", absl::StrJoin(d.candidates, ","),
                     "] n=", d.num_options, " -> ", chosen));
  }
  void OnSpawn(const TaskView& t) override { Add(absl::StrCat("spawn ", t.id, " ", t.name)); }
  void OnDispatch(const TaskView& t) override { Add(absl::StrCat("run ", t.name)); }
  void OnBlock(const TaskView& t, const char* what, SourceLocation) override {
    Add(absl::StrCat("block ", t.name, " in ", what));
  }
  void OnWake(const TaskView& t, WakeReason reason) override {
    Add(absl::StrCat("wake ", t.name, reason == WakeReason::kTimedOut ? " (timeout)" : ""));
  }
  void OnFinish(const TaskView& t) override { Add(absl::StrCat("finish ", t.name)); }
  void OnTimerFired(TimerId, absl::Time) override { Add("timer"); }
  void OnClockAdvanced(absl::Time from, absl::Time to) override {
    if (to <= from) backwards_ = true;
    Add(absl::StrCat("clock +", absl::FormatDuration(to - Scheduler::Epoch())));
  }
  void OnAnnotation(const Annotation& a) override {
    Add(absl::StrCat("note ", a.category, " ", a.detail));
  }

  // A user-level event, e.g. "client got 42".
  void Note(const std::string& text) { Add(absl::StrCat("user ", text)); }

  const std::vector<std::string>& lines() const { return lines_; }
  std::string Text() const { return absl::StrJoin(lines_, "\n"); }
  // Only the lines that start with `prefix`.
  std::vector<std::string> Filter(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const std::string& line : lines_) {
      if (line.rfind(prefix, 0) == 0) out.push_back(line);
    }
    return out;
  }
  bool clock_went_backwards() const { return backwards_; }

 private:
  void Add(std::string line) { lines_.push_back(std::move(line)); }

  std::vector<std::string> lines_;
  bool backwards_ = false;
};

}  // namespace dsim::testing

#endif  // DSIM_TESTS_TESTING_EVENT_LOG_H_
