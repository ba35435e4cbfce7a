#include "sim/internal/trace_json.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "scheduler/internal/check.h"
#include "sim/trace.h"

namespace dsim::internal {
namespace {

// A track is one Perfetto thread: (pid, tid). pid = group + 1, because pid 0 means
// "no process" to some viewers.
struct Track {
  uint64_t pid = 1;
  uint64_t tid = kHostTrackTid;
  bool operator<(const Track& o) const { return std::tie(pid, tid) < std::tie(o.pid, o.tid); }
  bool operator==(const Track& o) const { return pid == o.pid && tid == o.tid; }
};

// Microseconds with nanosecond precision, as the format wants: "12.345".
std::string Micros(int64_t ns) {
  return absl::StrFormat("%d.%03d", ns / 1000, ns % 1000);
}

class JsonWriter {
 public:
  JsonWriter(const Trace& trace, const ChromeJsonOptions& options, std::ostream& out)
      : trace_(trace), step_ns_(std::max<int64_t>(options.display_step_ns, 4)), out_(out) {}

  void Write() {
    Prepass();
    out_ << "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"fingerprint\":\""
         << absl::StrFormat("%016x", trace_.fingerprint()) << "\",\"events\":\""
         << trace_.event_count() << "\",\"complete\":\"" << (trace_.complete() ? "yes" : "no")
         << "\"},\"traceEvents\":[\n";
    const std::deque<TraceEvent>& events = trace_.events();
    for (size_t i = 0; i < events.size(); ++i) WriteEvent(events[i], display_ns_[i]);
    const int64_t end = display_ns_.empty() ? 0 : display_ns_.back() + step_ns_;
    CloseRun(end);
    WriteMetadata();
    out_ << "\n]}\n";
  }

 private:
  // Display times, task groups and the flows whose two ends are both retained.
  void Prepass() {
    int64_t previous = INT64_MIN;
    std::map<uint64_t, int> flow_phases;  // Bit 1: start seen; bit 2: end seen.
    for (const TraceEvent& e : trace_.events()) {
      const int64_t display =
          previous == INT64_MIN ? e.time_ns : std::max(e.time_ns, previous + step_ns_);
      display_ns_.push_back(display);
      previous = display;
      if (IsTaskEvent(e.kind) && !task_group_.count(e.task)) task_group_[e.task] = e.group;
      if (e.flow_id != 0 && (e.flow_phase == 1 || e.flow_phase == 2)) {
        flow_phases[e.flow_id] |= e.flow_phase;
      }
    }
    for (const auto& [id, phases] : flow_phases) {
      if (phases == 3) paired_flows_.insert(id);
    }
  }

  static bool IsTaskEvent(TraceEventKind kind) {
    return kind == TraceEventKind::kSpawn || kind == TraceEventKind::kDispatch ||
           kind == TraceEventKind::kBlock || kind == TraceEventKind::kWake ||
           kind == TraceEventKind::kFinish;
  }

  GroupId GroupOfTask(TaskId task) const {
    auto it = task_group_.find(task);
    return it == task_group_.end() ? kNoGroup : it->second;
  }

  Track TaskTrack(TaskId task) const { return Track{GroupOfTask(task) + 1ull, task}; }
  static Track HostTrack(GroupId group) { return Track{group + 1ull, kHostTrackTid + group}; }

  Track TrackOf(const TraceEvent& e) const {
    if (IsTaskEvent(e.kind)) return Track{e.group + 1ull, e.task};
    switch (e.kind) {
      case TraceEventKind::kDecision:
        return e.task != kNoTask ? TaskTrack(e.task) : HostTrack(kNoGroup);
      case TraceEventKind::kAnnotation:
        // On the running task's track when it belongs to the annotated host.
        if (e.task != kNoTask && GroupOfTask(e.task) == e.group) return TaskTrack(e.task);
        return HostTrack(e.group);
      default:
        return HostTrack(kNoGroup);
    }
  }

  void WriteEvent(const TraceEvent& e, int64_t display) {
    const Track track = TrackOf(e);
    used_tracks_.insert(track);
    switch (e.kind) {
      case TraceEventKind::kDispatch:
        CloseRun(display);
        run_open_ = true;
        run_track_ = track;
        run_start_ns_ = display;
        run_event_ = e.index;
        run_vt_ns_ = e.time_ns;
        return;
      case TraceEventKind::kBlock:
      case TraceEventKind::kFinish:
        Instant(e, track, display);
        if (run_open_ && run_track_ == track) CloseRun(display);
        return;
      case TraceEventKind::kAnnotation:
        AnnotationSlice(e, track, display);
        return;
      case TraceEventKind::kDecision:
        // Task and timer picks are visible as dispatches; keep the JSON readable.
        if (static_cast<DecisionKind>(e.code) == DecisionKind::kNextTask ||
            static_cast<DecisionKind>(e.code) == DecisionKind::kTimerOrder) {
          return;
        }
        Instant(e, track, display);
        return;
      default:
        Instant(e, track, display);
        return;
    }
  }

  void CloseRun(int64_t end_ns) {
    if (!run_open_) return;
    run_open_ = false;
    const int64_t duration = std::max<int64_t>(end_ns - run_start_ns_, step_ns_ / 2);
    Begin();
    out_ << "{\"ph\":\"X\",\"cat\":\"run\",\"name\":"
         << JsonString(trace_.TaskName(run_track_.tid)) << TrackFields(run_track_)
         << ",\"ts\":" << Micros(run_start_ns_) << ",\"dur\":" << Micros(duration)
         << ",\"args\":{\"vt\":" << JsonString(FormatVirtualTime(run_vt_ns_))
         << ",\"event\":" << run_event_ << "}}";
  }

  void Instant(const TraceEvent& e, Track track, int64_t display) {
    Begin();
    out_ << "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"" << TraceEventKindName(e.kind)
         << "\",\"name\":" << JsonString(InstantName(e)) << TrackFields(track)
         << ",\"ts\":" << Micros(display) << ",\"args\":" << Args(e) << "}";
  }

  // A short slice, so that a flow arrow can bind to it, nested in the task's run.
  void AnnotationSlice(const TraceEvent& e, Track track, int64_t display) {
    const int64_t duration = step_ns_ / 2;
    Begin();
    out_ << "{\"ph\":\"X\",\"cat\":" << JsonString(e.category)
         << ",\"name\":" << JsonString(e.category) << TrackFields(track)
         << ",\"ts\":" << Micros(display) << ",\"dur\":" << Micros(duration)
         << ",\"args\":" << Args(e) << "}";
    // Only a flow's start (phase 1) and end (phase 2) are arrow ends. Annotations on the
    // way (a hold, a retransmission: phase 0) name the flow in their args, nothing more.
    if (e.flow_id == 0 || (e.flow_phase != 1 && e.flow_phase != 2) ||
        !paired_flows_.count(e.flow_id)) {
      return;
    }
    // Strictly inside the slice, so the viewer binds it to this slice.
    Begin();
    out_ << "{\"ph\":\"" << (e.flow_phase == 1 ? "s" : "f") << "\""
         << (e.flow_phase == 1 ? "" : ",\"bp\":\"e\"") << ",\"cat\":\"flow\",\"name\":\"flow\""
         << ",\"id\":" << e.flow_id << TrackFields(track)
         << ",\"ts\":" << Micros(display + duration / 2) << "}";
  }

  std::string InstantName(const TraceEvent& e) const {
    switch (e.kind) {
      case TraceEventKind::kBlock: return absl::StrCat("block ", e.what);
      case TraceEventKind::kTimer: return absl::StrCat("timer ", e.number);
      case TraceEventKind::kDecision:
        return e.what[0] != '\0' ? absl::StrCat("decide ", e.what)
                                 : absl::StrCat("decide ", DecisionKindName(
                                                               static_cast<DecisionKind>(e.code)));
      default: return TraceEventKindName(e.kind);
    }
  }

  std::string Args(const TraceEvent& e) const {
    return absl::StrCat("{\"vt\":", JsonString(FormatVirtualTime(e.time_ns)),
                        ",\"event\":", e.index, ",\"text\":", JsonString(trace_.Describe(e)),
                        "}");
  }

  static std::string TrackFields(Track track) {
    return absl::StrCat(",\"pid\":", track.pid, ",\"tid\":", track.tid);
  }

  void WriteMetadata() {
    std::set<uint64_t> pids;
    for (const Track& track : used_tracks_) pids.insert(track.pid);
    for (uint64_t pid : pids) {
      const auto group = static_cast<GroupId>(pid - 1);
      Begin();
      out_ << "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":" << pid
           << ",\"tid\":0,\"args\":{\"name\":" << JsonString(trace_.GroupName(group)) << "}}";
    }
    for (const Track& track : used_tracks_) {
      std::string name;
      if (track.tid >= kHostTrackTid) {
        name = track.pid == 1 ? "loop (timers, clock)" : "host events";
      } else {
        name = absl::StrCat(trace_.TaskName(track.tid), " (task ", track.tid, ")");
      }
      Begin();
      out_ << "{\"ph\":\"M\",\"name\":\"thread_name\"" << TrackFields(track)
           << ",\"args\":{\"name\":" << JsonString(name) << "}}";
    }
  }

  void Begin() {
    if (!first_) out_ << ",\n";
    first_ = false;
  }

  const Trace& trace_;
  const int64_t step_ns_;
  std::ostream& out_;
  std::vector<int64_t> display_ns_;
  std::map<TaskId, GroupId> task_group_;
  std::set<uint64_t> paired_flows_;
  std::set<Track> used_tracks_;
  bool first_ = true;
  bool run_open_ = false;
  Track run_track_;
  int64_t run_start_ns_ = 0;
  int64_t run_vt_ns_ = 0;
  uint64_t run_event_ = 0;
};

}  // namespace

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += "\"";
  return out;
}

void WriteChromeTraceJson(const Trace& trace, const ChromeJsonOptions& options,
                          std::ostream& out) {
  JsonWriter(trace, options, out).Write();
}

}  // namespace dsim::internal
