// Trace: a structured, fingerprinted log of everything a simulation does.
//
// A Trace listens to a Scheduler and records one TraceEvent per thing that happens:
// task spawn, dispatch (a task switch), block, wake and finish; timer firings; clock
// advances; strategy decisions (value draws and wake-one picks: the run or timer event
// after a task or timer pick shows it); and every Annotation the layers above emit
// (socket calls, segment send/deliver/drop, faults). Each event carries its virtual
// time, its task and its host (group).
//
// Example:
//
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 7});
//   dsim::Trace trace(&scheduler, dsim::TraceOptions{.keep_all_events = true});
//   scheduler.Spawn("worker", [] { dsim::SleepFor(absl::Milliseconds(5)); });
//   scheduler.Run();
//   std::cout << trace.ToText();                   // one readable line per event
//   trace.WriteFile("/tmp/run.json");              // open in https://ui.perfetto.dev
//   uint64_t fp = trace.fingerprint();             // same program + seed: same value
//
// Fingerprint. A 64-bit, order-sensitive hash of the whole event stream: every word of
// every event's binary record (scheduler/trace_sink.h lists them: kind, group, task and
// the kind's fields; strings by the hash of their content; an annotation's lazy payload
// words; time by the clock records, which are the only records that move it), in
// order, hashed block by block (sim/internal/stream_hash.h: two AES rounds per pair of
// words, about one instruction per word with AES-NI) when a block fills and when the
// fingerprint is read. Any difference in any field of any event changes it. It also
// counts the steps on which the running task went on without an event. It uses no
// per-process salt, so two processes, two machines or two OS threads that run the same
// simulation get the same value; a different value means the runs differ somewhere.
// FirstDivergence() says where.
//
// Cost. The first trace of a scheduler is its trace sink: the scheduler writes each
// event as a few 64-bit words straight into the trace's current block (no virtual
// call), and socket calls and packets do the same when the trace alone hears them (see
// Scheduler::SoleTraceSink). No text formatting, no heap allocation and no hashing per
// event: about 15-50 instructions to write an event and under 2 per word to hash it
// later. Reading walks the records from a block's start (no index of event positions
// is kept). Text is made only when read: events(), Describe(), the text and Chrome JSON exports.
// Strings an event refers to by pointer (a block's `what`, a decision's label, a source
// file name, AnnotationPayload::text) must be static, as they always had to be. A second
// trace of the same scheduler listens as a SchedulerListener and records the same.
//
// Memory. The fingerprint always covers every event, but only the last
// `TraceOptions::keep_last_events` events stay in memory, unless `keep_all_events` is
// set (exports and divergence reports then cover the whole run). Task names are kept
// for every task spawned while the trace is attached (one string per task).
//
// Threading: a Trace belongs to its scheduler's thread, like the scheduler itself.
#ifndef DSIM_SIM_TRACE_H_
#define DSIM_SIM_TRACE_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "scheduler/scheduler.h"
#include "scheduler/trace_sink.h"
#include "sim/internal/stream_hash.h"

namespace dsim {

enum class TraceEventKind : uint8_t {
  kSpawn = 0,     // `task` was created by `other_task` (kNoTask: from outside tasks).
  kDispatch = 1,  // `task` got the CPU: a task switch (the running task going on after a
                  // scheduling point is no event; the fingerprint counts that step).
  kBlock = 2,     // `task` blocked in `what` at `where`.
  kWake = 3,      // `task` became runnable; `code` is the WakeReason, `other_task` the waker.
  kFinish = 4,    // `task` returned, threw, or was unwound.
  kTimer = 5,     // Timer `number` fired.
  kClock = 6,     // The clock jumped from `number` ns to `time_ns`.
  kDecision = 7,  // The strategy chose `number` of `options`; `code` is the DecisionKind.
  kAnnotation = 8,  // From a layer above: `category`, `detail`, `flow_id`, `flow_phase`.
};

const char* TraceEventKindName(TraceEventKind kind);

struct TraceEvent {
  uint64_t index = 0;    // Position in the full event stream, from 0.
  int64_t time_ns = 0;   // Virtual nanoseconds since Scheduler::Epoch().
  TraceEventKind kind = TraceEventKind::kAnnotation;
  uint8_t code = 0;      // kWake: WakeReason; kDecision: DecisionKind.
  GroupId group = kNoGroup;
  TaskId task = kNoTask;        // The task the event is about, or the running task.
  TaskId other_task = kNoTask;  // kSpawn: the spawner; kWake: the waker.
  uint64_t number = 0;          // kTimer: timer id; kClock: from ns; kDecision: choice
                                // (a candidate's id for task/timer/waiter decisions).
  uint64_t options = 0;         // kDecision: number of options (0 means 2^64).
  const char* what = "";        // kBlock: the blocking call; kDecision: the label.
  SourceLocation where;         // kBlock: the call site.
  std::string category;         // kAnnotation: "net.send", "fault.crash", ...
  std::string detail;           // kAnnotation: free text; kSpawn: the task's name.
  uint64_t flow_id = 0;         // kAnnotation: links a send (phase 1) to its delivery (2).
  int flow_phase = 0;
  uint64_t hash = 0;            // The fingerprint of the stream up to this event: equal
                                // in two traces iff their streams agree so far.
};

struct TraceOptions {
  // How many of the most recent events stay in memory (for failure summaries and
  // exports). Ignored when keep_all_events is set.
  size_t keep_last_events = 1000;
  // Keep every event: needed for complete exports and exact divergence reports.
  bool keep_all_events = false;
  // Record strategy decisions: value draws ("net.latency", "fault.drop") and wake-one
  // picks. Task and timer picks are never events (the run or timer event after each
  // names the pick) and never folded. Off: no decision is recorded or fingerprinted.
  bool record_decisions = true;
};

// Options of the Chrome Trace Event JSON export.
struct ChromeJsonOptions {
  // Tasks take no virtual time to run, so many events share one virtual instant. The
  // export spreads them on a display clock that advances at least this much per event
  // (display time = max(virtual time, previous display time + step)), so each run of a
  // task is a visible slice. Every event also carries its exact virtual time ("vt").
  int64_t display_step_ns = 1000;
};

class Trace final : public SchedulerListener, public TraceSink {
 public:
  // Starts recording `scheduler`'s events; stops when destroyed. `scheduler` must
  // outlive the trace, or the trace must be detached first. The first trace of a
  // scheduler is its trace sink (the fast path); a second one listens as a listener
  // and records the same.
  explicit Trace(Scheduler* scheduler, TraceOptions options = {});
  ~Trace() override;
  Trace(const Trace&) = delete;
  Trace& operator=(const Trace&) = delete;

  // Stops recording. The recorded events stay readable.
  void Detach();

  // ---- Results -------------------------------------------------------------------

  // Hash of every event recorded so far, in order. 0-event traces have a fixed value.
  uint64_t fingerprint() const;
  // Events recorded so far (retained or not).
  uint64_t event_count() const { return events_; }
  // The retained events, oldest first: every event, or the last keep_last_events.
  // Built from the binary records on first call after new events (formats every
  // retained annotation's detail); cheap to call again while nothing is recorded.
  const std::deque<TraceEvent>& events() const;
  // The last `count` retained events, oldest first: formats only those.
  std::vector<TraceEvent> LastEvents(size_t count) const;
  // Number of retained events.
  size_t retained_count() const { return static_cast<size_t>(events_ - FirstRetainedIndex()); }
  // True if events() holds every event since the trace started.
  bool complete() const { return retained_count() == events_; }

  // Names the group in exports ("kv-1", "kv-1 (restart 2)"). Unnamed groups show as
  // "host <id>"; group 0 shows as "sim".
  void NameGroup(GroupId group, std::string name);
  std::string GroupName(GroupId group) const;
  // The name a task was spawned with, or "" if the trace never saw it spawn.
  absl::string_view TaskName(TaskId task) const;

  // ---- Output ----------------------------------------------------------------------

  // `#12 +0.010000000s host 1 task 3 "w-1" block SleepUntil at kv.cc:88`.
  std::string Describe(const TraceEvent& event) const;
  // The last `count` retained events, one Describe() line each, oldest first.
  std::string LastEventsText(size_t count) const;
  // Every retained event, one line each, after a header line with the fingerprint.
  std::string ToText() const;
  void WriteText(std::ostream& out) const;
  // Chrome Trace Event JSON (opens in ui.perfetto.dev and chrome://tracing): one
  // process per host, one thread per task, slices for task runs and annotations,
  // instants for blocks, wakes and timers, flow arrows from each send to its delivery.
  void WriteChromeJson(std::ostream& out, const ChromeJsonOptions& options = {}) const;
  std::string ToChromeJson(const ChromeJsonOptions& options = {}) const;
  // Writes Chrome JSON if `path` ends in ".json", text otherwise.
  absl::Status WriteFile(const std::string& path) const;

  // ---- SchedulerListener (when another trace is the scheduler's sink) ---------------
  void OnDecision(const Decision& decision, uint64_t chosen) override;
  void OnSpawn(const TaskView& task) override;
  void OnDispatch(const TaskView& task) override;
  void OnBlock(const TaskView& task, const char* what, SourceLocation where) override;
  void OnWake(const TaskView& task, WakeReason reason) override;
  void OnFinish(const TaskView& task) override;
  void OnTimerFired(TimerId timer, absl::Time when) override;
  void OnClockAdvanced(absl::Time from, absl::Time to) override;
  void OnAnnotation(const Annotation& annotation) override;

 private:
  // ---- TraceSink ---------------------------------------------------------------------
  void NextBlock() override;
  uint64_t StaticHashSlow(const char* text) override;
  uint64_t FileHashSlow(const char* file, bool described) override;
  uint64_t SiteHashSlow(const char* what, SourceLocation where, int line_key) override;
  void LearnKind(const AnnotationKind& kind) override;
  void Spawn(const TaskView& task, TaskId spawner, int64_t now_ns) override;
  void Annotate(const Annotation& annotation, TaskId task, int64_t now_ns) override;

  // A block of kBlockWords words: the hash state before it, the first event recorded
  // in it, the clock when it began, and (in a ring) which block of the stream it holds now.
  struct BlockInfo {
    uint64_t seq = UINT64_MAX;
    internal::HashLanes lanes_before;
    uint64_t first_event = 0;
    int64_t clock_before = 0;
    uint64_t* words = nullptr;
  };
  // A place in the record stream: the record of event `event` starts at `offset` of
  // block `seq`, and the clock before it reads `clock_ns`. Reading walks forward from
  // one (records hold no index and no time).
  struct ReadCursor {
    uint64_t seq = UINT64_MAX;
    uint64_t offset = 0;
    uint64_t event = 0;
    int64_t clock_ns = 0;
  };
  struct CategoryInfo {
    std::string text;
    AnnotationFormatter format = nullptr;  // The formatter its lazy annotations use.
  };
  // Where the last lookups of each category landed, by address bits. Addresses only
  // pick a slot: hits are verified against the content, and every hash is computed
  // from content, so no value depends on an address.
  struct CategorySlot {
    const char* data = nullptr;
    size_t size = 0;
    uint64_t head = 0, tail = 0;  // First and last 8 bytes when 8 <= size <= 16.
    uint64_t hash = 0;
    const CategoryInfo* info = nullptr;
  };

  uint64_t CategoryHash(absl::string_view category, AnnotationFormatter format,
                        uint64_t index);
  uint64_t CategoryHashSlow(absl::string_view category, CategorySlot& slot);
  void AddText(uint64_t index, absl::string_view text);
  absl::string_view TextOf(uint64_t index) const;
  AnnotationFormatter FormatOf(uint64_t index, uint64_t category_hash) const;
  const char* StaticText(uint64_t hash) const;
  const char* FileText(uint64_t hash) const;
  std::pair<const char*, SourceLocation> Site(uint64_t hash) const;
  uint64_t FirstRetainedIndex() const;
  // The block holding event `index` (retained).
  const BlockInfo& BlockOfEvent(uint64_t index) const;
  // The words of event `index` (retained) and the block holding them; `*clock_before`
  // (if not null) gets the clock before the record. Walks from `*cursor` when it is in
  // the same block at or before `index`, else from the block's start; leaves `*cursor`
  // at the record.
  const uint64_t* RecordOf(uint64_t index, const BlockInfo** block, ReadCursor* cursor,
                           int64_t* clock_before = nullptr) const;
  // The payload of a lazy annotation's record (a kAnnotation record).
  AnnotationPayload PayloadOf(const uint64_t* record) const;
  // The retained phase-1 annotation of `flow` before `index`, or UINT64_MAX.
  uint64_t FindFlowStart(uint64_t flow, uint64_t index) const;
  // The fingerprint of the stream up to and including event `index`.
  uint64_t HashThrough(uint64_t index) const;
  TraceEvent Materialize(uint64_t index) const;

  Scheduler* scheduler_;
  bool is_sink_ = false;  // The scheduler's trace sink (else an ordinary listener).
  TraceOptions options_;
  size_t keep_;         // Events retained: keep_last_events, or SIZE_MAX (all).
  // The words: a ring of ring_blocks_ blocks, or (0: every event kept) blocks
  // allocated one by one, never moved.
  uint64_t ring_blocks_ = 0;
  // 16-byte aligned: the hash reads the words as 16-byte pairs.
  struct alignas(64) WordBlock {
    uint64_t words[kBlockWords];
  };
  std::unique_ptr<WordBlock[]> ring_;
  std::vector<std::unique_ptr<WordBlock>> chunks_;
  std::vector<BlockInfo> blocks_;  // By seq % ring_blocks_, or by seq.
  uint64_t block_seq_ = 0;          // The block being written.
  uint64_t* block_begin_ = nullptr;
  internal::HashLanes lanes_;       // Hash of every finished block.
  // Reading: texts by content hash (never iterated).
  absl::flat_hash_map<uint64_t, const char*> static_texts_;
  absl::flat_hash_map<uint64_t, const char*> file_texts_;
  absl::flat_hash_map<uint64_t, std::pair<const char*, SourceLocation>> sites_;
  std::unordered_map<uint64_t, CategoryInfo> categories_;  // Stable addresses.
  std::deque<std::pair<uint64_t, std::string>> texts_;  // (event index, text), in order.
  // (event index, formatter) of lazy annotations whose formatter is not their
  // category's, in order.
  std::deque<std::pair<uint64_t, AnnotationFormatter>> formats_;
  CategorySlot category_cache_[kCacheSlots];
  // HashThrough's last position, so reading events in order hashes each word once.
  mutable uint64_t prefix_seq_ = UINT64_MAX;
  mutable uint64_t prefix_offset_ = 0;
  mutable internal::HashLanes prefix_lanes_;
  // Where the last reads landed: events in order, and FindFlowStart's walk.
  mutable ReadCursor read_cursor_;
  mutable ReadCursor flow_cursor_;
  // FindFlowStart's index: flow id -> event, of the events before flows_indexed_to_.
  mutable absl::flat_hash_map<uint64_t, uint64_t> flow_starts_;
  mutable uint64_t flows_indexed_to_ = 0;
  // events(): the materialized view, valid while materialized_at_ == events_.
  mutable std::deque<TraceEvent> materialized_;
  mutable uint64_t materialized_at_ = UINT64_MAX;
  std::vector<std::string> task_names_;  // By TaskId; ids are dense from 1.
  std::vector<std::string> group_names_;  // By GroupId; "" means the default name.
};

// Where two event streams first differ.
struct TraceDivergence {
  uint64_t index = 0;           // Position of the first differing event.
  int64_t time_ns = 0;          // Its virtual time (in the first stream, if present).
  TaskId task = kNoTask;        // Its task (in the first stream, if present).
  std::string task_name;
  std::string first;            // Describe() of the event in each stream, or
  std::string second;           // "(stream ended)".
  // False when the difference lies before the events either trace retained: `index`
  // is then the first index both retained, and the real divergence is earlier.
  bool located = true;

  std::string ToString() const;
};

// The first event where the two traces differ, or nullopt if their streams are equal
// (same count and fingerprint). Exact when both traces kept every event.
std::optional<TraceDivergence> FirstDivergence(const Trace& first, const Trace& second);

// `+1.250000000s`: a virtual time as seconds since Scheduler::Epoch().
std::string FormatVirtualTime(int64_t time_ns);

}  // namespace dsim

#endif  // DSIM_SIM_TRACE_H_
