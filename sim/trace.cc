#include "sim/trace.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <type_traits>
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
//
// The fingerprint is a chain of Fold(a, b) steps (one WordHash multiply each). Every
// event folds a head word first: its kind in the low byte, then the code, the flow
// phase and the group, which fixes how many further words the event folds, so the
// sequence of folded words spells out the event stream unambiguously: two streams that
// differ in any event's content fold different sequences, and their fingerprints differ
// but for a 64-bit hash collision. Fields are folded unless other folded content
// already determines them:
//   - index: its position in the stream.
//   - time: folded (head kTimeChange) only when it differs from the previous event's,
//     so each event's time is the last time folded before it.
//   - a decision's `index` in the run: the count of decisions folded before it.
//   - the running task's own dispatch when it goes on after a scheduling point: no
//     event (its run continues), a kContinue fold with the time.
//   - task and timer picks: not folded, not events. The run or timer event after a
//     pick names it (a pick of the running task is a continuation), and the options
//     it chose among follow from the events before it. Value draws and wake-one picks
//     are events.
// Strings enter by content (the caches only save recomputing it).

namespace {

// Head word of a time change: no TraceEventKind has this low byte.
constexpr uint64_t kTimeChange = 0xff;
// Head bit of an annotation whose detail is eager text (its content follows as a string).
constexpr uint64_t kEagerDetail = uint64_t{1} << 24;
// Head word of a step on which the running task goes on: no TraceEventKind has this
// low byte.
constexpr uint64_t kContinue = 0xfe;

inline uint64_t Head(TraceEventKind kind, uint8_t code, GroupId group) {
  return static_cast<uint64_t>(kind) | uint64_t{code} << 8 | uint64_t{group} << 32;
}

// The next power of two at or above n (n > 0), or 0 when there is none.
uint64_t PowerOfTwoAtLeast(uint64_t n) {
  uint64_t p = 1;
  while (p < n && p != 0) p <<= 1;
  return p;
}

}  // namespace

Trace::Trace(Scheduler* scheduler, TraceOptions options)
    : scheduler_(scheduler),
      options_(options),
      keep_(options.keep_all_events ? SIZE_MAX : options.keep_last_events),
      fingerprint_(internal::WordHash::kInitialState) {
  DSIM_MISUSE(scheduler != nullptr, "Trace needs a scheduler");
  DSIM_MISUSE(options_.keep_all_events || options_.keep_last_events > 0,
              "TraceOptions::keep_last_events must be positive (or set keep_all_events)");
  const uint64_t slots = options.keep_all_events ? 0 : PowerOfTwoAtLeast(keep_);
  const uint64_t word_slots =
      slots == 0 ? 0 : PowerOfTwoAtLeast(slots * AnnotationPayload::kMaxWords);
  // No power of two (or keeping all): an unbounded array indexed directly.
  mask_ = slots == 0 ? ~uint64_t{0} : slots - 1;
  words_mask_ = word_slots == 0 ? ~uint64_t{0} : word_slots - 1;
  if (slots == 0) keep_ = SIZE_MAX;
  categories_.push_back(Category{"", internal::WordHash().value()});
  scheduler_->AddListener(this);
}

Trace::~Trace() { Detach(); }

void Trace::Detach() {
  if (scheduler_ == nullptr) return;
  scheduler_->RemoveListener(this);
  scheduler_ = nullptr;
}

inline void Trace::Fold(uint64_t a, uint64_t b) {
  internal::WordHash h(fingerprint_);
  h.Add(a, b);
  fingerprint_ = h.value();
}

// The next record, in a slot that is new or the oldest's (the fingerprint still covers
// the overwritten event). Sets the fields every kind has.
inline Trace::Record& Trace::Start(TraceEventKind kind, int64_t time_ns, GroupId group,
                                   TaskId task) {
  const uint64_t slot = next_index_ & mask_;
  if (ABSL_PREDICT_FALSE(slot >= record_slots_)) Grow();
  Record& r = records_[slot];
  ++next_index_;
  if (ABSL_PREDICT_FALSE(time_ns != last_time_ns_)) {
    Fold(kTimeChange, static_cast<uint64_t>(time_ns));
    last_time_ns_ = time_ns;
  }
  r.time_ns = time_ns;
  r.task = task;
  r.group = group;
  r.kind = kind;
  return r;
}

namespace {

// Grows a buffer of trivially copyable T to `size` elements, keeping the first `used`.
// The new elements stay uninitialized: readers touch only what was written.
template <typename T>
void Regrow(std::unique_ptr<T[]>& buffer, uint64_t used, uint64_t size) {
  static_assert(std::is_trivially_copyable<T>::value, "slots are copied as bytes");
  std::unique_ptr<T[]> bigger(new T[size]);
  if (used > 0) std::memcpy(bigger.get(), buffer.get(), used * sizeof(T));
  buffer = std::move(bigger);
}

}  // namespace

void Trace::Grow() {
  // A ring gets its full size at once (one allocation, nothing zeroed); an unbounded
  // trace doubles.
  const uint64_t size = mask_ == ~uint64_t{0} ? std::max<uint64_t>(64, record_slots_ * 2)
                                                : mask_ + 1;
  Regrow(records_, record_slots_, size);
  record_slots_ = size;
}

// Room for an annotation's payload words at next_word_ (any of them may wrap when the
// ring is full: callers index with words_mask_).
inline uint64_t* Trace::ReserveWords() {
  if (ABSL_PREDICT_FALSE(next_word_ + AnnotationPayload::kMaxWords > word_slots_) &&
      (words_mask_ == ~uint64_t{0} || word_slots_ == 0)) {
    const uint64_t size =
        words_mask_ == ~uint64_t{0}
            ? std::max<uint64_t>({256, word_slots_ * 2, next_word_ + AnnotationPayload::kMaxWords})
            : words_mask_ + 1;
    Regrow(words_, word_slots_, size);
    word_slots_ = size;
  }
  return words_.get();
}

void Trace::AddText(uint64_t index, absl::string_view text) {
  texts_.emplace_back(index, std::string(text));
  // Texts of events the ring no longer holds go.
  const uint64_t oldest = FirstRetainedIndex();
  while (texts_.front().first < oldest) texts_.pop_front();
}

absl::string_view Trace::TextOf(uint64_t index) const {
  auto it = std::lower_bound(texts_.begin(), texts_.end(), index,
                             [](const auto& entry, uint64_t i) { return entry.first < i; });
  DSIM_CHECK(it != texts_.end() && it->first == index, "trace text lost");
  return it->second;
}

namespace {

inline uint64_t Load8(const char* p) {
  uint64_t x;
  std::memcpy(&x, p, 8);
  return x;
}

// Equal bytes, 8 at a time, the last 8 overlapping the ones before: categories are short.
inline bool SameBytes(const char* a, const char* b, size_t n) {
  if (n < 8) return std::memcmp(a, b, n) == 0;
  for (size_t i = 0; i + 8 < n; i += 8) {
    if (Load8(a + i) != Load8(b + i)) return false;
  }
  return Load8(a + n - 8) == Load8(b + n - 8);
}

}  // namespace

// A category's id and content hash. The slot its address picks remembers the address,
// the size and, for 8 to 16 bytes (most categories), the first and last 8 bytes, so a
// hit is verified against the content without reaching for the interned text.
inline uint32_t Trace::InternCategory(absl::string_view category, uint64_t* hash) {
  CategorySlot& slot = category_cache_[CacheSlot(category.data())];
  const char* p = category.data();
  const size_t n = category.size();
  if (slot.data == p && slot.size == n &&
      (n >= 8 && n <= 16 ? Load8(p) == slot.head && Load8(p + n - 8) == slot.tail
                         : SameBytes(p, categories_[slot.id].text.data(), n))) {
    *hash = slot.hash;
    return slot.id;
  }
  return InternCategorySlow(category, slot, hash);
}

uint32_t Trace::InternCategorySlow(absl::string_view category, CategorySlot& slot,
                                   uint64_t* hash) {
  auto [it, inserted] =
      category_ids_.try_emplace(std::string(category), static_cast<uint32_t>(categories_.size()));
  if (inserted) {
    internal::WordHash h;
    h.AddString(category);
    categories_.push_back(Category{std::string(category), h.value()});
  }
  const size_t n = category.size();
  slot = CategorySlot{category.data(), n, it->second};
  if (n >= 8 && n <= 16) {
    slot.head = Load8(category.data());
    slot.tail = Load8(category.data() + n - 8);
  }
  slot.hash = categories_[it->second].hash;
  *hash = slot.hash;
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
  // A task or timer pick is neither an event nor folded: the run or timer event after
  // it names the pick (a pick of the running task is a continuation, folded as a
  // step), and what it chose among follows from the events before (which tasks are
  // runnable, which timers due). The Perfetto export never showed picks either.
  if (decision.kind == DecisionKind::kNextTask || decision.kind == DecisionKind::kTimerOrder ||
      !options_.record_decisions) {
    return;
  }
  const uint8_t code = static_cast<uint8_t>(decision.kind);
  const absl::Span<const uint64_t> candidates = decision.candidates;
  const size_t n = candidates.size();
  const uint64_t number = n == 0 ? chosen : candidates[chosen];
  Record& r = Start(TraceEventKind::kDecision, scheduler_->NowNanos(), kNoGroup,
                    decision.current);
  const char* label = decision.label != nullptr ? decision.label : "";
  r.code = code;
  r.number = number;
  r.other = decision.num_options;
  r.what = label;
  // Head: no group, so the high half holds the candidate count. The candidates (of a
  // wake-one pick) are not event content, but folding them catches runs whose wait
  // queues differ before any choice does.
  internal::WordHash h(fingerprint_);
  h.Add(Head(TraceEventKind::kDecision, code, kNoGroup) |
            uint64_t{decision.from_yield} << 16 | uint64_t{n} << 32,
        decision.current);
  h.Add(number, decision.num_options);
  size_t i = 0;
  for (; i + 1 < n; i += 2) h.Add(candidates[i], candidates[i + 1]);
  h.Add(i < n ? candidates[i] : 0, label[0] == '\0' ? 0 : StaticHash(label));
  r.hash = fingerprint_ = h.value();
}

void Trace::OnSpawn(const TaskView& task) {
  if (task_names_.size() <= task.id) task_names_.resize(task.id + 1);
  task_names_[task.id] = std::string(task.name);
  Record& r = Start(TraceEventKind::kSpawn, scheduler_->NowNanos(), task.group, task.id);
  r.other = scheduler_->CurrentTaskId();
  r.number = task.daemon ? 1 : 0;
  internal::WordHash name;
  name.AddString(task.name);
  Fold(Head(TraceEventKind::kSpawn, 0, task.group) | r.number << 16, r.task);
  Fold(r.other, name.value());
  r.hash = fingerprint_;
}

void Trace::OnDispatch(const TaskView& task) {
  if (task.id == running_) {
    // The running task goes on after a scheduling point (no other task ran, it did not
    // block): its run continues, so no event; the step is folded (with the time, which
    // may have moved) so that runs taking different numbers of steps still differ.
    internal::WordHash h(fingerprint_);
    h.Add(kContinue, static_cast<uint64_t>(scheduler_->NowNanos()));
    fingerprint_ = h.value();
    return;
  }
  running_ = task.id;
  Record& r = Start(TraceEventKind::kDispatch, scheduler_->NowNanos(), task.group, task.id);
  Fold(Head(TraceEventKind::kDispatch, 0, task.group), task.id);
  r.hash = fingerprint_;
}

void Trace::OnBlock(const TaskView& task, const char* what, SourceLocation where) {
  if (task.id == running_) running_ = kNoTask;
  Record& r = Start(TraceEventKind::kBlock, scheduler_->NowNanos(), task.group, task.id);
  r.what = what != nullptr ? what : "";
  r.where = where;
  const uint64_t what_hash = StaticHash(r.what);
  const uint64_t file_hash = FileHash(where.file_name());
  internal::WordHash h(fingerprint_);
  h.Add(Head(TraceEventKind::kBlock, 0, task.group), task.id);
  // The line goes in apart from the file's hash: (file, line) pairs never cancel out.
  h.Add(what_hash ^ static_cast<uint32_t>(where.line()), file_hash);
  r.hash = fingerprint_ = h.value();
}

void Trace::OnWake(const TaskView& task, WakeReason reason) {
  Record& r = Start(TraceEventKind::kWake, scheduler_->NowNanos(), task.group, task.id);
  const uint8_t code = static_cast<uint8_t>(reason);
  r.code = code;
  // The waker: the running task, unless the wake comes from a timer (no task runs
  // then) or from the task itself being killed outside a run.
  const TaskId current = scheduler_->CurrentTaskId();
  r.other = current == task.id ? kNoTask : current;
  internal::WordHash h(fingerprint_);
  h.Add(Head(TraceEventKind::kWake, code, task.group), task.id);
  h.Add(r.other, 0);
  r.hash = fingerprint_ = h.value();
}

void Trace::OnFinish(const TaskView& task) {
  if (task.id == running_) running_ = kNoTask;
  Record& r = Start(TraceEventKind::kFinish, scheduler_->NowNanos(), task.group, task.id);
  Fold(Head(TraceEventKind::kFinish, 0, task.group), task.id);
  r.hash = fingerprint_;
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
  Fold(Head(TraceEventKind::kTimer, 0, kNoGroup), timer);
  r.hash = fingerprint_;
}

void Trace::OnClockAdvanced(absl::Time from, absl::Time to) {
  const int64_t to_ns = NanosSinceEpoch(*scheduler_, to);
  const int64_t from_ns = absl::ToInt64Nanoseconds(from - Scheduler::Epoch());
  last_time_ns_ = to_ns;  // The event folds it.
  Record& r = Start(TraceEventKind::kClock, to_ns, kNoGroup, kNoTask);
  r.number = static_cast<uint64_t>(from_ns);
  Fold(Head(TraceEventKind::kClock, 0, kNoGroup), static_cast<uint64_t>(to_ns));
  Fold(r.number, 0);
  r.hash = fingerprint_;
}

void Trace::OnAnnotation(const Annotation& annotation) {
  const uint64_t index = next_index_;
  Record& r = Start(TraceEventKind::kAnnotation, scheduler_->NowNanos(), annotation.group,
                    scheduler_->CurrentTaskId());
  uint64_t category_hash;
  const uint32_t category = InternCategory(annotation.category, &category_hash);
  r.category = category;
  r.number = annotation.flow_id;
  r.flow_phase = static_cast<int8_t>(annotation.flow_phase);
  r.format = annotation.format;
  const uint64_t head = Head(TraceEventKind::kAnnotation, 0, annotation.group) |
                        uint64_t{static_cast<uint8_t>(r.flow_phase)} << 16;
  if (annotation.format != nullptr) {
    const AnnotationPayload& in = annotation.payload;
    const uint8_t count = std::min<uint8_t>(in.word_count, AnnotationPayload::kMaxWords);
    r.what = in.text;
    r.code = count;
    r.other = next_word_;
    uint64_t* words = ReserveWords();
    const uint64_t mask = words_mask_;
    const uint64_t w = next_word_;
    next_word_ += count;
    // The head (the word count in its code byte), the category and flow, then the
    // words two per fold; the payload text's hash pairs with an odd last word (or 0).
    // A local state: stores to words must not make the compiler reload the fingerprint.
    internal::WordHash h(fingerprint_);
    h.Add(head | uint64_t{count} << 8, r.task);
    h.Add(category_hash, r.number);
    int i = 0;
    for (; i + 1 < count; i += 2) {
      const uint64_t a = in.words[i], b = in.words[i + 1];
      words[(w + i) & mask] = a;
      words[(w + i + 1) & mask] = b;
      h.Add(a, b);
    }
    uint64_t last = 0;
    if (i < count) {
      last = in.words[i];
      words[(w + i) & mask] = last;
    }
    h.Add(last, in.text != nullptr ? StaticHash(in.text) : 0);
    fingerprint_ = h.value();
  } else {
    r.code = 0;
    AddText(index, annotation.detail);
    internal::WordHash detail;
    detail.AddString(annotation.detail);
    Fold(head | kEagerDetail, r.task);
    Fold(category_hash, r.number);
    Fold(detail.value(), 0);
  }
  r.hash = fingerprint_;
}

// ---- Reading the records -----------------------------------------------------------

TraceEvent Trace::Materialize(uint64_t index) const {
  const Record& r = RecordAt(index);
  TraceEvent e;
  e.index = index;
  e.time_ns = r.time_ns;
  e.kind = r.kind;
  e.group = r.group;
  e.task = r.task;
  e.hash = r.hash;
  switch (r.kind) {
    case TraceEventKind::kSpawn:
      e.other_task = r.other;
      e.number = r.number;
      e.detail = std::string(TaskName(r.task));
      break;
    case TraceEventKind::kDispatch:
    case TraceEventKind::kFinish:
      break;
    case TraceEventKind::kBlock:
      e.what = r.what;
      e.where = r.where;
      break;
    case TraceEventKind::kWake:
      e.code = r.code;
      e.other_task = r.other;
      break;
    case TraceEventKind::kTimer:
    case TraceEventKind::kClock:
      e.number = r.number;
      break;
    case TraceEventKind::kDecision:
      e.code = r.code;
      e.number = r.number;
      e.options = r.other;
      e.what = r.what;
      break;
    case TraceEventKind::kAnnotation:
      e.category = categories_[r.category].text;
      e.flow_id = r.number;
      e.flow_phase = r.flow_phase;
      if (r.format != nullptr) {
        AnnotationPayload payload;
        payload.text = r.what;
        payload.word_count = r.code;
        for (int i = 0; i < AnnotationPayload::kMaxWords; ++i) {
          payload.words[i] = i < r.code ? words_[(r.other + i) & words_mask_] : 0;
        }
        r.format(payload, &e.detail);
      } else {
        e.detail = std::string(TextOf(index));
      }
      break;
  }
  return e;
}

std::vector<TraceEvent> Trace::LastEvents(size_t count) const {
  std::vector<TraceEvent> out;
  const uint64_t first = std::max(FirstRetainedIndex(), next_index_ - std::min<uint64_t>(count, next_index_));
  out.reserve(next_index_ - first);
  for (uint64_t i = first; i < next_index_; ++i) out.push_back(Materialize(i));
  return out;
}

const std::deque<TraceEvent>& Trace::events() const {
  if (materialized_at_ != next_index_) {  // Any new event changes next_index_.
    materialized_.clear();
    for (uint64_t i = FirstRetainedIndex(); i < next_index_; ++i) {
      materialized_.push_back(Materialize(i));
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
  for (const TraceEvent& e : LastEvents(count)) absl::StrAppend(&out, Describe(e), "\n");
  return out;
}

void Trace::WriteText(std::ostream& out) const {
  out << absl::StrFormat("# dsim trace: %d events, fingerprint %016x", next_index_,
                         fingerprint_);
  if (!complete()) out << absl::StrCat(", showing the last ", retained_count());
  out << "\n";
  for (uint64_t i = FirstRetainedIndex(); i < next_index_; ++i) {
    out << Describe(Materialize(i)) << "\n";
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
