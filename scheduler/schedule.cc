#include "scheduler/schedule.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "scheduler/internal/check.h"
#include "scheduler/scheduler.h"

namespace dsim {
namespace {

constexpr absl::string_view kMagic = "DSIMSCHD";
constexpr uint8_t kKindMask = 0x3;
constexpr uint8_t kSameCandidatesBit = 0x4;
constexpr uint8_t kNewLabelBit = 0x8;
// Bounds on what a file may claim, so a corrupt one cannot make Parse allocate wildly.
constexpr uint64_t kMaxStringBytes = 4096;
constexpr uint64_t kMaxCandidates = 1 << 20;

std::string CandidatesToString(const std::vector<uint64_t>& ids) {
  return absl::StrCat("{", absl::StrJoin(ids, ","), "}");
}

std::vector<uint64_t> Sorted(std::vector<uint64_t> ids) {
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::string FormatTime(int64_t time_ns) {
  return absl::StrCat("+", absl::FormatDuration(absl::Nanoseconds(time_ns)));
}

absl::Status Corrupt(absl::string_view why) {
  return absl::DataLossError(absl::StrCat("not a valid dsim schedule: ", why));
}

// ---- Varints and a bounds-checked reader ------------------------------------------

void PutVarint(std::string* out, uint64_t value) {
  while (value >= 0x80) {
    out->push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out->push_back(static_cast<char>(value));
}

void PutString(std::string* out, absl::string_view s) {
  PutVarint(out, s.size());
  out->append(s.data(), s.size());
}

void PutFixed64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}

// FNV-1a, 64 bits: detects truncation and bit flips in saved schedules.
uint64_t Fnv1a64(absl::string_view bytes) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : bytes) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// Reads what the Put functions wrote. A read past the end fails (returns false) and the
// reader stays failed, so a corrupt file can never make Parse read out of bounds.
class ByteReader {
 public:
  explicit ByteReader(absl::string_view bytes) : rest_(bytes) {}

  bool Varint(uint64_t* value) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t byte = 0;
      if (!Byte(&byte)) return false;
      // The tenth byte may only carry the top bit of a 64-bit value.
      if (shift == 63 && byte > 1) return Fail();
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *value = result;
        return ok_;
      }
    }
    return Fail();
  }

  bool Byte(uint8_t* value) {
    if (rest_.empty()) return Fail();
    *value = static_cast<uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return ok_;
  }

  bool String(std::string* value, uint64_t max_size) {
    uint64_t size = 0;
    if (!Varint(&size) || size > max_size || size > rest_.size()) return Fail();
    value->assign(rest_.data(), size);
    rest_.remove_prefix(size);
    return ok_;
  }

  size_t remaining() const { return rest_.size(); }

 private:
  bool Fail() {
    ok_ = false;
    return false;
  }

  absl::string_view rest_;
  bool ok_ = true;
};

// Per-kind memory of the previous candidate list, for the "same candidates" bit.
using PreviousCandidates = std::array<const std::vector<uint64_t>*, 3>;

}  // namespace

// ---- ScheduleEntry ---------------------------------------------------------------

bool ScheduleEntry::is_preemption() const {
  if (kind != DecisionKind::kNextTask || current == kNoTask) return false;
  const bool current_runnable =
      std::find(candidates.begin(), candidates.end(), current) != candidates.end();
  return current_runnable && chosen_id() != current;
}

bool ScheduleEntry::is_context_switch() const {
  return kind == DecisionKind::kNextTask && current != kNoTask && chosen_id() != current;
}

std::string ScheduleEntry::ToString(uint64_t index) const {
  std::string s = absl::StrCat("#", index, " step ", step, " ", FormatTime(time_ns), " ",
                               DecisionKindName(kind));
  if (current != kNoTask) absl::StrAppend(&s, " current=", current);
  if (kind == DecisionKind::kValue) {
    absl::StrAppend(&s, " ", label.empty() ? "?" : label, " in [0,",
                    num_options == 0 ? std::string("2^64") : absl::StrCat(num_options),
                    ") -> ", chosen);
  } else {
    absl::StrAppend(&s, " ", CandidatesToString(candidates), " -> ", chosen_id());
    if (is_preemption()) absl::StrAppend(&s, " (preempts ", current, ")");
  }
  return s;
}

bool ScheduleEntry::operator==(const ScheduleEntry& other) const {
  return kind == other.kind && step == other.step && time_ns == other.time_ns &&
         current == other.current && num_options == other.num_options &&
         candidates == other.candidates && chosen == other.chosen && label == other.label;
}

ScheduleEntry EntryFromDecision(const Decision& decision, uint64_t chosen) {
  ScheduleEntry entry;
  entry.kind = decision.kind;
  entry.step = decision.step;
  entry.time_ns = absl::ToInt64Nanoseconds(decision.now - Scheduler::Epoch());
  entry.current = decision.current;
  entry.num_options = decision.num_options;
  entry.candidates.assign(decision.candidates.begin(), decision.candidates.end());
  entry.chosen = chosen;
  if (decision.kind == DecisionKind::kValue) entry.label = decision.label;
  return entry;
}

// ---- Schedule --------------------------------------------------------------------

std::string ScheduleStats::ToString() const {
  return absl::StrCat(decisions, " decisions (", task_choices, " task choices, ", values,
                      " values), ", preemptions, " preemptions, ", context_switches,
                      " context switches, ", nonzero_values, " non-zero values, ", last_step,
                      " steps");
}

ScheduleStats Schedule::Stats() const {
  ScheduleStats stats;
  stats.decisions = entries_.size();
  for (const ScheduleEntry& e : entries_) {
    if (e.kind == DecisionKind::kNextTask) ++stats.task_choices;
    if (e.is_preemption()) ++stats.preemptions;
    if (e.is_context_switch()) ++stats.context_switches;
    if (e.kind == DecisionKind::kValue) {
      ++stats.values;
      if (e.num_options != 0 && e.chosen != 0) ++stats.nonzero_values;
    }
    stats.last_step = std::max(stats.last_step, e.step);
  }
  return stats;
}

std::string Schedule::ToString() const {
  std::string s = absl::StrCat("schedule of ", entries_.size(), " decisions by ", strategy_,
                               " (seed ", seed_, "):\n");
  for (size_t i = 0; i < entries_.size(); ++i) {
    absl::StrAppend(&s, "  ", entries_[i].ToString(i), "\n");
  }
  return s;
}

absl::Status Schedule::Validate() const {
  auto invalid = [](uint64_t i, auto&&... what) {
    return absl::InvalidArgumentError(absl::StrCat("schedule entry ", i, " ", what...));
  };
  if (strategy_.size() > kMaxStringBytes) {
    return absl::InvalidArgumentError("schedule strategy description too long");
  }
  uint64_t previous_step = 0;
  int64_t previous_time_ns = 0;
  for (uint64_t i = 0; i < entries_.size(); ++i) {
    const ScheduleEntry& e = entries_[i];
    if (e.step < previous_step) {
      return invalid(i, "goes back in steps (", previous_step, " -> ", e.step, ")");
    }
    if (e.time_ns < previous_time_ns) {
      return invalid(i, "goes back in time (", previous_time_ns, " ns -> ", e.time_ns, " ns)");
    }
    if (static_cast<int>(e.kind) > static_cast<int>(DecisionKind::kValue)) {
      return invalid(i, "has an unknown kind");
    }
    if (e.kind == DecisionKind::kValue) {
      if (e.label.size() > kMaxStringBytes) return invalid(i, "has a label too long");
      if (!e.candidates.empty()) return invalid(i, "is a value with candidates");
      if (e.num_options != 0 && e.chosen >= e.num_options) {
        return invalid(i, "chose value ", e.chosen, " of ", e.num_options);
      }
    } else {
      if (e.candidates.empty() || e.candidates.size() > kMaxCandidates) {
        return invalid(i, "has ", e.candidates.size(), " candidates");
      }
      if (e.chosen >= e.candidates.size()) {
        return invalid(i, "chose index ", e.chosen, " of ", e.candidates.size(), " candidates");
      }
    }
    previous_step = e.step;
    previous_time_ns = e.time_ns;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Schedule::Serialize() const {
  if (absl::Status valid = Validate(); !valid.ok()) return valid;
  std::string out(kMagic);
  PutVarint(&out, task_names_.empty() ? 1 : kFormatVersion);
  PutVarint(&out, seed_);
  PutString(&out, strategy_);
  PutVarint(&out, entries_.size());
  PreviousCandidates previous = {nullptr, nullptr, nullptr};
  absl::flat_hash_map<std::string, uint64_t> label_index;  // Lookups only.
  uint64_t previous_step = 0;
  int64_t previous_time_ns = 0;
  for (const ScheduleEntry& e : entries_) {
    DSIM_DCHECK(e.step >= previous_step && e.time_ns >= previous_time_ns, "Validate() checked");
    const int kind = static_cast<int>(e.kind);
    uint8_t head = static_cast<uint8_t>(kind);
    bool new_label = false;
    if (e.kind == DecisionKind::kValue) {
      new_label = !label_index.contains(e.label);
      if (new_label) label_index.emplace(e.label, label_index.size());
      if (new_label) head |= kNewLabelBit;
    } else if (previous[kind] != nullptr && *previous[kind] == e.candidates) {
      head |= kSameCandidatesBit;
    }
    out.push_back(static_cast<char>(head));
    PutVarint(&out, e.step - previous_step);
    PutVarint(&out, static_cast<uint64_t>(e.time_ns - previous_time_ns));
    PutVarint(&out, e.current);
    if (e.kind == DecisionKind::kValue) {
      PutVarint(&out, e.num_options);
      if (new_label) PutString(&out, e.label);
      PutVarint(&out, label_index.at(e.label));
      PutVarint(&out, e.chosen);
    } else {
      if ((head & kSameCandidatesBit) == 0) {
        PutVarint(&out, e.candidates.size());
        for (uint64_t id : e.candidates) PutVarint(&out, id);
      }
      PutVarint(&out, e.chosen);
      previous[kind] = &e.candidates;
    }
    previous_step = e.step;
    previous_time_ns = e.time_ns;
  }
  if (!task_names_.empty()) {
    PutVarint(&out, task_names_.size());
    for (const auto& [id, name] : task_names_) {
      PutVarint(&out, id);
      PutString(&out, name.size() > kMaxStringBytes ? name.substr(0, kMaxStringBytes) : name);
    }
  }
  PutFixed64(&out, Fnv1a64(out));
  return out;
}

absl::StatusOr<Schedule> Schedule::Parse(absl::string_view bytes) {
  if (bytes.size() < kMagic.size() + 8 || bytes.substr(0, kMagic.size()) != kMagic) {
    return Corrupt("missing the DSIMSCHD header");
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - 8);
  ByteReader checksum_reader(bytes.substr(bytes.size() - 8));
  uint64_t stored_checksum = 0;
  for (int i = 0; i < 8; ++i) {
    uint8_t byte = 0;
    checksum_reader.Byte(&byte);
    stored_checksum |= static_cast<uint64_t>(byte) << (8 * i);
  }
  if (stored_checksum != Fnv1a64(body)) return Corrupt("checksum mismatch");

  ByteReader in(body.substr(kMagic.size()));
  uint64_t version = 0, seed = 0, count = 0;
  std::string strategy;
  if (!in.Varint(&version)) return Corrupt("truncated header");
  if (version != 1 && version != kFormatVersion) {
    return absl::UnimplementedError(absl::StrCat("schedule format version ", version,
                                                 " is not supported (this build reads ",
                                                 kFormatVersion, ")"));
  }
  if (!in.Varint(&seed) || !in.String(&strategy, kMaxStringBytes) || !in.Varint(&count)) {
    return Corrupt("truncated header");
  }
  // Every entry takes at least 5 bytes, so a count beyond that is a lie.
  if (count > in.remaining() / 5 + 1) return Corrupt("entry count exceeds the file");
  Schedule schedule(std::move(strategy), seed);
  schedule.entries_.reserve(count);
  std::vector<std::string> labels;
  std::array<std::vector<uint64_t>, 3> previous;
  std::array<bool, 3> have_previous = {false, false, false};
  uint64_t step = 0;
  int64_t time_ns = 0;
  for (uint64_t i = 0; i < count; ++i) {
    uint8_t head = 0;
    uint64_t step_delta = 0, time_delta = 0, current = 0;
    if (!in.Byte(&head) || !in.Varint(&step_delta) || !in.Varint(&time_delta) ||
        !in.Varint(&current)) {
      return Corrupt(absl::StrCat("truncated at entry ", i));
    }
    if ((head & ~(kKindMask | kSameCandidatesBit | kNewLabelBit)) != 0) {
      return Corrupt(absl::StrCat("unknown flags at entry ", i));
    }
    ScheduleEntry e;
    e.kind = static_cast<DecisionKind>(head & kKindMask);
    // Deltas that would wrap past the largest step or time are corrupt (a signed
    // overflow of the time would also be undefined behaviour).
    if (step_delta > std::numeric_limits<uint64_t>::max() - step) {
      return Corrupt(absl::StrCat("step overflows at entry ", i));
    }
    if (time_delta > static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - time_ns)) {
      return Corrupt(absl::StrCat("virtual time overflows at entry ", i));
    }
    step += step_delta;
    time_ns += static_cast<int64_t>(time_delta);
    e.step = step;
    e.time_ns = time_ns;
    e.current = current;
    if (e.kind == DecisionKind::kValue) {
      uint64_t label = 0;
      if (!in.Varint(&e.num_options)) return Corrupt(absl::StrCat("truncated at entry ", i));
      if (head & kNewLabelBit) {
        labels.emplace_back();
        if (!in.String(&labels.back(), kMaxStringBytes)) {
          return Corrupt(absl::StrCat("truncated label at entry ", i));
        }
      }
      if (!in.Varint(&label) || !in.Varint(&e.chosen)) {
        return Corrupt(absl::StrCat("truncated at entry ", i));
      }
      if (label >= labels.size()) return Corrupt(absl::StrCat("unknown label at entry ", i));
      if (e.num_options != 0 && e.chosen >= e.num_options) {
        return Corrupt(absl::StrCat("value out of range at entry ", i));
      }
      e.label = labels[label];
    } else {
      const int kind = static_cast<int>(e.kind);
      if (head & kSameCandidatesBit) {
        if (!have_previous[kind]) return Corrupt(absl::StrCat("no candidates for entry ", i));
        e.candidates = previous[kind];
      } else {
        uint64_t n = 0;
        if (!in.Varint(&n) || n == 0 || n > kMaxCandidates || n > in.remaining()) {
          return Corrupt(absl::StrCat("bad candidate count at entry ", i));
        }
        e.candidates.resize(n);
        for (uint64_t& id : e.candidates) {
          if (!in.Varint(&id)) return Corrupt(absl::StrCat("truncated at entry ", i));
        }
        previous[kind] = e.candidates;
        have_previous[kind] = true;
      }
      e.num_options = e.candidates.size();
      if (!in.Varint(&e.chosen) || e.chosen >= e.num_options) {
        return Corrupt(absl::StrCat("bad choice at entry ", i));
      }
    }
    schedule.entries_.push_back(std::move(e));
  }
  if (version >= 2) {
    uint64_t names = 0;
    if (!in.Varint(&names) || names > in.remaining() / 2) return Corrupt("bad task name table");
    for (uint64_t n = 0; n < names; ++n) {
      uint64_t id = 0;
      std::string name;
      if (!in.Varint(&id) || id > std::numeric_limits<TaskId>::max() ||
          !in.String(&name, kMaxStringBytes)) {
        return Corrupt("truncated task name table");
      }
      schedule.task_names_[static_cast<TaskId>(id)] = std::move(name);
    }
  }
  if (in.remaining() != 0) return Corrupt("trailing bytes after the last entry");
  return schedule;
}

absl::Status Schedule::Save(const std::string& path) const {
  if (absl::Status valid = Validate(); !valid.ok()) {
    return absl::Status(valid.code(), absl::StrCat("not saving ", path, ": ", valid.message()));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write schedule to ", path));
  absl::StatusOr<std::string> serialized = Serialize();
  if (!serialized.ok()) {
    return absl::Status(serialized.status().code(),
                        absl::StrCat("not saving ", path, ": ", serialized.status().message()));
  }
  const std::string& bytes = *serialized;
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("error writing schedule to ", path));
  return absl::OkStatus();
}

absl::StatusOr<Schedule> Schedule::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read schedule file ", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  absl::StatusOr<Schedule> schedule = Parse(buffer.str());
  if (!schedule.ok()) {
    return absl::Status(schedule.status().code(),
                        absl::StrCat(path, ": ", schedule.status().message()));
  }
  return schedule;
}

// ---- RecordingStrategy -----------------------------------------------------------

RecordingStrategy::RecordingStrategy(std::shared_ptr<Strategy> inner, uint64_t seed)
    : inner_(std::move(inner)), seed_(seed) {
  DSIM_MISUSE(inner_ != nullptr, "RecordingStrategy needs a strategy to wrap");
}

uint64_t RecordingStrategy::Choose(const Decision& decision) {
  // A new simulation: keep only its decisions.
  if (decision.index == 0 || schedule_.empty()) schedule_ = Schedule(inner_->Describe(), seed_);
  DSIM_CHECK(decision.index == next_index_ || decision.index == 0,
             "RecordingStrategy saw decision ", decision.index, " after ", next_index_,
             "; one recorder must not serve two simulations at once");
  if (decision.index == 0) named_.clear();
  NameTasks(decision);
  const uint64_t chosen = inner_->Choose(decision);
  schedule_.Add(EntryFromDecision(decision, chosen));
  next_index_ = decision.index + 1;
  return chosen;
}

// Adds the names of the tasks a decision mentions to the schedule, once per task (a
// scan of the live tasks only when one is new).
void RecordingStrategy::NameTasks(const Decision& decision) {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr) return;
  const auto is_new = [this](uint64_t id) { return id != kNoTask && (id >= named_.size() || !named_[id]); };
  bool any_new = is_new(decision.current);
  const bool tasks = decision.kind == DecisionKind::kNextTask || decision.kind == DecisionKind::kWakeOne;
  for (uint64_t id : decision.candidates) any_new = any_new || (tasks && is_new(id));
  if (!any_new) return;
  for (const TaskReport& task : scheduler->LiveTaskReports()) {
    if (!is_new(task.id)) continue;
    if (task.id >= named_.size()) named_.resize(task.id + 1, false);
    named_[task.id] = true;
    schedule_.SetTaskName(task.id, task.name);
  }
}

// ---- ReplayStrategy --------------------------------------------------------------

std::string Divergence::ToString() const {
  // Each side's ids with that side's names: the recording's from the schedule, this
  // run's from its live tasks (the same id can be another task in a changed program).
  using Names = std::map<TaskId, std::string>;
  const auto task = [](const Names& names, TaskId id) {
    if (id == kNoTask) return std::string("the run loop");
    auto it = names.find(id);
    return it == names.end() ? absl::StrCat("task ", id)
                             : absl::StrCat("task ", id, " \"", it->second, "\"");
  };
  const auto candidates = [](const Names& names, const std::vector<uint64_t>& ids,
                             DecisionKind kind) {
    if (kind == DecisionKind::kTimerOrder) return CandidatesToString(ids);
    std::vector<std::string> named;
    for (uint64_t id : ids) {
      auto it = names.find(static_cast<TaskId>(id));
      named.push_back(it == names.end() ? absl::StrCat(id)
                                        : absl::StrCat(id, " \"", it->second, "\""));
    }
    return absl::StrCat("{", absl::StrJoin(named, ", "), "}");
  };
  const auto describe = [&](const Names& names, const ScheduleEntry& e) {
    if (e.kind == DecisionKind::kValue) {
      return absl::StrCat("a value \"", e.label, "\" in [0,",
                          e.num_options == 0 ? std::string("2^64") : absl::StrCat(e.num_options),
                          ")");
    }
    return absl::StrCat(DecisionKindName(e.kind), " among ", candidates(names, e.candidates, e.kind));
  };
  std::string running = task(task_names, current);
  if (current != kNoTask && !current_name.empty() && !task_names.count(current)) {
    running = absl::StrCat("task ", current, " \"", current_name, "\"");
  }
  if (!current_site.empty()) absl::StrAppend(&running, " at ", current_site);
  std::string s = absl::StrCat("replay diverged at decision ", index, " (step ", step, ", ",
                               FormatTime(time_ns), ", ", running, "): ");
  if (!expected.has_value()) {
    absl::StrAppend(&s, "the schedule has only ", index,
                    " decisions, but the program asked for another: ", describe(task_names, actual));
  } else {
    std::string chose;
    if (expected->kind != DecisionKind::kValue && expected->chosen < expected->candidates.size()) {
      chose = absl::StrCat(" and chose ",
                           expected->kind == DecisionKind::kTimerOrder
                               ? absl::StrCat("timer #", expected->chosen_id())
                               : task(recorded_names, static_cast<TaskId>(expected->chosen_id())));
    }
    absl::StrAppend(&s, "the schedule expected ", describe(recorded_names, *expected), chose,
                    " (recorded at step ", expected->step, ", ", FormatTime(expected->time_ns),
                    ", in ", task(recorded_names, expected->current), "); the program asked ",
                    describe(task_names, actual));
  }
  return s;
}

ReplayStrategy::ReplayStrategy(Schedule schedule) : schedule_(std::move(schedule)) {}

std::string ReplayStrategy::Describe() const {
  return absl::StrCat("replay(", schedule_.size(), " decisions of ",
                      schedule_.strategy().empty() ? "?" : schedule_.strategy(), ")");
}

std::optional<Divergence> ReplayStrategy::Check(const Decision& decision) const {
  Divergence d;
  d.index = decision.index;
  d.step = decision.step;
  d.time_ns = absl::ToInt64Nanoseconds(decision.now - Scheduler::Epoch());
  d.current = decision.current;
  d.actual = EntryFromDecision(decision, 0);
  if (next_index_ >= schedule_.size()) return d;
  const ScheduleEntry& e = schedule_[next_index_];
  d.expected = e;
  if (e.kind != decision.kind) return d;
  if (e.kind == DecisionKind::kValue) {
    if (e.num_options != decision.num_options || e.label != decision.label) return d;
    return std::nullopt;
  }
  if (Sorted(e.candidates) != Sorted(d.actual.candidates)) return d;
  return std::nullopt;
}

void ReplayStrategy::Diverge(Divergence divergence) {
  divergence_ = std::move(divergence);
  // The run stops at its next scheduling point as a failure carrying the report; the
  // decision at hand still gets an answer (Fallback), so nothing is left half-done.
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr) return;
  divergence_->recorded_names = schedule_.task_names();
  // Names for the ids, and where the running task stopped, while the run can tell.
  for (const TaskReport& task : scheduler->LiveTaskReports()) {
    divergence_->task_names[task.id] = task.name;
    if (task.id == divergence_->current && task.blocked) {
      divergence_->current_site = absl::StrCat("blocked in ", task.blocked_in, " at ",
                                               task.blocked_at.ToString());
    }
  }
  if (scheduler->InTask()) divergence_->current_name = std::string(scheduler->CurrentTaskName());
  scheduler->Fail(divergence_->ToString());
}

uint64_t ReplayStrategy::Fallback(const Decision& decision) const {
  if (next_index_ < schedule_.size()) {
    const ScheduleEntry& e = schedule_[next_index_];
    if (decision.kind == DecisionKind::kValue && e.kind == DecisionKind::kValue &&
        e.num_options == decision.num_options) {
      return e.chosen;
    }
    if (decision.kind != DecisionKind::kValue && !e.candidates.empty()) {
      const auto& c = decision.candidates;
      const auto it = std::find(c.begin(), c.end(), e.chosen_id());
      if (it != c.end()) return it - c.begin();
    }
  }
  return 0;
}

uint64_t ReplayStrategy::Choose(const Decision& decision) {
  if (decision.index == 0 && next_index_ > 0) {
    // A new simulation replays from the start.
    next_index_ = 0;
    divergence_.reset();
  }
  if (!divergence_.has_value()) {
    std::optional<Divergence> mismatch = Check(decision);
    if (mismatch.has_value()) Diverge(*std::move(mismatch));
  }
  const uint64_t chosen = Fallback(decision);
  ++next_index_;
  DSIM_DCHECK(decision.num_options == 0 || chosen < decision.num_options);
  return chosen;
}

absl::Status ReplayStrategy::status() const {
  if (!divergence_.has_value()) return absl::OkStatus();
  return absl::FailedPreconditionError(divergence_->ToString());
}

absl::Status ReplayStrategy::CheckComplete() const {
  if (!status().ok()) return status();
  if (finished()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "replay incomplete: the program made ", next_index_, " decisions, the schedule holds ",
      schedule_.size(), "; the next one expected was ", schedule_[next_index_].ToString(next_index_)));
}

}  // namespace dsim

namespace dsim {

// ---- GuidedReplayStrategy ----------------------------------------------------------

GuidedReplayStrategy::GuidedReplayStrategy(Schedule schedule, std::shared_ptr<Strategy> fallback)
    : schedule_(std::move(schedule)), fallback_(std::move(fallback)) {
  DSIM_MISUSE(fallback_ != nullptr, "GuidedReplayStrategy needs a fallback strategy");
  std::map<std::pair<int, TaskId>, uint64_t> ordinals;
  for (size_t i = 0; i < schedule_.size(); ++i) {
    const ScheduleEntry& e = schedule_[i];
    const std::pair<int, TaskId> who{static_cast<int>(e.kind), e.current};
    entry_of_.emplace(Key{who.first, who.second, ordinals[who]++}, i);
  }
}

std::optional<uint64_t> GuidedReplayStrategy::Recorded(const Decision& decision,
                                                       const ScheduleEntry& e) const {
  if (e.kind != decision.kind) return std::nullopt;
  if (e.kind == DecisionKind::kValue) {
    if (e.num_options != decision.num_options || e.label != decision.label) return std::nullopt;
    return e.chosen;
  }
  if (e.chosen >= e.candidates.size()) return std::nullopt;
  const auto& c = decision.candidates;
  const auto it = std::find(c.begin(), c.end(), e.chosen_id());
  if (it == c.end()) return std::nullopt;
  return static_cast<uint64_t>(it - c.begin());
}

uint64_t GuidedReplayStrategy::Choose(const Decision& decision) {
  if (decision.index == 0) ordinals_.clear();  // A new simulation.
  const std::pair<int, TaskId> who{static_cast<int>(decision.kind), decision.current};
  const auto entry = entry_of_.find(Key{who.first, who.second, ordinals_[who]++});
  if (entry != entry_of_.end()) {
    if (std::optional<uint64_t> chosen = Recorded(decision, schedule_[entry->second])) {
      ++followed_;
      return *chosen;
    }
  }
  ++fell_back_;
  return fallback_->Choose(decision);
}

std::string GuidedReplayStrategy::Describe() const {
  return absl::StrCat("guided(", schedule_.size(), " decisions of ",
                      schedule_.strategy().empty() ? "?" : schedule_.strategy(), ", ", followed_,
                      " followed, ", fell_back_, " by ", fallback_->Describe(), ")");
}

}  // namespace dsim
