#include "sim/trace.h"

#include <algorithm>
#include <cstring>
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
      capacity_(options.keep_all_events ? SIZE_MAX : options.keep_last_events),
      fingerprint_(internal::WordHash::kInitialState) {
  DSIM_MISUSE(scheduler != nullptr, "Trace needs a scheduler");
  DSIM_MISUSE(options_.keep_all_events || options_.keep_last_events > 0,
              "TraceOptions::keep_last_events must be positive (or set keep_all_events)");
  categories_.push_back(Category{"", internal::WordHash().value()});
  scheduler_->AddListener(this);
}

Trace::~Trace() { Detach(); }

void Trace::Detach() {
  if (scheduler_ == nullptr) return;
  scheduler_->RemoveListener(this);
  scheduler_ = nullptr;
}

// The next record, with its common fields set. Until the ring is full it is new; then
// it is the oldest, overwritten (the fingerprint still covers it). Every field a later
// reader looks at is set here or by the caller, so nothing of an old event leaks.
inline Trace::Record& Trace::Start(TraceEventKind kind, int64_t time_ns, GroupId group,
                                   TaskId task) {
  Record* r;
  if (ABSL_PREDICT_TRUE(records_.size() == capacity_)) {
    r = &records_[head_];
    head_ = head_ + 1 == capacity_ ? 0 : head_ + 1;
  } else {
    r = &GrowRecords();
  }
  r->index = next_index_++;
  r->time_ns = time_ns;
  r->task = task;
  r->other_task = kNoTask;
  r->number = 0;
  r->options = 0;
  r->group = group;
  r->kind = kind;
  r->code = 0;
  r->flow_phase = 0;
  r->has_text = false;
  r->what = "";
  r->where = SourceLocation();
  r->flow_id = 0;
  r->category = 0;
  r->format = nullptr;
  return *r;
}

Trace::Record& Trace::GrowRecords() {
  if (records_.capacity() == records_.size() && capacity_ != SIZE_MAX) {
    records_.reserve(std::min(capacity_, std::max<size_t>(64, records_.size() * 2)));
  }
  return records_.emplace_back();
}

// Folds the record's content into the stream fingerprint: three to five multiplies
// per event. Strings enter by content (through the caches), never by address.
// `extra_a`/`extra_b` cover content kept elsewhere (a decision's candidates and label,
// an annotation's category and payload). The record keeps the fingerprint so far.
inline void Trace::Finish(Record& r, uint64_t extra_a, uint64_t extra_b) {
  internal::WordHash h(fingerprint_);
  h.Add(static_cast<uint64_t>(r.kind) | uint64_t{r.code} << 8 |
            uint64_t{static_cast<uint8_t>(r.flow_phase)} << 16 | uint64_t{r.group} << 32,
        static_cast<uint64_t>(r.time_ns));
  h.Add(r.task, r.other_task);
  h.Add(r.number, r.options);
  if (extra_a != 0 || extra_b != 0) h.Add(extra_a, extra_b);
  r.hash = fingerprint_ = h.value();
}

void Trace::AddText(Record& r, absl::string_view text) {
  r.has_text = true;
  texts_.emplace_back(r.index, std::string(text));
  // Texts of events the ring no longer holds go.
  const uint64_t oldest = next_index_ - records_.size();
  while (texts_.front().first < oldest) texts_.pop_front();
}

absl::string_view Trace::TextOf(const Record& r) const {
  if (!r.has_text) return "";
  auto it = std::lower_bound(texts_.begin(), texts_.end(), r.index,
                             [](const auto& entry, uint64_t index) { return entry.first < index; });
  DSIM_CHECK(it != texts_.end() && it->first == r.index, "trace text lost");
  return it->second;
}

namespace {

// Equal bytes, 8 at a time: categories are short.
inline bool SameBytes(const char* a, const char* b, size_t n) {
  for (; n >= 8; n -= 8, a += 8, b += 8) {
    uint64_t x, y;
    std::memcpy(&x, a, 8);
    std::memcpy(&y, b, 8);
    if (x != y) return false;
  }
  for (; n > 0; --n, ++a, ++b) {
    if (*a != *b) return false;
  }
  return true;
}

}  // namespace

inline uint32_t Trace::InternCategory(absl::string_view category) {
  CategorySlot& slot = category_cache_[CacheSlot(category.data())];
  if (slot.data == category.data() && slot.size == category.size() &&
      SameBytes(category.data(), categories_[slot.id].text.data(), category.size())) {
    return slot.id;
  }
  return InternCategorySlow(category, slot);
}

uint32_t Trace::InternCategorySlow(absl::string_view category, CategorySlot& slot) {
  auto [it, inserted] =
      category_ids_.try_emplace(std::string(category), static_cast<uint32_t>(categories_.size()));
  if (inserted) {
    internal::WordHash h;
    h.AddString(category);
    categories_.push_back(Category{std::string(category), h.value()});
  }
  slot = CategorySlot{category.data(), category.size(), it->second};
  return it->second;
}

uint64_t Trace::StaticHashSlow(const char* text, StaticSlot& slot) {
  internal::WordHash h;
  h.AddString(text);
  slot = StaticSlot{text, h.value()};
  return slot.hash;
}

uint64_t Trace::FileHashSlow(const char* file, StaticSlot& slot) {
  internal::WordHash h;
  h.AddString(FileBaseName(file));
  slot = StaticSlot{file, h.value()};
  return slot.hash;
}

void Trace::OnDecision(const Decision& decision, uint64_t chosen) {
  if (!options_.record_decisions) return;
  Record& r = Start(TraceEventKind::kDecision, scheduler_->NowNanos(), kNoGroup,
                    decision.current);
  r.code = static_cast<uint8_t>(decision.kind);
  r.number = decision.candidates.empty() ? chosen : decision.candidates[chosen];
  r.options = decision.num_options;
  r.what = decision.label != nullptr ? decision.label : "";
  internal::WordHash candidates(decision.index);
  size_t i = 0;
  const size_t n = decision.candidates.size();
  for (; i + 1 < n; i += 2) candidates.Add(decision.candidates[i], decision.candidates[i + 1]);
  if (i < n) candidates.Add(decision.candidates[i], n);
  Finish(r, candidates.value(), StaticHash(r.what));
}

void Trace::OnSpawn(const TaskView& task) {
  if (task_names_.size() <= task.id) task_names_.resize(task.id + 1);
  task_names_[task.id] = std::string(task.name);
  Record& r = Start(TraceEventKind::kSpawn, scheduler_->NowNanos(), task.group, task.id);
  r.other_task = scheduler_->CurrentTaskId();
  r.number = task.daemon ? 1 : 0;
  AddText(r, task.name);
  internal::WordHash name;
  name.AddString(task.name);
  Finish(r, name.value(), 0);
}

void Trace::OnDispatch(const TaskView& task) {
  Finish(Start(TraceEventKind::kDispatch, scheduler_->NowNanos(), task.group, task.id), 0, 0);
}

void Trace::OnBlock(const TaskView& task, const char* what, SourceLocation where) {
  Record& r = Start(TraceEventKind::kBlock, scheduler_->NowNanos(), task.group, task.id);
  r.what = what != nullptr ? what : "";
  r.where = where;
  Finish(r, StaticHash(r.what),
         FileHash(where.file_name()) ^ static_cast<uint32_t>(where.line()));
}

void Trace::OnWake(const TaskView& task, WakeReason reason) {
  Record& r = Start(TraceEventKind::kWake, scheduler_->NowNanos(), task.group, task.id);
  r.code = static_cast<uint8_t>(reason);
  // The waker: the running task, unless the wake comes from a timer (no task runs
  // then) or from the task itself being killed outside a run.
  const TaskId current = scheduler_->CurrentTaskId();
  r.other_task = current == task.id ? kNoTask : current;
  Finish(r, 0, 0);
}

void Trace::OnFinish(const TaskView& task) {
  Finish(Start(TraceEventKind::kFinish, scheduler_->NowNanos(), task.group, task.id), 0, 0);
}

namespace {

// Nanoseconds since the epoch; the scheduler's own count when `t` is its now.
int64_t NanosSinceEpoch(const Scheduler& scheduler, absl::Time t) {
  return t == scheduler.Now() ? scheduler.NowNanos()
                              : absl::ToInt64Nanoseconds(t - Scheduler::Epoch());
}

}  // namespace

void Trace::OnTimerFired(TimerId timer, absl::Time when) {
  Record& r = Start(TraceEventKind::kTimer, NanosSinceEpoch(*scheduler_, when), kNoGroup, kNoTask);
  r.number = timer;
  Finish(r, 0, 0);
}

void Trace::OnClockAdvanced(absl::Time from, absl::Time to) {
  Record& r = Start(TraceEventKind::kClock, NanosSinceEpoch(*scheduler_, to), kNoGroup, kNoTask);
  r.number = static_cast<uint64_t>(absl::ToInt64Nanoseconds(from - Scheduler::Epoch()));
  Finish(r, 0, 0);
}

void Trace::OnAnnotation(const Annotation& annotation) {
  Record& r = Start(TraceEventKind::kAnnotation, scheduler_->NowNanos(), annotation.group,
                    scheduler_->CurrentTaskId());
  r.category = InternCategory(annotation.category);
  r.flow_id = annotation.flow_id;
  r.flow_phase = static_cast<int8_t>(annotation.flow_phase);
  internal::WordHash content(categories_[r.category].hash);
  if (annotation.format != nullptr) {
    r.format = annotation.format;
    const AnnotationPayload& in = annotation.payload;
    AnnotationPayload& p = r.payload;
    p.text = in.text;
    p.word_count = std::min<uint8_t>(in.word_count, AnnotationPayload::kMaxWords);
    content.Add(p.text != nullptr ? StaticHash(p.text) : 0, p.word_count);
    int i = 0;
    for (; i + 1 < p.word_count; i += 2) {
      p.words[i] = in.words[i];
      p.words[i + 1] = in.words[i + 1];
      content.Add(p.words[i], p.words[i + 1]);
    }
    if (i < p.word_count) {
      p.words[i] = in.words[i];
      content.Add(p.words[i], 0);
    }
  } else {
    AddText(r, annotation.detail);
    content.AddString(annotation.detail);
  }
  Finish(r, content.value(), r.flow_id);
}

// ---- Reading the records -----------------------------------------------------------

const Trace::Record& Trace::RetainedRecord(size_t i) const {
  DSIM_DCHECK(i < records_.size());
  const size_t slot = head_ + i;
  return records_[slot < records_.size() ? slot : slot - records_.size()];
}

TraceEvent Trace::Materialize(const Record& r) const {
  TraceEvent e;
  e.index = r.index;
  e.time_ns = r.time_ns;
  e.kind = r.kind;
  e.code = r.code;
  e.group = r.group;
  e.task = r.task;
  e.other_task = r.other_task;
  e.number = r.number;
  e.options = r.options;
  e.what = r.what;
  e.where = r.where;
  if (r.kind == TraceEventKind::kAnnotation) e.category = categories_[r.category].text;
  if (r.format != nullptr) {
    r.format(r.payload, &e.detail);
  } else {
    e.detail = std::string(TextOf(r));
  }
  e.flow_id = r.flow_id;
  e.flow_phase = r.flow_phase;
  e.hash = r.hash;
  return e;
}

std::vector<TraceEvent> Trace::LastEvents(size_t count) const {
  std::vector<TraceEvent> out;
  const size_t first = records_.size() > count ? records_.size() - count : 0;
  out.reserve(records_.size() - first);
  for (size_t i = first; i < records_.size(); ++i) out.push_back(Materialize(RetainedRecord(i)));
  return out;
}

const std::deque<TraceEvent>& Trace::events() const {
  if (materialized_at_ != next_index_) {  // Any new event changes next_index_.
    materialized_.clear();
    for (size_t i = 0; i < records_.size(); ++i) {
      materialized_.push_back(Materialize(RetainedRecord(i)));
    }
    materialized_at_ = next_index_;
  }
  return materialized_;
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
  const size_t first = records_.size() > count ? records_.size() - count : 0;
  for (size_t i = first; i < records_.size(); ++i) {
    absl::StrAppend(&out, Describe(Materialize(RetainedRecord(i))), "\n");
  }
  return out;
}

void Trace::WriteText(std::ostream& out) const {
  out << absl::StrFormat("# dsim trace: %d events, fingerprint %016x", next_index_,
                         fingerprint_);
  if (!complete()) out << absl::StrCat(", showing the last ", records_.size());
  out << "\n";
  for (size_t i = 0; i < records_.size(); ++i) {
    out << Describe(Materialize(RetainedRecord(i))) << "\n";
  }
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
