#include "sim/trace.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "scheduler/internal/check.h"
#include "scheduler/internal/task.h"
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
// The scheduler and the hot producers write raw records into the current block
// (scheduler/trace_sink.h describes them); this file owns the blocks, hashes each one
// when it is full, and turns records back into TraceEvents when someone reads them.
//
// The fingerprint is a BlockHash (sim/internal/stream_hash.h) of the whole word stream:
// every word of every record, in order, two AES rounds per pair of words, block by
// block (a block's odd last word pairs with a constant). The record boundaries follow
// from the headers, so the word sequence spells the event stream unambiguously: two
// streams that differ in any field of any event hash different sequences. The stream
// has no index (implied by position), no time (only clock records move the clock, and
// they carry it) and no task or timer picks (the run or timer record after each names
// the pick; the options follow from the records before). A step on which the running
// task went on without an event is counted in the next record's header (and, for steps
// after the last record, in the fingerprint's final step). Strings enter by content hash.

namespace {

// A described location's text hashes apart from a file of the same name.
constexpr uint64_t kDescribedSalt = 0x3c6ef372fe94f82bULL;
constexpr size_t kBlockWords = TraceSink::kBlockWords;

// Words of the record whose header is `header`.
size_t RecordLength(uint64_t header) {
  const uint8_t aux = static_cast<uint8_t>(header >> 8);
  switch (static_cast<TraceRecord>(header & 0xff)) {
    case TraceRecord::kSpawn: return 4;
    case TraceRecord::kDispatch: return 2;
    case TraceRecord::kBlock: return 3;
    case TraceRecord::kWake: return 3;
    case TraceRecord::kFinish: return 2;
    case TraceRecord::kTimer: return 2;
    case TraceRecord::kClock: return 2;
    case TraceRecord::kDecision: return 6;
    case TraceRecord::kAnnotation:
      return 3 + ((aux >> 6) & 1) + ((aux >> 7) & 1) + (aux & 15);
    case TraceRecord::kNote: return 4 + ((aux >> 6) & 1);
    case TraceRecord::kContinues: return 1;
    case TraceRecord::kFlowEnd: return 4;
  }
  DSIM_CHECK(false, "unknown trace record ", header & 0xff);
  return 1;
}

// The most events kept in a ring; more than this keeps all.
constexpr size_t kMaxRingEvents = size_t{1} << 26;

}  // namespace

Trace::Trace(Scheduler* scheduler, TraceOptions options)
    : scheduler_(scheduler),
      options_(options),
      keep_(options.keep_all_events ? SIZE_MAX : options.keep_last_events) {
  DSIM_MISUSE(scheduler != nullptr, "Trace needs a scheduler");
  DSIM_MISUSE(options_.keep_all_events || options_.keep_last_events > 0,
              "TraceOptions::keep_last_events must be positive (or set keep_all_events)");
  if (keep_ > kMaxRingEvents) keep_ = SIZE_MAX;
  if (keep_ != SIZE_MAX) {
    // Room for the last keep_ events of the longest kind, the block being written and
    // one more: keep_last_events stays exact.
    ring_blocks_ = (keep_ * kMaxRecordWords + kBlockWords - 1) / kBlockWords + 2;
    ring_.reset(new WordBlock[ring_blocks_]);  // Never zeroed.
    blocks_.resize(ring_blocks_);
  }
  clock_ns_ = scheduler_->NowNanos();
  set_record_decisions(options_.record_decisions);
  block_seq_ = UINT64_MAX;  // NextBlock starts block 0.
  NextBlock();
  is_sink_ = scheduler_->AttachTraceSink(this);
  if (!is_sink_) scheduler_->AddListener(this);
}

Trace::~Trace() { Detach(); }

void Trace::Detach() {
  if (scheduler_ == nullptr) return;
  if (is_sink_) {
    scheduler_->DetachTraceSink(this);
  } else {
    scheduler_->RemoveListener(this);
  }
  scheduler_ = nullptr;
}

void Trace::NextBlock() {
  if (block_begin_ != nullptr) {
    internal::AbsorbBlock(&lanes_, block_begin_, static_cast<size_t>(cursor_ - block_begin_));
  }
  ++block_seq_;
  uint64_t* words;
  BlockInfo* info;
  if (ring_blocks_ != 0) {
    const uint64_t slot = block_seq_ % ring_blocks_;
    words = ring_[slot].words;
    info = &blocks_[slot];
  } else {
    chunks_.emplace_back(new WordBlock);
    words = chunks_.back()->words;
    info = &blocks_.emplace_back();
  }
  *info = BlockInfo{block_seq_, lanes_, events_, clock_ns_, words};
  block_begin_ = cursor_ = words;
  limit_ = words + kBlockWords;
}

uint64_t Trace::FirstRetainedIndex() const {
  uint64_t first = events_ - std::min<uint64_t>(keep_, events_);
  if (ring_blocks_ != 0 && block_seq_ >= ring_blocks_) {
    // Events of the blocks the ring has reused are gone.
    const uint64_t oldest = block_seq_ + 1 - ring_blocks_;
    first = std::max(first, blocks_[oldest % ring_blocks_].first_event);
  }
  return first;
}

uint64_t Trace::fingerprint() const {
  internal::HashLanes lanes = lanes_;
  internal::AbsorbBlock(&lanes, block_begin_, static_cast<size_t>(cursor_ - block_begin_));
  // The steps after the last record, and the count of events.
  return internal::FinishHash(lanes, continues_ / kOneContinue, events_);
}

const Trace::BlockInfo& Trace::BlockOfEvent(uint64_t index) const {
  DSIM_CHECK(index < events_, "trace event ", index, " was not recorded");
  // The last retained block whose first event is at or before `index` (blocks holding
  // no event share their first event with the next).
  uint64_t low = ring_blocks_ != 0 && block_seq_ >= ring_blocks_ ? block_seq_ + 1 - ring_blocks_
                                                                 : 0;
  uint64_t high = block_seq_;
  auto at = [this](uint64_t seq) -> const BlockInfo& {
    return ring_blocks_ != 0 ? blocks_[seq % ring_blocks_] : blocks_[seq];
  };
  DSIM_CHECK(at(low).first_event <= index, "trace event ", index, " is no longer retained");
  while (low < high) {
    const uint64_t mid = low + (high - low + 1) / 2;
    if (at(mid).first_event <= index) {
      low = mid;
    } else {
      high = mid - 1;
    }
  }
  return at(low);
}

const uint64_t* Trace::RecordOf(uint64_t index, const BlockInfo** block, ReadCursor* cursor,
                                int64_t* clock_before) const {
  const BlockInfo& info = BlockOfEvent(index);
  if (cursor->seq != info.seq || cursor->event > index) {
    *cursor = ReadCursor{info.seq, 0, info.first_event, info.clock_before};
    // Skip what comes before the block's first event (no-event records).
    while (static_cast<TraceRecord>(info.words[cursor->offset] & 0xff) == TraceRecord::kContinues) {
      ++cursor->offset;
    }
  }
  while (cursor->event < index) {
    const uint64_t header = info.words[cursor->offset];
    if (static_cast<TraceRecord>(header & 0xff) == TraceRecord::kClock) {
      cursor->clock_ns = static_cast<int64_t>(info.words[cursor->offset + 1]);
    }
    cursor->offset += RecordLength(header);
    ++cursor->event;
    while (static_cast<TraceRecord>(info.words[cursor->offset] & 0xff) == TraceRecord::kContinues) {
      ++cursor->offset;
    }
  }
  *block = &info;
  if (clock_before != nullptr) *clock_before = cursor->clock_ns;
  return info.words + cursor->offset;
}

uint64_t Trace::HashThrough(uint64_t index) const {
  const BlockInfo* block;
  const uint64_t* record = RecordOf(index, &block, &read_cursor_);
  const uint64_t end = static_cast<uint64_t>(record - block->words) + RecordLength(*record);
  const uint64_t even = end & ~uint64_t{1};
  if (prefix_seq_ != block->seq || prefix_offset_ > even) {
    prefix_seq_ = block->seq;
    prefix_offset_ = 0;
    prefix_lanes_ = block->lanes_before;
  }
  internal::AbsorbPairs(&prefix_lanes_, block->words, prefix_offset_ / 2, even / 2);
  prefix_offset_ = even;
  // The stream so far as a block that ends after this record, and where it ends.
  internal::HashLanes lanes = prefix_lanes_;
  if (end & 1) internal::AbsorbOddWord(&lanes, block->words[end - 1], end / 2);
  return internal::FinishHash(lanes, internal::kOddWordPad, end);
}

uint64_t Trace::StaticHashSlow(const char* text) {
  const uint64_t hash = TraceTextHash(text, std::strlen(text));
  static_texts_.try_emplace(hash, text);
  static_cache_[CacheSlot(text)] = StaticSlot{text, hash};
  return hash;
}

uint64_t Trace::FileHashSlow(const char* file, bool described) {
  // A file by its base name: __builtin_FILE() gives "tests/x.cc" under Bazel and
  // "/home/me/src/tests/x.cc" elsewhere, and the fingerprint must not differ.
  const uint64_t hash =
      described ? TraceTextHash(file, std::strlen(file)) ^ kDescribedSalt
                : TraceTextHash(FileBaseName(file));
  file_texts_.try_emplace(hash, file);
  (described ? described_cache_ : file_cache_)[CacheSlot(file)] = StaticSlot{file, hash};
  return hash;
}

void Trace::LearnKind(const AnnotationKind& kind) {
  known_kinds_[kind.hash & (kKindSlots - 1)] = &kind;
  CategoryInfo& info = categories_[kind.hash];
  info.text.assign(kind.category, kind.size);
  if (info.format == nullptr) info.format = kind.format;
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

AnnotationFormatter Trace::FormatOf(uint64_t index, uint64_t category_hash) const {
  auto it = std::lower_bound(formats_.begin(), formats_.end(), index,
                             [](const auto& entry, uint64_t i) { return entry.first < i; });
  if (it != formats_.end() && it->first == index) return it->second;
  auto category = categories_.find(category_hash);
  return category != categories_.end() ? category->second.format : nullptr;
}

uint64_t Trace::SiteHashSlow(const char* what, SourceLocation where, int line_key) {
  const char* text = what != nullptr ? what : "";
  const bool described = line_key == -1;
  const uint64_t hash = TraceSiteHash(StaticHash(text), FileHash(where.file_name(), described),
                                      line_key);
  sites_.try_emplace(hash, text,
                     described ? SourceLocation::Described(where.file_name())
                               : SourceLocation::Current(where.file_name(), where.line()));
  site_cache_[(CacheSlot(where.file_name()) + static_cast<unsigned>(line_key)) &
              (kCacheSlots - 1)] = SiteSlot{what, where.file_name(), line_key, hash};
  return hash;
}

std::pair<const char*, SourceLocation> Trace::Site(uint64_t hash) const {
  auto it = sites_.find(hash);
  return it != sites_.end() ? it->second : std::make_pair("?", SourceLocation());
}

const char* Trace::StaticText(uint64_t hash) const {
  auto it = static_texts_.find(hash);
  return it != static_texts_.end() ? it->second : "?";
}

const char* Trace::FileText(uint64_t hash) const {
  auto it = file_texts_.find(hash);
  return it != file_texts_.end() ? it->second : "?";
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

// A category's content hash. The slot its address picks remembers the address, the
// size and, for 8 to 16 bytes (most categories), the first and last 8 bytes, so a hit
// is verified against the content without reaching for the kept text.
uint64_t Trace::CategoryHash(absl::string_view category, AnnotationFormatter format,
                             uint64_t index) {
  CategorySlot& slot = category_cache_[CacheSlot(category.data())];
  const char* p = category.data();
  const size_t n = category.size();
  const bool hit = slot.data == p && slot.size == n &&
                   (n >= 8 && n <= 16 ? Load8(p) == slot.head && Load8(p + n - 8) == slot.tail
                                      : SameBytes(p, slot.info->text.data(), n));
  const uint64_t hash = hit ? slot.hash : CategoryHashSlow(category, slot);
  if (format != nullptr && slot.info->format != format) {
    CategoryInfo& info = categories_[hash];
    if (info.format == nullptr) {
      info.format = format;
    } else {
      // Another formatter than its category's first: remembered per event.
      formats_.emplace_back(index, format);
      const uint64_t oldest = FirstRetainedIndex();
      while (formats_.front().first < oldest) formats_.pop_front();
    }
  }
  return hash;
}

uint64_t Trace::CategoryHashSlow(absl::string_view category, CategorySlot& slot) {
  const uint64_t hash = TraceTextHash(category);
  auto [it, inserted] = categories_.try_emplace(hash);
  if (inserted) it->second.text = std::string(category);
  const size_t n = category.size();
  slot = CategorySlot{category.data(), n, 0, 0, hash, &it->second};
  if (n >= 8 && n <= 16) {
    slot.head = Load8(category.data());
    slot.tail = Load8(category.data() + n - 8);
  }
  return hash;
}

void Trace::Spawn(const TaskView& task, TaskId spawner, int64_t now_ns) {
  if (task_names_.size() <= task.id) task_names_.resize(task.id + 1);
  task_names_[task.id] = std::string(task.name);
  CheckNow(now_ns);
  uint64_t* p = Begin(4);
  p[0] = Header(TraceRecord::kSpawn, task.daemon ? 1 : 0, task.group);
  p[1] = task.id;
  p[2] = spawner;
  p[3] = TraceTextHash(task.name);
}

void Trace::Annotate(const Annotation& annotation, TaskId task, int64_t now_ns) {
  CheckNow(now_ns);
  const uint64_t index = events_;
  const uint64_t category = CategoryHash(annotation.category, annotation.format, index);
  if (annotation.repeats_flow_start && annotation.format != nullptr &&
      annotation.flow_id != 0) {
    WriteFlowEnd(Reserve(4), category, annotation.group, task, annotation.flow_id,
                 annotation.flow_phase);
    return;
  }
  if (annotation.format != nullptr) {
    const AnnotationPayload& in = annotation.payload;
    const int count = std::min<int>(in.word_count, AnnotationPayload::kMaxWords);
    uint64_t* words = BeginAnnotationOf(category, annotation.group, task, annotation.flow_id,
                                        annotation.flow_phase, in.text);
    for (int i = 0; i < count; ++i) words[i] = in.words[i];
    EndAnnotation(words, count);
    return;
  }
  const bool has_flow = annotation.flow_id != 0;
  uint64_t* p = Begin(has_flow ? 5 : 4);
  p[0] = Header(TraceRecord::kNote,
                static_cast<uint8_t>((annotation.flow_phase & 3) << 4 | int{has_flow} << 6),
                annotation.group);
  p[1] = task;
  p[2] = category;
  if (has_flow) p[3] = annotation.flow_id;
  p[has_flow ? 4 : 3] = TraceTextHash(annotation.detail);
  AddText(index, annotation.detail);
}

// ---- As a listener (a second trace of one scheduler) -------------------------------

namespace {

// Nanoseconds since the epoch; the scheduler's own count when `t` is its now.
int64_t NanosSinceEpoch(const Scheduler& scheduler, absl::Time t) {
  return t == scheduler.Now() ? scheduler.NowNanos()
                              : absl::ToInt64Nanoseconds(t - Scheduler::Epoch());
}

}  // namespace

void Trace::OnDecision(const Decision& decision, uint64_t chosen) {
  Decide(decision.kind, decision.current, scheduler_->NowNanos(), decision.num_options,
         decision.candidates, decision.label, decision.from_yield, chosen);
}

void Trace::OnSpawn(const TaskView& task) {
  Spawn(task, CurrentTaskIdOf(*scheduler_), scheduler_->NowNanos());
}

void Trace::OnDispatch(const TaskView& task) {
  Dispatch(task.id, task.group, scheduler_->NowNanos());
}

void Trace::OnBlock(const TaskView& task, const char* what, SourceLocation where) {
  Block(task.id, task.group, scheduler_->NowNanos(), what, where);
}

void Trace::OnWake(const TaskView& task, WakeReason reason) {
  Wake(task.id, task.group, scheduler_->NowNanos(), reason, CurrentTaskIdOf(*scheduler_));
}

void Trace::OnFinish(const TaskView& task) {
  Finish(task.id, task.group, scheduler_->NowNanos());
}

void Trace::OnTimerFired(TimerId timer, absl::Time when) {
  Timer(timer, NanosSinceEpoch(*scheduler_, when));
}

void Trace::OnClockAdvanced(absl::Time from, absl::Time to) {
  Clock(absl::ToInt64Nanoseconds(from - Scheduler::Epoch()), NanosSinceEpoch(*scheduler_, to));
}

void Trace::OnAnnotation(const Annotation& annotation) {
  Annotate(annotation, CurrentTaskIdOf(*scheduler_), scheduler_->NowNanos());
}

// ---- Reading the records -----------------------------------------------------------

TraceEvent Trace::Materialize(uint64_t index) const {
  const BlockInfo* block;
  int64_t clock_before;
  const uint64_t* w = RecordOf(index, &block, &read_cursor_, &clock_before);
  const uint64_t header = w[0];
  const uint8_t aux = static_cast<uint8_t>(header >> 8);
  TraceEvent e;
  e.index = index;
  e.group = static_cast<GroupId>(header >> 32);
  e.hash = HashThrough(index);
  e.task = w[1];
  e.time_ns = clock_before;
  switch (static_cast<TraceRecord>(header & 0xff)) {
    case TraceRecord::kSpawn:
      e.kind = TraceEventKind::kSpawn;
      e.number = aux;
      e.other_task = w[2];
      e.detail = std::string(TaskName(e.task));
      break;
    case TraceRecord::kDispatch:
      e.kind = TraceEventKind::kDispatch;
      break;
    case TraceRecord::kFinish:
      e.kind = TraceEventKind::kFinish;
      break;
    case TraceRecord::kBlock:
      e.kind = TraceEventKind::kBlock;
      std::tie(e.what, e.where) = Site(w[2]);
      break;
    case TraceRecord::kWake:
      e.kind = TraceEventKind::kWake;
      e.code = aux;
      e.other_task = w[2];
      break;
    case TraceRecord::kTimer:
      e.kind = TraceEventKind::kTimer;
      e.task = kNoTask;
      e.number = w[1];
      break;
    case TraceRecord::kClock:
      e.kind = TraceEventKind::kClock;
      e.task = kNoTask;
      e.number = static_cast<uint64_t>(clock_before);
      e.time_ns = static_cast<int64_t>(w[1]);
      break;
    case TraceRecord::kDecision:
      e.kind = TraceEventKind::kDecision;
      e.code = aux & 15;
      e.number = w[2];
      e.options = w[3];
      e.what = StaticText(w[4]);
      break;
    case TraceRecord::kAnnotation:
    case TraceRecord::kNote: {
      e.kind = TraceEventKind::kAnnotation;
      auto category = categories_.find(w[2]);
      if (category != categories_.end()) e.category = category->second.text;
      const bool has_flow = (aux >> 6) & 1;
      e.flow_phase = (aux >> 4) & 3;
      e.flow_id = has_flow ? w[3] : 0;
      if (static_cast<TraceRecord>(header & 0xff) == TraceRecord::kNote) {
        e.detail = std::string(TextOf(index));
        break;
      }
      if (AnnotationFormatter format = FormatOf(index, w[2])) {
        format(PayloadOf(w), &e.detail);
      }
      break;
    }
    case TraceRecord::kFlowEnd: {
      e.kind = TraceEventKind::kAnnotation;
      auto category = categories_.find(w[2]);
      if (category != categories_.end()) e.category = category->second.text;
      e.flow_phase = (aux >> 4) & 3;
      e.flow_id = w[3];
      const uint64_t start = FindFlowStart(e.flow_id, index);
      AnnotationFormatter format = FormatOf(index, w[2]);
      if (start == UINT64_MAX) {
        absl::StrAppend(&e.detail, "(as at the start of flow ", e.flow_id,
                        ", which is no longer retained)");
      } else if (format != nullptr) {
        ReadCursor scratch;
        const BlockInfo* start_block;
        format(PayloadOf(RecordOf(start, &start_block, &scratch)), &e.detail);
      }
      break;
    }
    case TraceRecord::kContinues:
      DSIM_CHECK(false, "a kContinues record is no event");
      break;
  }
  return e;
}

AnnotationPayload Trace::PayloadOf(const uint64_t* w) const {
  const uint8_t aux = static_cast<uint8_t>(w[0] >> 8);
  DSIM_CHECK(static_cast<TraceRecord>(w[0] & 0xff) == TraceRecord::kAnnotation);
  size_t i = 3 + ((aux >> 6) & 1);
  AnnotationPayload payload;
  payload.text = (aux >> 7) & 1 ? StaticText(w[i++]) : nullptr;
  payload.word_count = aux & 15;
  for (int k = 0; k < AnnotationPayload::kMaxWords; ++k) {
    payload.words[k] = k < payload.word_count ? w[i + k] : 0;
  }
  return payload;
}

uint64_t Trace::FindFlowStart(uint64_t flow, uint64_t index) const {
  const uint64_t first = FirstRetainedIndex();
  // Index the flow starts among the retained events before `index`, once each.
  for (uint64_t i = std::max(flows_indexed_to_, first); i < index; ++i) {
    const BlockInfo* block;
    const uint64_t* w = RecordOf(i, &block, &flow_cursor_);
    const uint8_t aux = static_cast<uint8_t>(w[0] >> 8);
    if (static_cast<TraceRecord>(w[0] & 0xff) == TraceRecord::kAnnotation &&
        ((aux >> 4) & 3) == 1 && ((aux >> 6) & 1) != 0) {
      flow_starts_[w[3]] = i;
    }
  }
  flows_indexed_to_ = std::max(flows_indexed_to_, index);
  auto it = flow_starts_.find(flow);
  return it != flow_starts_.end() && it->second >= first && it->second < index ? it->second
                                                                                : UINT64_MAX;
}

std::vector<TraceEvent> Trace::LastEvents(size_t count) const {
  std::vector<TraceEvent> out;
  const uint64_t first =
      std::max(FirstRetainedIndex(), events_ - std::min<uint64_t>(count, events_));
  out.reserve(events_ - first);
  for (uint64_t i = first; i < events_; ++i) out.push_back(Materialize(i));
  return out;
}

const std::deque<TraceEvent>& Trace::events() const {
  if (materialized_at_ != events_) {  // Any new event changes events_.
    materialized_.clear();
    for (uint64_t i = FirstRetainedIndex(); i < events_; ++i) {
      materialized_.push_back(Materialize(i));
    }
    materialized_at_ = events_;
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
  out << absl::StrFormat("# dsim trace: %d events, fingerprint %016x", events_,
                         fingerprint());
  if (!complete()) out << absl::StrCat(", showing the last ", retained_count());
  out << "\n";
  for (uint64_t i = FirstRetainedIndex(); i < events_; ++i) {
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
