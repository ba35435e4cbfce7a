#include "sim/trace.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "scheduler/internal/check.h"
#include "sim/internal/stream_hash.h"
#include "sim/internal/trace_json.h"

namespace dsim {

namespace {

absl::string_view FileBaseName(absl::string_view path) {
  const size_t slash = path.find_last_of('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

const char* TraceEventKindName(TraceEventKind kind) {
  switch (kind) {
    case TraceEventKind::kSpawn: return "spawn";
    case TraceEventKind::kDispatch: return "run";
    case TraceEventKind::kBlock: return "block";
    case TraceEventKind::kWake: return "wake";
    case TraceEventKind::kFinish: return "finish";
    case TraceEventKind::kTimer: return "timer";
    case TraceEventKind::kClock: return "clock";
    case TraceEventKind::kDecision: return "decide";
    case TraceEventKind::kAnnotation: return "note";
  }
  return "?";
}

std::string FormatVirtualTime(int64_t time_ns) {
  const char* sign = time_ns < 0 ? "-" : "+";
  const uint64_t magnitude =
      time_ns < 0 ? 0 - static_cast<uint64_t>(time_ns) : static_cast<uint64_t>(time_ns);
  return absl::StrFormat("%s%d.%09ds", sign, magnitude / 1000000000, magnitude % 1000000000);
}

// ---- Recording ---------------------------------------------------------------------

Trace::Trace(Scheduler* scheduler, TraceOptions options)
    : scheduler_(scheduler),
      options_(options),
      fingerprint_(internal::StreamHash::kInitialState) {
  DSIM_MISUSE(scheduler != nullptr, "Trace needs a scheduler");
  DSIM_MISUSE(options_.keep_all_events || options_.keep_last_events > 0,
              "TraceOptions::keep_last_events must be positive (or set keep_all_events)");
  scheduler_->AddListener(this);
}

Trace::~Trace() { Detach(); }

void Trace::Detach() {
  if (scheduler_ == nullptr) return;
  scheduler_->RemoveListener(this);
  scheduler_ = nullptr;
}

int64_t Trace::NowNs() const {
  DSIM_CHECK(scheduler_ != nullptr, "a detached trace received an event");
  return absl::ToInt64Nanoseconds(scheduler_->Now() - Scheduler::Epoch());
}

TraceEvent& Trace::Start(TraceEventKind kind, int64_t time_ns) {
  if (!options_.keep_all_events && events_.size() >= options_.keep_last_events) {
    events_.pop_front();  // Bounded memory: the fingerprint still covers it.
  }
  TraceEvent& event = events_.emplace_back();
  event.index = next_index_++;
  event.time_ns = time_ns;
  event.kind = kind;
  return event;
}

// Hashes the event's content and folds it into the stream fingerprint. `extra_hash`
// covers content that is not stored (a decision's candidate list).
void Trace::Finish(TraceEvent& event, uint64_t extra_hash) {
  internal::StreamHash h;
  h.AddU64(static_cast<uint64_t>(event.kind));
  h.AddU64(event.code);
  h.AddU64(static_cast<uint64_t>(event.time_ns));
  h.AddU64(event.group);
  h.AddU64(event.task);
  h.AddU64(event.other_task);
  h.AddU64(event.number);
  h.AddU64(event.options);
  h.AddString(event.what);
  // The file's base name, not the path __builtin_FILE() gave: the same run built in
  // another directory or by another build system must get the same fingerprint.
  h.AddString(FileBaseName(event.where.file_name()));
  h.AddU64(static_cast<uint64_t>(event.where.line()));
  h.AddString(event.category);
  h.AddString(event.detail);
  h.AddU64(event.flow_id);
  h.AddU64(static_cast<uint64_t>(event.flow_phase));
  h.AddU64(extra_hash);
  event.hash = h.value();
  internal::StreamHash stream(fingerprint_);
  stream.AddU64(event.hash);
  fingerprint_ = stream.value();
}

void Trace::OnDecision(const Decision& decision, uint64_t chosen) {
  if (!options_.record_decisions) return;
  TraceEvent& event = Start(TraceEventKind::kDecision, NowNs());
  event.code = static_cast<uint8_t>(decision.kind);
  event.task = decision.current;
  event.number = decision.candidates.empty() ? chosen : decision.candidates[chosen];
  event.options = decision.num_options;
  event.what = decision.label != nullptr ? decision.label : "";
  internal::StreamHash candidates;
  for (uint64_t candidate : decision.candidates) candidates.AddU64(candidate);
  candidates.AddU64(decision.index);
  Finish(event, candidates.value());
}

void Trace::OnSpawn(const TaskView& task) {
  if (task_names_.size() <= task.id) task_names_.resize(task.id + 1);
  task_names_[task.id] = std::string(task.name);
  TraceEvent& event = Start(TraceEventKind::kSpawn, NowNs());
  event.task = task.id;
  event.group = task.group;
  event.other_task = scheduler_->CurrentTaskId();
  event.number = task.daemon ? 1 : 0;
  event.detail = std::string(task.name);
  Finish(event);
}

void Trace::OnDispatch(const TaskView& task) {
  TraceEvent& event = Start(TraceEventKind::kDispatch, NowNs());
  event.task = task.id;
  event.group = task.group;
  Finish(event);
}

void Trace::OnBlock(const TaskView& task, const char* what, SourceLocation where) {
  TraceEvent& event = Start(TraceEventKind::kBlock, NowNs());
  event.task = task.id;
  event.group = task.group;
  event.what = what != nullptr ? what : "";
  event.where = where;
  Finish(event);
}

void Trace::OnWake(const TaskView& task, WakeReason reason) {
  TraceEvent& event = Start(TraceEventKind::kWake, NowNs());
  event.task = task.id;
  event.group = task.group;
  event.code = static_cast<uint8_t>(reason);
  // The waker: the running task, unless the wake comes from a timer (no task runs
  // then) or from the task itself being killed outside a run.
  const TaskId current = scheduler_->CurrentTaskId();
  event.other_task = current == task.id ? kNoTask : current;
  Finish(event);
}

void Trace::OnFinish(const TaskView& task) {
  TraceEvent& event = Start(TraceEventKind::kFinish, NowNs());
  event.task = task.id;
  event.group = task.group;
  Finish(event);
}

void Trace::OnTimerFired(TimerId timer, absl::Time when) {
  TraceEvent& event =
      Start(TraceEventKind::kTimer, absl::ToInt64Nanoseconds(when - Scheduler::Epoch()));
  event.number = timer;
  Finish(event);
}

void Trace::OnClockAdvanced(absl::Time from, absl::Time to) {
  TraceEvent& event =
      Start(TraceEventKind::kClock, absl::ToInt64Nanoseconds(to - Scheduler::Epoch()));
  event.number = static_cast<uint64_t>(absl::ToInt64Nanoseconds(from - Scheduler::Epoch()));
  Finish(event);
}

void Trace::OnAnnotation(const Annotation& annotation) {
  TraceEvent& event = Start(TraceEventKind::kAnnotation, NowNs());
  event.group = annotation.group;
  event.task = scheduler_->CurrentTaskId();
  event.category = std::string(annotation.category);
  event.detail = std::string(annotation.detail);
  event.flow_id = annotation.flow_id;
  event.flow_phase = annotation.flow_phase;
  Finish(event);
}

// ---- Names -------------------------------------------------------------------------

void Trace::NameGroup(GroupId group, std::string name) {
  if (group_names_.size() <= group) group_names_.resize(group + 1);
  group_names_[group] = std::move(name);
}

std::string Trace::GroupName(GroupId group) const {
  if (group < group_names_.size() && !group_names_[group].empty()) return group_names_[group];
  return group == kNoGroup ? "sim" : absl::StrCat("host ", group);
}

absl::string_view Trace::TaskName(TaskId task) const {
  return task < task_names_.size() ? absl::string_view(task_names_[task]) : "";
}

// ---- Text --------------------------------------------------------------------------

namespace {

const char* WakeReasonText(uint8_t code) {
  return static_cast<WakeReason>(code) == WakeReason::kTimedOut ? "timed out" : "woken";
}

}  // namespace

std::string Trace::Describe(const TraceEvent& e) const {
  std::string out = absl::StrCat("#", e.index, " ", FormatVirtualTime(e.time_ns), " ");
  if (e.group != kNoGroup) absl::StrAppend(&out, "[", GroupName(e.group), "] ");
  if (e.task != kNoTask) {
    absl::StrAppend(&out, "task ", e.task, " \"", TaskName(e.task), "\" ");
  } else {
    absl::StrAppend(&out, "loop ");
  }
  absl::StrAppend(&out, TraceEventKindName(e.kind));
  switch (e.kind) {
    case TraceEventKind::kSpawn:
      if (e.number != 0) absl::StrAppend(&out, " daemon");
      if (e.other_task != kNoTask) absl::StrAppend(&out, " by task ", e.other_task);
      break;
    case TraceEventKind::kDispatch:
    case TraceEventKind::kFinish:
      break;
    case TraceEventKind::kBlock:
      absl::StrAppend(&out, " in ", e.what, " at ", e.where.ToString());
      break;
    case TraceEventKind::kWake:
      absl::StrAppend(&out, " (", WakeReasonText(e.code), ")");
      if (e.other_task != kNoTask) absl::StrAppend(&out, " by task ", e.other_task);
      break;
    case TraceEventKind::kTimer:
      absl::StrAppend(&out, " ", e.number, " fired");
      break;
    case TraceEventKind::kClock:
      absl::StrAppend(&out, " ", FormatVirtualTime(static_cast<int64_t>(e.number)), " -> ",
                      FormatVirtualTime(e.time_ns));
      break;
    case TraceEventKind::kDecision: {
      const auto kind = static_cast<DecisionKind>(e.code);
      absl::StrAppend(&out, " ", DecisionKindName(kind));
      if (e.what[0] != '\0') absl::StrAppend(&out, " \"", e.what, "\"");
      if (kind == DecisionKind::kValue) {
        absl::StrAppend(&out, ": ", e.number);
        if (e.options != 0) absl::StrAppend(&out, " of ", e.options);
      } else {
        absl::StrAppend(&out, ": ", kind == DecisionKind::kTimerOrder ? "timer #" : "task ",
                        e.number, " of ", e.options);
      }
      break;
    }
    case TraceEventKind::kAnnotation:
      absl::StrAppend(&out, " ", e.category);
      if (!e.detail.empty()) absl::StrAppend(&out, ": ", e.detail);
      if (e.flow_id != 0) {
        absl::StrAppend(&out, " [flow ", e.flow_id, e.flow_phase == 1 ? " start]" : " end]");
      }
      break;
  }
  return out;
}

std::string Trace::LastEventsText(size_t count) const {
  std::string out;
  const size_t first = events_.size() > count ? events_.size() - count : 0;
  for (size_t i = first; i < events_.size(); ++i) {
    absl::StrAppend(&out, Describe(events_[i]), "\n");
  }
  return out;
}

void Trace::WriteText(std::ostream& out) const {
  out << absl::StrFormat("# dsim trace: %d events, fingerprint %016x", next_index_,
                         fingerprint_);
  if (!complete()) out << absl::StrCat(", showing the last ", events_.size());
  out << "\n";
  for (const TraceEvent& event : events_) out << Describe(event) << "\n";
}

std::string Trace::ToText() const {
  std::ostringstream out;
  WriteText(out);
  return out.str();
}

void Trace::WriteChromeJson(std::ostream& out, const ChromeJsonOptions& options) const {
  internal::WriteChromeTraceJson(*this, options, out);
}

std::string Trace::ToChromeJson(const ChromeJsonOptions& options) const {
  std::ostringstream out;
  WriteChromeJson(out, options);
  return out.str();
}

absl::Status Trace::WriteFile(const std::string& path) const {
  std::ofstream file(path, std::ios::out | std::ios::trunc);
  if (!file) return absl::UnavailableError(absl::StrCat("cannot open trace file ", path));
  if (absl::EndsWith(path, ".json")) {
    WriteChromeJson(file);
  } else {
    WriteText(file);
  }
  file.close();
  if (!file) return absl::UnavailableError(absl::StrCat("cannot write trace file ", path));
  return absl::OkStatus();
}

// ---- Divergence --------------------------------------------------------------------

std::string TraceDivergence::ToString() const {
  std::string out = absl::StrCat(located ? "first divergent event: #" : "streams differ at or before event #",
                                 index, " at virtual time ", FormatVirtualTime(time_ns));
  if (task != kNoTask) absl::StrAppend(&out, ", task ", task, " \"", task_name, "\"");
  absl::StrAppend(&out, "\n  run 1: ", first, "\n  run 2: ", second);
  return out;
}

namespace {

const TraceEvent* EventAt(const Trace& trace, uint64_t index) {
  const std::deque<TraceEvent>& events = trace.events();
  if (events.empty() || index < events.front().index || index > events.back().index) {
    return nullptr;
  }
  const TraceEvent* event = &events[index - events.front().index];
  DSIM_DCHECK(event->index == index);
  return event;
}

std::string DescribeOrEnd(const Trace& trace, const TraceEvent* event, uint64_t index) {
  if (event != nullptr) return trace.Describe(*event);
  if (index >= trace.event_count()) return "(stream ended)";
  return "(not retained)";
}

}  // namespace

std::optional<TraceDivergence> FirstDivergence(const Trace& first, const Trace& second) {
  if (first.event_count() == second.event_count() &&
      first.fingerprint() == second.fingerprint()) {
    return std::nullopt;
  }
  // Compare from the first index both streams retain (0 for complete traces).
  auto retained_from = [](const Trace& t) {
    return t.events().empty() ? t.event_count() : t.events().front().index;
  };
  const uint64_t start = std::max(retained_from(first), retained_from(second));
  const uint64_t end = std::max(first.event_count(), second.event_count());
  TraceDivergence divergence;
  divergence.located = start == 0;
  divergence.index = start;
  for (uint64_t i = start; i < end; ++i) {
    const TraceEvent* a = EventAt(first, i);
    const TraceEvent* b = EventAt(second, i);
    if (a != nullptr && b != nullptr && a->hash == b->hash) continue;
    divergence.index = i;
    break;
  }
  const TraceEvent* a = EventAt(first, divergence.index);
  const TraceEvent* b = EventAt(second, divergence.index);
  const TraceEvent* any = a != nullptr ? a : b;
  if (any != nullptr) {
    divergence.time_ns = any->time_ns;
    divergence.task = any->task;
    divergence.task_name = std::string((a != nullptr ? first : second).TaskName(any->task));
  }
  divergence.first = DescribeOrEnd(first, a, divergence.index);
  divergence.second = DescribeOrEnd(second, b, divergence.index);
  return divergence;
}

}  // namespace dsim
