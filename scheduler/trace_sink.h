// TraceSink: where the scheduler and the layers above write trace records, raw.
//
// A trace (sim/trace.h) is a TraceSink. Attached to a scheduler (Scheduler::
// AttachTraceSink), it receives every scheduler event (spawn, run, block, wake, finish,
// timer, clock, value draw) as a few 64-bit words written straight into its current
// block: no TaskView, no Annotation, no virtual call, no hashing, no text. Hot producers
// above the scheduler (socket calls, packets) write their annotations the same way when
// the sink is the only one to hear them:
//
//   static constexpr dsim::AnnotationKind kSocketCall("socket.call", FormatCall);
//   if (dsim::TraceSink* sink = scheduler.SoleTraceSink(kSocketCall)) {
//     uint64_t* words = sink->BeginAnnotation(kSocketCall, group, dsim::CurrentTaskIdOf(scheduler),
//                                             scheduler.NowNanos(), /*flow_id=*/0, 0, "Send");
//     words[0] = fd;
//     words[1] = result;
//     sink->EndAnnotation(words, 2);
//   } else if (scheduler.has_listeners()) {
//     scheduler.Annotate(annotation);   // the general path: listeners, and the sink
//   }
//
// Both paths write the same record, so the trace (and its fingerprint) is the same
// whoever else listens. The sink owner hashes whole blocks of words when they fill
// (and when the fingerprint is read), and formats text only when someone reads it.
//
// The record stream. Each record starts with a header word:
//   bits 0-7 TraceRecord kind, 8-15 aux (per kind), 16-31 the number of steps on which
//   the running task went on without an event since the record before (no event of its
//   own: a kContinues record carries 0xffff of them), 32-63 the group.
// then, by kind:
//   kSpawn        task, spawner, hash(name)          aux: daemon
//   kDispatch     task
//   kBlock        task, hash(site): of hash(what), hash(file) and line (TraceSiteHash)
//   kWake         task, waker                        aux: WakeReason
//   kFinish       task
//   kTimer        timer id
//   kClock        to ns (virtual ns since Scheduler::Epoch())
//   kDecision     task, choice, options, hash(label), hash(candidates)
//                 aux: DecisionKind | from_yield << 4
//   kAnnotation   task, hash(category), [flow id], [hash(text)], payload words
//                 aux: word count | flow phase << 4 | has flow << 6 | has text << 7
//   kNote         task, hash(category), [flow id], hash(detail text)
//                 aux: flow phase << 4 | has flow << 6
//   kFlowEnd      task, hash(category), flow id       aux: flow phase << 4
//                 (an annotation whose payload repeats its flow start's: a delivery)
//   kContinues    (header only; not an event)
// No record holds its time: the clock moves only by kClock records (Scheduler::
// AdvanceClockTo writes one for every move), so an event's time is the last kClock's
// (or the clock when the sink was attached), and the writers' `now_ns` arguments only
// check that (debug builds). Nor is there an index of where each event starts: readers
// walk a block's records from its start (record lengths follow from the headers).
// Strings enter as TraceTextHash of their content (never an address), so the words are
// the same in every process; the sink owner keeps the texts for reading.
//
// Threading: a sink belongs to its scheduler's thread.
#ifndef DSIM_SCHEDULER_TRACE_SINK_H_
#define DSIM_SCHEDULER_TRACE_SINK_H_

#include <cstddef>
#include <cstdint>

#include "absl/base/optimization.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "scheduler/internal/check.h"
#include "scheduler/internal/task.h"
#include "scheduler/scheduler.h"
#include "scheduler/source_location.h"
#include "scheduler/strategy.h"

namespace dsim {

enum class TraceRecord : uint8_t {
  kSpawn = 1,
  kDispatch = 2,
  kBlock = 3,
  kWake = 4,
  kFinish = 5,
  kTimer = 6,
  kClock = 7,
  kDecision = 8,
  kAnnotation = 9,
  kNote = 10,
  kContinues = 11,
  kFlowEnd = 12,
};

namespace internal {

inline constexpr uint64_t kTextHashK1 = 0xa0761d6478bd642fULL;
inline constexpr uint64_t kTextHashK2 = 0xe7037ed1a0b428dbULL;

constexpr uint64_t TraceMum(uint64_t a, uint64_t b) {
  const unsigned __int128 product = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

}  // namespace internal

// A fixed, unsalted 64-bit hash of a string's bytes (little-endian words, one multiply
// per 16 bytes), the same in every process; constexpr, so static categories hash at
// compile time.
constexpr uint64_t TraceTextHash(const char* data, size_t size) {
  uint64_t state = 0x243f6a8885a308d3ULL ^ size;
  size_t i = 0;
  while (i < size) {
    uint64_t a = 0, b = 0;
    for (int k = 0; k < 8 && i < size; ++k, ++i) {
      a |= static_cast<uint64_t>(static_cast<uint8_t>(data[i])) << (8 * k);
    }
    for (int k = 0; k < 8 && i < size; ++k, ++i) {
      b |= static_cast<uint64_t>(static_cast<uint8_t>(data[i])) << (8 * k);
    }
    state = internal::TraceMum(state ^ a ^ internal::kTextHashK1, b ^ internal::kTextHashK2);
  }
  return internal::TraceMum(state ^ 0x8ebc6af09c88c6e3ULL, size ^ 0x589965cc75374cc3ULL);
}
inline uint64_t TraceTextHash(absl::string_view text) {
  return TraceTextHash(text.data(), text.size());
}

// A blocking site as one hash: of its call's name, its file (or description) and line.
constexpr uint64_t TraceSiteHash(uint64_t what_hash, uint64_t file_hash, int line) {
  return internal::TraceMum(internal::TraceMum(what_hash ^ internal::kTextHashK1,
                                               file_hash ^ internal::kTextHashK2) ^
                                static_cast<uint32_t>(line),
                            0x589965cc75374cc3ULL);
}

// A category that hot producers annotate raw. Static storage only (constexpr): the
// sink remembers it by address to read its records back.
struct AnnotationKind {
  template <size_t N>
  constexpr AnnotationKind(const char (&name)[N], AnnotationFormatter formatter)
      : category(name), size(N - 1), format(formatter), hash(TraceTextHash(name, N - 1)) {}

  const char* category;
  size_t size;
  AnnotationFormatter format;
  uint64_t hash;  // TraceTextHash(category).
};

// The running task's id, inline (Scheduler::CurrentTaskId is out of line).
inline TaskId CurrentTaskIdOf(const Scheduler& scheduler) {
  const internal::Task* task = scheduler.current_task();
  return task != nullptr ? task->id : kNoTask;
}

class TraceSink {
 public:
  static constexpr int kBlockWords = 256;
  static constexpr int kMaxRecordWords = 16;
  static constexpr uint32_t kMaxContinues = 0xffff;

  TraceSink() = default;
  TraceSink(const TraceSink&) = delete;
  TraceSink& operator=(const TraceSink&) = delete;

  // ---- Scheduler events --------------------------------------------------------------

  // `task` gets the CPU. The running task going on after a scheduling point (it ran
  // last and did not block or finish) is no event: a step, counted.
  void Dispatch(TaskId task, GroupId group, int64_t now_ns) {
    CheckNow(now_ns);
    if (task == running_) {
      continues_ += kOneContinue;
      if (ABSL_PREDICT_FALSE(continues_ == kMaxContinues * kOneContinue)) FlushContinues();
      return;
    }
    running_ = task;
    uint64_t* p = Begin(2);
    p[0] = Header(TraceRecord::kDispatch, 0, group);
    p[1] = task;
  }
  void Block(TaskId task, GroupId group, int64_t now_ns, const char* what,
             SourceLocation where) {
    CheckNow(now_ns);
    if (task == running_) running_ = kNoTask;
    uint64_t* p = Begin(3);
    p[0] = Header(TraceRecord::kBlock, 0, group);
    p[1] = task;
    p[2] = SiteHash(what, where);
  }
  void Wake(TaskId task, GroupId group, int64_t now_ns, WakeReason reason, TaskId current) {
    CheckNow(now_ns);
    uint64_t* p = Begin(3);
    p[0] = Header(TraceRecord::kWake, static_cast<uint8_t>(reason), group);
    p[1] = task;
    // The waker: the running task, unless the wake comes from a timer (no task runs
    // then) or from the task itself being killed outside a run.
    p[2] = current == task ? kNoTask : current;
  }
  void Finish(TaskId task, GroupId group, int64_t now_ns) {
    CheckNow(now_ns);
    if (task == running_) running_ = kNoTask;
    uint64_t* p = Begin(2);
    p[0] = Header(TraceRecord::kFinish, 0, group);
    p[1] = task;
  }
  void Timer(TimerId timer, int64_t now_ns) {
    CheckNow(now_ns);
    uint64_t* p = Begin(2);
    p[0] = Header(TraceRecord::kTimer, 0, kNoGroup);
    p[1] = timer;
  }
  void Clock(int64_t from_ns, int64_t to_ns) {
    CheckNow(from_ns);
    uint64_t* p = Begin(2);  // A new block begins at the clock before this record.
    p[0] = Header(TraceRecord::kClock, 0, kNoGroup);
    p[1] = static_cast<uint64_t>(to_ns);
    clock_ns_ = to_ns;
  }
  // A strategy decision. Task and timer picks are no records (the run or timer event
  // after each names the pick), nor is anything when decisions are not recorded.
  void Decide(DecisionKind kind, TaskId current, int64_t now_ns, uint64_t num_options,
              absl::Span<const uint64_t> candidates, const char* label, bool from_yield,
              uint64_t chosen) {
    if (kind == DecisionKind::kNextTask || kind == DecisionKind::kTimerOrder ||
        !record_decisions_) {
      return;
    }
    DecideSlow(kind, current, now_ns, num_options, candidates, label, from_yield, chosen);
  }
  // A spawn: rare, and the owner keeps the name.
  virtual void Spawn(const TaskView& task, TaskId spawner, int64_t now_ns) = 0;
  // Any annotation, as Scheduler::Annotate has it (the general path).
  virtual void Annotate(const Annotation& annotation, TaskId task, int64_t now_ns) = 0;

  // ---- Raw annotations ---------------------------------------------------------------

  // Starts a kAnnotation record of `kind` (see the file comment): returns where its
  // payload words go (room for AnnotationPayload::kMaxWords); EndAnnotation says how
  // many were written. `text` is AnnotationPayload::text (static, or null).
  uint64_t* BeginAnnotation(const AnnotationKind& kind, GroupId group, TaskId task,
                            int64_t now_ns, uint64_t flow_id, int flow_phase,
                            const char* text) {
    if (ABSL_PREDICT_FALSE(known_kinds_[kind.hash & (kKindSlots - 1)] != &kind)) LearnKind(kind);
    CheckNow(now_ns);
    return BeginAnnotationOf(kind.hash, group, task, flow_id, flow_phase, text);
  }
  // BeginAnnotation when nothing slow is needed (room in the block, `kind` and `text`
  // seen before), or null: then call BeginAnnotation. A producer's fast path that uses
  // it makes no call, so it needs no stack frame.
  uint64_t* TryBeginAnnotation(const AnnotationKind& kind, GroupId group, TaskId task,
                               int64_t now_ns, uint64_t flow_id, int flow_phase,
                               const char* text) {
    if (ABSL_PREDICT_FALSE(cursor_ + kMaxRecordWords > limit_ ||
                           known_kinds_[kind.hash & (kKindSlots - 1)] != &kind)) {
      return nullptr;
    }
    uint64_t text_hash = 0;
    if (text != nullptr) {
      const StaticSlot& slot = static_cache_[CacheSlot(text)];
      if (ABSL_PREDICT_FALSE(slot.data != text)) return nullptr;
      text_hash = slot.hash;
    }
    CheckNow(now_ns);
    ++events_;
    return WriteAnnotationHead(cursor_, kind.hash, group, task, flow_id, flow_phase,
                               text != nullptr, text_hash);
  }
  // A whole annotation of `kind` with no flow, the static `text` and two payload words:
  // the record BeginAnnotation, two words and EndAnnotation would write, in one go (no
  // call, so a producer's fast path needs no stack frame). False when something slow is
  // needed (then use those).
  bool TryAnnotateTwoWords(const AnnotationKind& kind, GroupId group, TaskId task,
                           int64_t now_ns, const char* text, uint64_t word0, uint64_t word1) {
    const StaticSlot& slot = static_cache_[CacheSlot(text)];
    if (ABSL_PREDICT_FALSE(cursor_ + kMaxRecordWords > limit_ ||
                           known_kinds_[kind.hash & (kKindSlots - 1)] != &kind ||
                           slot.data != text)) {
      return false;
    }
    CheckNow(now_ns);
    ++events_;
    uint64_t* p = cursor_;
    p[0] = Header(TraceRecord::kAnnotation, 2 | 1 << 7, group);  // Two words, a text.
    p[1] = task;
    p[2] = kind.hash;
    p[3] = slot.hash;
    p[4] = word0;
    p[5] = word1;
    cursor_ = p + 6;
    return true;
  }
  // An annotation of `kind` whose payload is its flow start's (Annotation::
  // repeats_flow_start): the record names the flow, not the words. TryAnnotateRepeat
  // returns false when something slow is needed (then call AnnotateRepeat).
  bool TryAnnotateRepeat(const AnnotationKind& kind, GroupId group, TaskId task,
                         int64_t now_ns, uint64_t flow_id, int flow_phase) {
    if (ABSL_PREDICT_FALSE(cursor_ + 4 > limit_ ||
                           known_kinds_[kind.hash & (kKindSlots - 1)] != &kind)) {
      return false;
    }
    CheckNow(now_ns);
    ++events_;
    WriteFlowEnd(cursor_, kind.hash, group, task, flow_id, flow_phase);
    return true;
  }
  void AnnotateRepeat(const AnnotationKind& kind, GroupId group, TaskId task, int64_t now_ns,
                      uint64_t flow_id, int flow_phase) {
    if (ABSL_PREDICT_FALSE(known_kinds_[kind.hash & (kKindSlots - 1)] != &kind)) LearnKind(kind);
    CheckNow(now_ns);
    WriteFlowEnd(Reserve(4), kind.hash, group, task, flow_id, flow_phase);
  }
  void EndAnnotation(uint64_t* words, int word_count) {
    *open_ |= static_cast<uint64_t>(word_count) << 8;
    cursor_ = words + word_count;
  }

  // ---- Reading -----------------------------------------------------------------------

  // Events recorded so far.
  uint64_t recorded_events() const { return events_; }
  void set_record_decisions(bool on) { record_decisions_ = on; }

 protected:
  virtual ~TraceSink() = default;

  // Moves the cursor to a fresh block (hashing the finished one). Afterwards
  // cursor_ + kMaxRecordWords <= limit_.
  virtual void NextBlock() = 0;
  // Slow paths of the caches below: compute the hash, remember the text for reading.
  virtual uint64_t StaticHashSlow(const char* text) = 0;
  virtual uint64_t FileHashSlow(const char* file, bool described) = 0;
  virtual uint64_t SiteHashSlow(const char* what, SourceLocation where, int line_key) = 0;
  virtual void LearnKind(const AnnotationKind& kind) = 0;

  // A record of `n` words, counted as the next event.
  uint64_t* Begin(int n) {
    uint64_t* p = Reserve(n);
    cursor_ = p + n;
    return p;
  }
  // Room for a record of up to `n` words at the cursor, counted as the next event; the
  // caller moves the cursor past what it wrote.
  uint64_t* Reserve(int n) {
    if (ABSL_PREDICT_FALSE(cursor_ + n > limit_)) NextBlock();
    ++events_;
    return cursor_;
  }
  // Records carry no time: it must be the clock's (see the file comment).
  void CheckNow(int64_t now_ns) const {
    DSIM_DCHECK(now_ns == clock_ns_, "a trace record at ", now_ns, " ns, the clock at ",
                clock_ns_);
  }
  uint64_t Header(TraceRecord kind, uint8_t aux, GroupId group) {
    const uint64_t header = static_cast<uint64_t>(kind) | uint64_t{aux} << 8 |
                            continues_ | uint64_t{group} << 32;
    continues_ = 0;
    return header;
  }
  uint64_t* BeginAnnotationOf(uint64_t category_hash, GroupId group, TaskId task,
                              uint64_t flow_id, int flow_phase, const char* text) {
    uint64_t* p = Reserve(kMaxRecordWords);
    const uint64_t text_hash = text != nullptr ? StaticHash(text) : 0;
    return WriteAnnotationHead(p, category_hash, group, task, flow_id, flow_phase,
                               text != nullptr, text_hash);
  }
  uint64_t* WriteAnnotationHead(uint64_t* p, uint64_t category_hash, GroupId group, TaskId task,
                                uint64_t flow_id, int flow_phase, bool has_text,
                                uint64_t text_hash) {
    const bool has_flow = flow_id != 0;
    p[0] = Header(TraceRecord::kAnnotation,
                  static_cast<uint8_t>((flow_phase & 3) << 4 | int{has_flow} << 6 |
                                       int{has_text} << 7),
                  group);
    p[1] = task;
    p[2] = category_hash;
    uint64_t* q = p + 3;
    if (has_flow) *q++ = flow_id;
    if (has_text) *q++ = text_hash;
    open_ = p;
    return q;
  }
  void WriteFlowEnd(uint64_t* p, uint64_t category_hash, GroupId group, TaskId task,
                    uint64_t flow_id, int flow_phase) {
    p[0] = Header(TraceRecord::kFlowEnd, static_cast<uint8_t>((flow_phase & 3) << 4), group);
    p[1] = task;
    p[2] = category_hash;
    p[3] = flow_id;
    cursor_ = p + 4;
  }
  void DecideSlow(DecisionKind kind, TaskId current, int64_t now_ns, uint64_t num_options,
                  absl::Span<const uint64_t> candidates, const char* label, bool from_yield,
                  uint64_t chosen);
  void FlushContinues();

  // The content hash of a static string, by address (the address only picks a slot).
  uint64_t StaticHash(const char* text) {
    const StaticSlot& slot = static_cache_[CacheSlot(text)];
    return slot.data == text ? slot.hash : StaticHashSlow(text);
  }
  // A source file's hash: of its base name (a described location: of its text).
  uint64_t FileHash(const char* file, bool described) {
    const StaticSlot& slot = (described ? described_cache_ : file_cache_)[CacheSlot(file)];
    return slot.data == file ? slot.hash : FileHashSlow(file, described);
  }
  // A blocking site's hash (TraceSiteHash of what, file, line), by the addresses and
  // the line (they only pick and verify a slot).
  uint64_t SiteHash(const char* what, SourceLocation where) {
    const int line = where.line();
    const int line_key = line != 0 ? line : where.known() ? -1 : 0;  // -1: described.
    const char* file = where.file_name();
    const SiteSlot& slot = site_cache_[(CacheSlot(file) + static_cast<unsigned>(line_key)) &
                                       (kCacheSlots - 1)];
    return slot.what == what && slot.file == file && slot.line == line_key
               ? slot.hash
               : SiteHashSlow(what, where, line_key);
  }
  static constexpr size_t kCacheSlots = 256;
  static constexpr size_t kKindSlots = 16;
  static size_t CacheSlot(const void* address) {
    return (reinterpret_cast<uintptr_t>(address) * 0x9e3779b97f4a7c15ULL) >> 56;
  }
  struct StaticSlot {
    const char* data = nullptr;
    uint64_t hash = 0;
  };
  struct SiteSlot {
    const char* what = nullptr;
    const char* file = nullptr;
    int line = 0;
    uint64_t hash = 0;
  };

  // The write position in the current block, and its end.
  uint64_t* cursor_ = nullptr;
  uint64_t* limit_ = nullptr;
  uint64_t events_ = 0;
  int64_t clock_ns_ = 0;  // The clock, as the kClock records have moved it.
  uint64_t* open_ = nullptr;  // The header of the annotation BeginAnnotation opened.
  // The task of the last dispatch record, until it blocks or finishes.
  TaskId running_ = kNoTask;
  // Steps without an event since the last record, times kOneContinue (where the header
  // holds them).
  uint64_t continues_ = 0;
  static constexpr uint64_t kOneContinue = uint64_t{1} << 16;
  bool record_decisions_ = true;
  StaticSlot static_cache_[kCacheSlots];
  StaticSlot file_cache_[kCacheSlots];
  StaticSlot described_cache_[kCacheSlots];
  SiteSlot site_cache_[kCacheSlots];
  const AnnotationKind* known_kinds_[kKindSlots] = {};
};

inline TraceSink* Scheduler::SoleTraceSink(const AnnotationKind& kind) const {
  if (has_listeners_ || AnnotationListenersMayHear(kind.category[0])) return nullptr;
  return trace_sink_;
}

}  // namespace dsim

#endif  // DSIM_SCHEDULER_TRACE_SINK_H_
