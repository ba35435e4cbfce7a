// Traces: the text log, the Chrome/Perfetto JSON export, fingerprints and divergence.
#include "sim/trace.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "scheduler/mutex.h"
#include "scheduler/scheduler.h"
#include "scheduler/trace_sink.h"
#include "sim/internal/stream_hash.h"
#include "sim/simulation.h"
#include "tests/internal/mini_json.h"
#include "tests/testing/sim_net.h"

namespace dsim {
namespace {

using testing::Json;
using testing::JsonParser;

constexpr GroupId kClientHost = 1;
constexpr GroupId kServerHost = 2;

// A tiny "network": the client sends three messages; each is delivered to the server
// host by a timer callback after a latency the strategy picks, with a flow id linking
// the send to its delivery, as the real network layer will annotate them.
void BuildPingWorkload(Scheduler& scheduler, int* delivered) {
  scheduler.Spawn(
      "client",
      [&scheduler, delivered] {
        for (uint64_t flow = 1; flow <= 3; ++flow) {
          scheduler.Annotate({.category = "net.send",
                              .detail = absl::StrCat("ping ", flow),
                              .group = kClientHost,
                              .flow_id = flow,
                              .flow_phase = 1});
          const absl::Duration latency =
              absl::Microseconds(100 + scheduler.ChooseValue(900, "net.latency"));
          scheduler.AddTimer(
              scheduler.Now() + latency,
              [&scheduler, delivered, flow] {
                scheduler.Annotate({.category = "net.deliver",
                                    .detail = absl::StrCat("ping ", flow),
                                    .group = kServerHost,
                                    .flow_id = flow,
                                    .flow_phase = 2});
                ++*delivered;
              },
              kServerHost);
          dsim::SleepFor(absl::Milliseconds(1));
        }
      },
      SpawnOptions{.group = kClientHost});
}

// Several tasks contending for a mutex with yields: many schedule decisions.
void BuildContention(Scheduler& scheduler, Mutex* mu, int* counter) {
  for (int i = 0; i < 4; ++i) {
    scheduler.Spawn(absl::StrCat("worker-", i), [mu, counter] {
      for (int round = 0; round < 3; ++round) {
        MutexLock lock(mu);
        ++*counter;
        dsim::Yield();
      }
    });
  }
}

struct ContentionRun {
  uint64_t fingerprint;
  uint64_t events;
  std::string text;
};

ContentionRun RunContention(uint64_t seed, TraceOptions options = {.keep_all_events = true}) {
  Scheduler scheduler(SchedulerOptions{.seed = seed});
  Trace trace(&scheduler, options);
  Mutex mu;
  int counter = 0;
  BuildContention(scheduler, &mu, &counter);
  EXPECT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(counter, 12);
  return {trace.fingerprint(), trace.event_count(), trace.ToText()};
}

TEST(TraceText, HasOneLinePerEventWithVirtualTimeHostTaskAndWhere) {
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  Trace trace(&scheduler, TraceOptions{.keep_all_events = true});
  trace.NameGroup(kClientHost, "client-host");
  int delivered = 0;
  BuildPingWorkload(scheduler, &delivered);
  ASSERT_TRUE(scheduler.Run().ok());
  ASSERT_EQ(delivered, 3);

  const std::string text = trace.ToText();
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), trace.event_count() + 1);  // Plus the header.
  EXPECT_TRUE(absl::StrContains(lines[0], absl::StrFormat("fingerprint %016x", trace.fingerprint())));
  EXPECT_TRUE(absl::StrContains(text, "#0 +0.000000000s [client-host] task 1 \"client\" spawn"));
  EXPECT_TRUE(absl::StrContains(text, "[client-host] task 1 \"client\" note net.send: ping 1 [flow 1 start]"));
  EXPECT_TRUE(absl::StrContains(text, "[host 2] loop note net.deliver: ping 1 [flow 1 end]"));
  EXPECT_TRUE(absl::StrContains(text, "decide value \"net.latency\""));
  EXPECT_TRUE(absl::StrContains(text, "block in SleepUntil at trace_test.cc:"));
  EXPECT_TRUE(absl::StrContains(text, "+0.001000000s loop clock"));
  EXPECT_TRUE(absl::StrContains(text, "task 1 \"client\" finish"));
}

// Parsed Chrome trace, indexed for the checks below.
struct ChromeTrace {
  std::vector<Json> events;
  std::map<uint64_t, std::string> process_names;                       // pid -> name
  std::map<std::pair<uint64_t, uint64_t>, std::string> thread_names;  // (pid, tid) -> name
};

ChromeTrace ParseChrome(const std::string& json) {
  ChromeTrace out;
  std::optional<Json> root = JsonParser(json).Parse();
  EXPECT_TRUE(root.has_value()) << "not valid JSON:\n" << json.substr(0, 2000);
  if (!root.has_value()) return out;
  const Json* events = root->Find("traceEvents");
  EXPECT_TRUE(events != nullptr && events->type == Json::Type::kArray);
  if (events == nullptr) return out;
  for (const Json& e : events->items) {
    const auto pid = static_cast<uint64_t>(e.Num("pid"));
    const auto tid = static_cast<uint64_t>(e.Num("tid"));
    if (e.Str("ph") == "M" && e.Str("name") == "process_name") {
      out.process_names[pid] = e.Find("args")->Str("name");
    } else if (e.Str("ph") == "M" && e.Str("name") == "thread_name") {
      out.thread_names[{pid, tid}] = e.Find("args")->Str("name");
    } else {
      out.events.push_back(e);
    }
  }
  return out;
}

TEST(TraceChromeJson, IsValidJsonWithOneProcessPerHostAndOneThreadPerTask) {
  Scheduler scheduler(SchedulerOptions{.seed = 5});
  Trace trace(&scheduler, TraceOptions{.keep_all_events = true});
  trace.NameGroup(kServerHost, "server");
  int delivered = 0;
  BuildPingWorkload(scheduler, &delivered);
  ASSERT_TRUE(scheduler.Run().ok());

  ChromeTrace chrome = ParseChrome(trace.ToChromeJson());
  // pid = group + 1.
  EXPECT_EQ(chrome.process_names[kClientHost + 1], "host 1");
  EXPECT_EQ(chrome.process_names[kServerHost + 1], "server");
  EXPECT_EQ((chrome.thread_names[{kClientHost + 1, 1}]), "client (task 1)");
  std::set<std::string> phases;
  for (const Json& e : chrome.events) {
    phases.insert(e.Str("ph"));
    EXPECT_GE(e.Num("ts"), 0) << "every event has a timestamp";
    EXPECT_TRUE(chrome.thread_names.count({static_cast<uint64_t>(e.Num("pid")),
                                           static_cast<uint64_t>(e.Num("tid"))}))
        << "every track is named";
  }
  EXPECT_EQ(phases, (std::set<std::string>{"X", "i", "s", "f"}));
}

TEST(TraceChromeJson, FlowArrowsPairEachSendWithItsDeliveryInsideSlices) {
  Scheduler scheduler(SchedulerOptions{.seed = 9});
  Trace trace(&scheduler, TraceOptions{.keep_all_events = true});
  int delivered = 0;
  BuildPingWorkload(scheduler, &delivered);
  ASSERT_TRUE(scheduler.Run().ok());
  ChromeTrace chrome = ParseChrome(trace.ToChromeJson());

  using TrackKey = std::pair<uint64_t, uint64_t>;
  std::multimap<TrackKey, std::pair<double, double>> slices;  // [ts, ts + dur]
  for (const Json& e : chrome.events) {
    if (e.Str("ph") == "X") {
      slices.insert({{e.Num("pid"), e.Num("tid")}, {e.Num("ts"), e.Num("ts") + e.Num("dur")}});
    }
  }
  std::map<uint64_t, std::vector<const Json*>> flows;
  for (const Json& e : chrome.events) {
    if (e.Str("ph") != "s" && e.Str("ph") != "f") continue;
    flows[static_cast<uint64_t>(e.Num("id"))].push_back(&e);
    // Bound to an enclosing slice on its own track.
    bool enclosed = false;
    auto [begin, end] = slices.equal_range({e.Num("pid"), e.Num("tid")});
    for (auto it = begin; it != end; ++it) {
      enclosed |= it->second.first < e.Num("ts") && e.Num("ts") < it->second.second;
    }
    EXPECT_TRUE(enclosed) << "flow " << e.Num("id") << " phase " << e.Str("ph");
  }
  ASSERT_EQ(flows.size(), 3u);
  for (const auto& [id, ends] : flows) {
    ASSERT_EQ(ends.size(), 2u) << "flow " << id;
    EXPECT_EQ(ends[0]->Str("ph"), "s");
    EXPECT_EQ(ends[1]->Str("ph"), "f");
    EXPECT_EQ(ends[1]->Str("bp"), "e");
    EXPECT_LT(ends[0]->Num("ts"), ends[1]->Num("ts"));
    EXPECT_EQ(ends[0]->Num("pid"), kClientHost + 1);
    EXPECT_EQ(ends[1]->Num("pid"), kServerHost + 1);
  }
}

TEST(TraceChromeJson, SlicesOnOneTrackNestAndNeverPartlyOverlap) {
  Scheduler scheduler(SchedulerOptions{.seed = 11});
  Trace trace(&scheduler, TraceOptions{.keep_all_events = true});
  Mutex mu;
  int counter = 0;
  int delivered = 0;
  BuildContention(scheduler, &mu, &counter);
  BuildPingWorkload(scheduler, &delivered);
  ASSERT_TRUE(scheduler.Run().ok());
  ChromeTrace chrome = ParseChrome(trace.ToChromeJson());
  std::map<std::pair<double, double>, std::vector<std::pair<double, double>>> by_track;
  for (const Json& e : chrome.events) {
    if (e.Str("ph") != "X") continue;
    by_track[{e.Num("pid"), e.Num("tid")}].push_back({e.Num("ts"), e.Num("ts") + e.Num("dur")});
  }
  ASSERT_FALSE(by_track.empty());
  for (const auto& [track, slices] : by_track) {
    for (const auto& a : slices) {
      for (const auto& b : slices) {
        const bool disjoint = a.second <= b.first || b.second <= a.first;
        const bool nested = (a.first <= b.first && b.second <= a.second) ||
                            (b.first <= a.first && a.second <= b.second);
        EXPECT_TRUE(disjoint || nested) << "[" << a.first << "," << a.second << ") vs ["
                                        << b.first << "," << b.second << ")";
      }
    }
  }
}

TEST(TraceFingerprint, SameSeedGivesSameTraceAndFingerprint) {
  for (uint64_t seed : {1, 2, 3}) {
    const ContentionRun a = RunContention(seed);
    const ContentionRun b = RunContention(seed);
    EXPECT_EQ(a.text, b.text) << "seed " << seed;
    EXPECT_EQ(a.fingerprint, b.fingerprint) << "seed " << seed;
  }
}

TEST(TraceFingerprint, DiffersExactlyWhenTracesDiffer) {
  std::vector<ContentionRun> runs;
  for (uint64_t seed = 1; seed <= 8; ++seed) runs.push_back(RunContention(seed));
  std::set<std::string> distinct_texts;
  for (size_t i = 0; i < runs.size(); ++i) {
    distinct_texts.insert(runs[i].text);
    for (size_t j = i + 1; j < runs.size(); ++j) {
      EXPECT_EQ(runs[i].text == runs[j].text, runs[i].fingerprint == runs[j].fingerprint)
          << "seeds " << i + 1 << " and " << j + 1;
    }
  }
  EXPECT_GT(distinct_texts.size(), 1u) << "different seeds should explore different orders";
}

TEST(TraceFingerprint, IsTheSameOnAnotherThread) {
  const ContentionRun here = RunContention(4);
  ContentionRun there;
  std::thread([&] { there = RunContention(4); }).join();
  EXPECT_EQ(here.fingerprint, there.fingerprint);
  EXPECT_EQ(here.text, there.text);
}

TEST(TraceMemory, KeepsOnlyTheLastEventsButFingerprintsAll) {
  const ContentionRun full = RunContention(6);
  Scheduler scheduler(SchedulerOptions{.seed = 6});
  Trace trace(&scheduler, TraceOptions{.keep_last_events = 10});
  Mutex mu;
  int counter = 0;
  BuildContention(scheduler, &mu, &counter);
  ASSERT_TRUE(scheduler.Run().ok());
  EXPECT_EQ(trace.fingerprint(), full.fingerprint);
  EXPECT_EQ(trace.event_count(), full.events);
  ASSERT_EQ(trace.events().size(), 10u);
  EXPECT_FALSE(trace.complete());
  EXPECT_EQ(trace.events().back().index, full.events - 1);
  // The retained lines are the full trace's last ten.
  std::vector<std::string> full_lines = absl::StrSplit(full.text, '\n', absl::SkipEmpty());
  std::vector<std::string> tail(full_lines.end() - 10, full_lines.end());
  std::vector<std::string> kept = absl::StrSplit(trace.LastEventsText(10), '\n', absl::SkipEmpty());
  EXPECT_EQ(kept, tail);
}

// Runs a task that sleeps `first` ms, announces its next sleep, then sleeps `second` ms.
struct SleeperRun {
  std::unique_ptr<Scheduler> scheduler;
  std::unique_ptr<Trace> trace;
};

SleeperRun RunSleeper(int first_ms, int second_ms, bool extra_note = false) {
  SleeperRun run;
  run.scheduler = std::make_unique<Scheduler>(SchedulerOptions{.seed = 1});
  run.trace = std::make_unique<Trace>(run.scheduler.get(), TraceOptions{.keep_all_events = true});
  Scheduler* scheduler = run.scheduler.get();
  run.scheduler->Spawn("sleeper", [=] {
    dsim::SleepFor(absl::Milliseconds(first_ms));
    const std::string plan = absl::StrCat("next sleep ", second_ms, "ms");
    scheduler->Annotate({.category = "test.plan", .detail = plan});
    dsim::SleepFor(absl::Milliseconds(second_ms));
  });
  EXPECT_TRUE(run.scheduler->Run().ok());
  if (extra_note) run.scheduler->Annotate({.category = "test.extra"});
  run.trace->Detach();
  return run;
}

TEST(TraceDivergence, EqualStreamsHaveNoDivergence) {
  SleeperRun a = RunSleeper(1, 2);
  SleeperRun b = RunSleeper(1, 2);
  EXPECT_FALSE(FirstDivergence(*a.trace, *b.trace).has_value());
}

TEST(TraceDivergence, NamesTheFirstDifferingEventItsTimeAndTask) {
  SleeperRun a = RunSleeper(1, 2);
  SleeperRun b = RunSleeper(1, 3);
  std::optional<TraceDivergence> d = FirstDivergence(*a.trace, *b.trace);
  ASSERT_TRUE(d.has_value());
  // Find the first differing line independently.
  std::vector<std::string> la = absl::StrSplit(a.trace->ToText(), '\n', absl::SkipEmpty());
  std::vector<std::string> lb = absl::StrSplit(b.trace->ToText(), '\n', absl::SkipEmpty());
  size_t first_diff = 1;  // Skip the headers (they hold the fingerprints).
  while (first_diff < la.size() && first_diff < lb.size() && la[first_diff] == lb[first_diff]) {
    ++first_diff;
  }
  EXPECT_TRUE(d->located);
  EXPECT_EQ(d->index, first_diff - 1);
  EXPECT_EQ(d->first, la[first_diff]);
  EXPECT_EQ(d->second, lb[first_diff]);
  EXPECT_EQ(d->task_name, "sleeper");
  EXPECT_EQ(d->time_ns, 1000000);  // The announcement, at +1ms.
  EXPECT_TRUE(absl::StrContains(d->first, "next sleep 2ms"));
  EXPECT_TRUE(absl::StrContains(d->ToString(), "first divergent event: #"));
}

TEST(TraceDivergence, AStreamThatIsAPrefixDivergesWhereItEnds) {
  SleeperRun a = RunSleeper(1, 2);
  SleeperRun b = RunSleeper(1, 2, /*extra_note=*/true);
  std::optional<TraceDivergence> d = FirstDivergence(*a.trace, *b.trace);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->index, a.trace->event_count());
  EXPECT_EQ(d->first, "(stream ended)");
  EXPECT_TRUE(absl::StrContains(d->second, "note test.extra"));
}

TEST(TraceFile, WritesJsonForJsonPathsAndTextOtherwise) {
  Scheduler scheduler(SchedulerOptions{.seed = 2});
  Trace trace(&scheduler, TraceOptions{.keep_all_events = true});
  int delivered = 0;
  BuildPingWorkload(scheduler, &delivered);
  ASSERT_TRUE(scheduler.Run().ok());
  const std::string dir = ::testing::TempDir();
  ASSERT_TRUE(trace.WriteFile(dir + "/t.json").ok());
  ASSERT_TRUE(trace.WriteFile(dir + "/t.txt").ok());
  std::ifstream json(dir + "/t.json");
  std::ifstream text(dir + "/t.txt");
  std::string json_body((std::istreambuf_iterator<char>(json)), std::istreambuf_iterator<char>());
  std::string text_body((std::istreambuf_iterator<char>(text)), std::istreambuf_iterator<char>());
  EXPECT_EQ(json_body, trace.ToChromeJson());
  EXPECT_EQ(text_body, trace.ToText());
  EXPECT_FALSE(trace.WriteFile("/nonexistent-dir/t.json").ok());
}

}  // namespace
}  // namespace dsim

// ---- Lazy annotations: recorded as binary words, formatted only when read -------------

namespace dsim {
namespace {

int g_format_calls = 0;

void FormatPair(const AnnotationPayload& payload, std::string* out) {
  ++g_format_calls;
  absl::StrAppend(out, payload.text, " ", payload.words[0], "/", payload.words[1]);
}

// Runs one task that annotates `words` lazily, then `eager` as plain text.
struct LazyRun {
  explicit LazyRun(uint64_t second_word, size_t keep = 1000)
      : trace(&scheduler, TraceOptions{.keep_last_events = keep}) {
    scheduler.Spawn("t", [this, second_word] {
      Annotation lazy;
      lazy.category = "test.lazy";
      lazy.format = FormatPair;
      lazy.payload.text = "pair";
      lazy.payload.word_count = 2;
      lazy.payload.words[0] = 7;
      lazy.payload.words[1] = second_word;
      scheduler.Annotate(lazy);
      scheduler.Annotate({.category = "test.eager", .detail = "plain text"});
    });
    scheduler.Run();
  }
  Scheduler scheduler;
  Trace trace;
};

TEST(TraceLazyAnnotation, IsFormattedOnlyWhenReadAndReadsLikeEagerText) {
  g_format_calls = 0;
  LazyRun run(9);
  EXPECT_EQ(g_format_calls, 0) << "recording must not format";
  const std::string text = run.trace.ToText();
  EXPECT_GE(g_format_calls, 1);
  EXPECT_TRUE(absl::StrContains(text, "note test.lazy: pair 7/9")) << text;
  EXPECT_TRUE(absl::StrContains(text, "note test.eager: plain text")) << text;
  bool found = false;
  for (const TraceEvent& e : run.trace.events()) {
    if (e.category == "test.lazy") {
      EXPECT_EQ(e.detail, "pair 7/9");
      found = true;
    }
  }
  EXPECT_TRUE(found);
}

TEST(TraceLazyAnnotation, PayloadWordsEnterTheFingerprint) {
  EXPECT_EQ(LazyRun(9).trace.fingerprint(), LazyRun(9).trace.fingerprint());
  EXPECT_NE(LazyRun(9).trace.fingerprint(), LazyRun(10).trace.fingerprint());
}

TEST(TraceLazyAnnotation, EagerTextsOfOverwrittenEventsAreDropped) {
  LazyRun run(9, /*keep=*/2);  // Only the last two events stay.
  ASSERT_EQ(run.trace.events().size(), 2u);
  EXPECT_EQ(run.trace.events().back().detail, "");  // The finish event.
  std::string last = run.trace.LastEventsText(2);
  EXPECT_TRUE(absl::StrContains(last, "test.eager: plain text")) << last;
}

}  // namespace
}  // namespace dsim

namespace dsim {
namespace {

// The fingerprint must not depend on where the source sits: __builtin_FILE() gives
// "tests/x.cc" under Bazel, "/home/me/src/tests/x.cc" elsewhere.
TEST(TraceFingerprint, DoesNotDependOnTheSourceDirectory) {
  auto fingerprint_with = [](const char* file) {
    Scheduler scheduler;
    Trace trace(&scheduler);
    const TaskView task{1, "t", kNoGroup, false};
    trace.OnBlock(task, "Mutex::Lock", SourceLocation::Current(file, 42));
    return trace.fingerprint();
  };
  EXPECT_EQ(fingerprint_with("tests/kv_test.cc"), fingerprint_with("/home/me/src/tests/kv_test.cc"));
  EXPECT_EQ(fingerprint_with("kv_test.cc"), fingerprint_with("/proc/self/cwd/tests/kv_test.cc"));
  // The file and the line still count.
  EXPECT_NE(fingerprint_with("tests/kv_test.cc"), fingerprint_with("tests/other_test.cc"));
}

}  // namespace
}  // namespace dsim

namespace dsim {
namespace {

// Every flow in the Perfetto JSON of a run with every kind of fault: one start, one end,
// the start first. (Retransmissions and holds once added a second end, sometimes before
// the start.) And every applied latency tail leaves an annotation.
TEST(TraceFlows, EveryFlowHasOneStartAndOneEndInOrderUnderFaults) {
  SimulationOptions options{.seed = 11};
  options.trace.keep_all_events = true;
  options.faults.link.latency = LatencyModel::Uniform(absl::Microseconds(100), absl::Milliseconds(1));
  options.faults.link.latency->tail_probability = 0.2;
  options.faults.link.latency->tail_min = absl::Milliseconds(50);
  options.faults.link.latency->tail_max = absl::Milliseconds(130);
  options.faults.link.segment_loss_probability = 0.2;
  options.faults.link.datagram_loss_probability = 0.1;
  options.faults.link.datagram_duplicate_probability = 0.1;
  options.faults.link.datagram_reorder_probability = 0.1;
  Simulation sim(options);
  using testing::ListenOn;
  Host& server = sim.AddHost({.name = "server", .start = [] {
    const int listener = ListenOn("10.0.0.1", 80);
    const int conn = Accept(listener, nullptr, nullptr);
    testing::ReadAll(conn);
    Close(conn);
    const int udp = testing::UdpBound("10.0.0.1", 90);
    SetReadDeadline(udp, dsim::Now() + absl::Seconds(5));
    while (testing::UdpReceive(udp).has_value()) {}
  }, .addresses = {"10.0.0.1"}});
  Host& client = sim.AddHost({.name = "client", .start = [] {
    dsim::SleepFor(absl::Milliseconds(1));
    const int fd = testing::ConnectTo("10.0.0.1", 80);
    testing::WriteAll(fd, std::string(20000, 'x'));
    Close(fd);
    const int udp = testing::UdpBound("10.0.0.2", 91);
    for (int i = 0; i < 40; ++i) testing::UdpSend(udp, "10.0.0.1", 90, absl::StrCat(i));
  }, .start_daemon = false, .addresses = {"10.0.0.2"}});
  sim.Spawn("chaos", [&] {
    sim.Hold(client.id(), server.id());  // Before the client's first packet.
    dsim::SleepFor(absl::Milliseconds(30));
    sim.Release(client.id(), server.id());
  });
  ASSERT_TRUE(sim.RunFor(absl::Seconds(30)).ok());

  int tails = 0, retransmits = 0;
  for (const TraceEvent& e : sim.trace().events()) {
    if (e.category == "fault.tail") ++tails;
    if (e.category == "fault.retransmit") ++retransmits;
  }
  EXPECT_GT(tails, 0) << "applied latency tails are annotated";
  EXPECT_GT(retransmits, 0);

  ChromeTrace chrome = ParseChrome(sim.trace().ToChromeJson());
  std::map<uint64_t, std::vector<std::pair<std::string, double>>> flows;
  for (const Json& e : chrome.events) {
    if (e.Str("ph") == "s" || e.Str("ph") == "f" || e.Str("ph") == "t") {
      flows[static_cast<uint64_t>(e.Num("id"))].push_back({e.Str("ph"), e.Num("ts")});
    }
  }
  ASSERT_GT(flows.size(), 20u);
  for (const auto& [id, ends] : flows) {
    ASSERT_EQ(ends.size(), 2u) << "flow " << id;
    EXPECT_EQ(ends[0].first, "s") << "flow " << id;
    EXPECT_EQ(ends[1].first, "f") << "flow " << id;
    EXPECT_LE(ends[0].second, ends[1].second) << "flow " << id;
  }
}

// ---- What the fingerprint folds -----------------------------------------------------

// One small run; `mutation` (1..N) changes exactly one field of one event (0: none).
struct MutantRun {
  uint64_t fingerprint;
  std::string text;
};

constexpr AnnotationKind kTestRaw("test.raw", FormatPair);
constexpr AnnotationKind kTestRawB("test.raw-b", FormatPair);

MutantRun RunMutant(int mutation) {
  auto m = [mutation](int k) { return mutation == k; };
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  Trace trace(&scheduler, TraceOptions{.keep_all_events = true});
  scheduler.Spawn(m(1) ? "worker-b" : "worker", [&] {
    // A raw annotation, as the socket and network layers write theirs.
    const AnnotationKind& kind = m(18) ? kTestRawB : kTestRaw;
    TraceSink* sink = scheduler.SoleTraceSink(kind);
    EXPECT_NE(sink, nullptr) << "the trace alone listens: raw annotations go straight in";
    if (sink != nullptr) {
      uint64_t* words = sink->BeginAnnotation(kind, 1, CurrentTaskIdOf(scheduler),
                                              scheduler.NowNanos(), m(20) ? 12 : 11,
                                              1, m(19) ? "raw-b" : "raw");
      words[0] = m(17) ? 6 : 5;
      words[1] = 6;
      sink->EndAnnotation(words, 2);
      // The same kind of record in one go (as socket calls write theirs); the slow path
      // first teaches the sink the text.
      for (int i = 0; i < 2; ++i) {
        const char* text = m(27) ? "two-b" : "two";
        const uint64_t a = m(25) ? 9 : 8, b = m(26) ? uint64_t{1} << 40 : 7;
        if (!sink->TryAnnotateTwoWords(kind, 1, CurrentTaskIdOf(scheduler), scheduler.NowNanos(),
                                       text, a, b)) {
          EXPECT_EQ(i, 0) << "the second time, the fast path serves";
          uint64_t* two = sink->BeginAnnotation(kind, 1, CurrentTaskIdOf(scheduler),
                                                scheduler.NowNanos(), 0, 0, text);
          two[0] = a;
          two[1] = b;
          sink->EndAnnotation(two, 2);
        }
      }
    }
    Annotation lazy;
    lazy.category = m(2) ? "test.y" : "test.x";
    lazy.format = FormatPair;
    lazy.payload.text = m(3) ? "other" : "pair";
    lazy.payload.word_count = m(4) ? 3 : 2;
    lazy.payload.words[0] = 7;
    lazy.payload.words[1] = m(5) ? 9 : 8;
    lazy.payload.words[2] = 0;
    lazy.group = m(6) ? 2 : 1;
    lazy.flow_id = m(7) ? 5 : 4;
    lazy.flow_phase = m(8) ? 2 : 1;
    scheduler.Annotate(lazy);
    scheduler.Annotate({.category = "test.eager", .detail = m(9) ? "text!" : "text"});
    // A flow's end that repeats its start's payload (a delivery): a reference.
    Annotation end;
    end.category = "test.x";
    end.format = FormatPair;
    end.group = 1;
    end.flow_id = m(24) ? 5 : 4;
    end.flow_phase = 2;
    end.repeats_flow_start = true;
    scheduler.Annotate(end);
    dsim::SleepFor(absl::Nanoseconds(m(10) ? 101 : 100));  // Clock and timer events.
    scheduler.ChooseValue(m(11) ? 5 : 4, m(12) ? "draw-b" : "draw");
    if (m(13)) dsim::Yield();  // One more step, no other event.
    if (m(14)) {
      dsim::SleepFor(absl::Nanoseconds(1));  // The same call at another line.
    } else {
      dsim::SleepFor(absl::Nanoseconds(1));
    }
    // More steps without an event than one record header counts (a kContinues record).
    const int points = m(21) ? int{TraceSink::kMaxContinues} : m(22) ? 70000 : 0;
    for (int i = 0; i < points; ++i) dsim::SchedulingPoint();
    if (m(23)) {  // A described location instead of a file and line.
      dsim::SleepFor(absl::Nanoseconds(1), SourceLocation::Described("Queue::Pop in q+0x1c"));
    } else {
      dsim::SleepFor(absl::Nanoseconds(1), SourceLocation::Current("q.cc", 0));
    }
  }, SpawnOptions{.daemon = m(15)});
  if (m(16)) scheduler.Spawn("second", [] {});  // One more task, picks among two.
  EXPECT_TRUE(scheduler.Run().ok());
  return {trace.fingerprint(), trace.ToText()};
}

// The fingerprint folds only what other folded content does not imply (time only when
// it changes, no index, picks without events): it must still change whenever any
// field of any event changes, and also when only the number of steps does.
TEST(TraceFingerprint, ChangesWhenAnyFieldOfAnyEventChanges) {
  // 1-16: annotations through Scheduler::Annotate, scheduler events; 17-20: a raw
  // annotation's payload word, kind, text and flow id; 21-22: steps past a header's
  // count; 23: a described location; 24: the flow a repeated payload refers to; 25-27:
  // a two-word record's words and text (TraceSink::TryAnnotateTwoWords).
  constexpr int kMutations = 27;
  const MutantRun base = RunMutant(0);
  EXPECT_EQ(RunMutant(0).fingerprint, base.fingerprint);
  std::set<uint64_t> fingerprints = {base.fingerprint};
  for (int k = 1; k <= kMutations; ++k) {
    const MutantRun run = RunMutant(k);
    EXPECT_NE(run.fingerprint, base.fingerprint) << "mutation " << k;
    fingerprints.insert(run.fingerprint);
    // A continuation of the running task is a step, not an event (13), and FormatPair
    // shows two payload words, not the third (4): same text, different fingerprints.
    if (k == 4 || k == 13 || k == 21 || k == 22) {
      EXPECT_EQ(run.text.substr(run.text.find('\n')), base.text.substr(base.text.find('\n')));
    } else {
      EXPECT_NE(run.text.substr(run.text.find('\n')), base.text.substr(base.text.find('\n')))
          << "mutation " << k << " should change an event";
    }
  }
  EXPECT_EQ(fingerprints.size(), kMutations + 1u) << "every mutation its own fingerprint";
}

// A task that goes on running after a scheduling point shows one run, and task picks
// are folded, not listed: the text keeps task switches and value draws.
TEST(TraceEvents, RunsAreTaskSwitchesAndPicksAreNotEvents) {
  Scheduler scheduler(SchedulerOptions{.seed = 5});
  Trace trace(&scheduler, TraceOptions{.keep_all_events = true});
  scheduler.Spawn("a", [] {
    for (int i = 0; i < 3; ++i) dsim::Yield();
  });
  scheduler.Spawn("b", [] {
    for (int i = 0; i < 3; ++i) dsim::Yield();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  TaskId previous_run = kNoTask;
  bool blocked_or_finished = true;
  for (const TraceEvent& e : trace.events()) {
    EXPECT_FALSE(e.kind == TraceEventKind::kDecision &&
                 static_cast<DecisionKind>(e.code) == DecisionKind::kNextTask)
        << trace.Describe(e);
    if (e.kind == TraceEventKind::kDispatch) {
      EXPECT_TRUE(e.task != previous_run || blocked_or_finished) << trace.Describe(e);
      previous_run = e.task;
      blocked_or_finished = false;
    }
    if (e.kind == TraceEventKind::kBlock || e.kind == TraceEventKind::kFinish) {
      blocked_or_finished = blocked_or_finished || e.task == previous_run;
    }
  }
  EXPECT_NE(trace.ToText().find("run"), std::string::npos);
}

// ---- The block hash ------------------------------------------------------------------

// 16 bytes written as FIPS-197 prints them ("00102030...") as two little-endian words.
internal::Block128 BlockFromHex(const char* hex) {
  internal::Block128 out;
  for (int i = 0; i < 16; ++i) {
    const uint64_t byte = std::stoul(std::string(hex + 2 * i, 2), nullptr, 16);
    (i < 8 ? out.lo : out.hi) |= byte << (8 * (i & 7));
  }
  return out;
}

// FIPS-197 appendix C.1 (AES-128), round 1: the start of round 2 is the round applied
// to the start of round 1 with round 1's key. Both the portable round and the one in use
// (AES-NI where the CPU has it) must give it, and agree on any input.
TEST(TraceBlockHash, TheRoundIsAesAndThePortableRoundAgreesWithTheHardware) {
  const internal::Block128 start = BlockFromHex("00102030405060708090a0b0c0d0e0f0");
  const internal::Block128 key = BlockFromHex("d6aa74fdd2af72fadaa678f1d6ab76fe");
  const internal::Block128 next = BlockFromHex("89d810e8855ace682d1843d8cb128fe4");
  EXPECT_EQ(internal::AesRoundPortable(start, key), next);
  EXPECT_EQ(internal::AesRound(start, key), next);
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int i = 0; i < 1000; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const internal::Block128 s{x, x * 31 + 7}, k{x >> 7, ~x};
    ASSERT_EQ(internal::AesRound(s, k), internal::AesRoundPortable(s, k)) << i;
  }
}

// AbsorbPairs (AES-NI, eight pairs per step, where available) and its portable twin
// compute the documented lanes: pair j into lane A (even j) or B (odd j), two rounds
// each, from any start.
TEST(TraceBlockHash, AbsorbPairsIsTwoRoundsPerPairAlternatingLanes) {
  alignas(16) uint64_t words[2 * 23];
  for (int i = 0; i < 2 * 23; ++i) words[i] = 0x0123456789abcdefULL * (i + 1);
  const internal::Block128 round_key{0x452821e638d01377ULL, 0xbe5466cf34e90c6cULL};
  for (size_t begin : {0, 1, 2, 5}) {
    for (size_t end = begin; end <= 23; ++end) {
      internal::HashLanes expected, got, portable;
      internal::AbsorbPairs(&got, words, begin, end);
      internal::AbsorbPairsPortable(&portable, words, begin, end);
      ASSERT_EQ(portable.a, got.a) << begin << " " << end;
      ASSERT_EQ(portable.b, got.b) << begin << " " << end;
      for (size_t j = begin; j < end; ++j) {
        internal::Block128& lane = (j & 1) == 0 ? expected.a : expected.b;
        lane = internal::AesRoundPortable(
            internal::AesRoundPortable(lane, {words[2 * j], words[2 * j + 1]}), round_key);
      }
      ASSERT_EQ(got.a, expected.a) << begin << " " << end;
      ASSERT_EQ(got.b, expected.b) << begin << " " << end;
    }
  }
  // AbsorbBlock: the pairs, then an odd last word as the pair (word, kOddWordPad).
  for (size_t n = 0; n <= 2 * 23; ++n) {
    internal::HashLanes expected, got;
    internal::AbsorbBlock(&got, words, n);
    internal::AbsorbPairsPortable(&expected, words, 0, n / 2);
    if (n % 2 == 1) {
      internal::Block128& lane = (n / 2) % 2 == 0 ? expected.a : expected.b;
      lane = internal::AesRoundPortable(
          internal::AesRoundPortable(lane, {words[n - 1], internal::kOddWordPad}), round_key);
    }
    ASSERT_EQ(got.a, expected.a) << n;
    ASSERT_EQ(got.b, expected.b) << n;
  }
}

// Changing any one word (any bit) of a block changes the finished hash.
TEST(TraceBlockHash, AnyOneWordChangedChangesTheHash) {
  alignas(16) uint64_t words[37];
  for (int i = 0; i < 37; ++i) words[i] = static_cast<uint64_t>(i) * 3;
  auto hash = [&words](size_t n) {
    internal::HashLanes lanes;
    internal::AbsorbBlock(&lanes, words, n);
    return internal::FinishHash(lanes, 1, n);
  };
  std::set<uint64_t> seen;
  for (size_t n : {36, 37}) {
    const uint64_t base = hash(n);
    seen.insert(base);
    for (size_t i = 0; i < n; ++i) {
      for (int bit : {0, 13, 63}) {
        words[i] ^= uint64_t{1} << bit;
        const uint64_t mutated = hash(n);
        words[i] ^= uint64_t{1} << bit;
        EXPECT_NE(mutated, base) << n << " " << i << " " << bit;
        seen.insert(mutated);
      }
    }
  }
  EXPECT_EQ(seen.size(), 2u + 3u * (36 + 37)) << "every change its own value";
  // Order counts: swapping two different words (within a pair, across pairs, across
  // lanes) changes it too.
  const uint64_t base = hash(37);
  for (size_t i = 0; i + 1 < 37; ++i) {
    for (size_t j : {i + 1, i + 2, i + 3}) {
      if (j >= 37) continue;
      std::swap(words[i], words[j]);
      EXPECT_NE(hash(37), base) << i << " " << j;
      std::swap(words[i], words[j]);
    }
  }
}

// Packets travel in a trace as a few words; formatting them gives ToString()'s text.
TEST(TracePacketWords, FormatLikeToStringForEveryLayout) {
  auto endpoint = [](const char* address, uint16_t port) {
    return Endpoint{*IpAddress::Parse(address), port};
  };
  std::vector<Packet> packets(4);
  packets[0].kind = Packet::Kind::kUdp;
  packets[0].source = endpoint("10.0.0.2", 40000);
  packets[0].destination = endpoint("10.0.0.1", 7);
  packets[0].payload = "12345";
  packets[1] = packets[0];
  packets[1].kind = Packet::Kind::kTcp;
  packets[1].flags = Packet::kAck;
  packets[1].sequence = 1234567;
  packets[1].acknowledgment = 89;
  packets[1].window_bytes = 131072;
  packets[2] = packets[1];
  packets[2].acknowledgment = 0;
  packets[3] = packets[1];
  packets[3].source = endpoint("fd00::2", 40000);
  packets[3].destination = endpoint("fd00::1", 80);
  const int expected_words[] = {3, 5, 4, 8};
  for (size_t i = 0; i < packets.size(); ++i) {
    AnnotationPayload payload;
    payload.word_count = static_cast<uint8_t>(packets[i].ToTraceWords(payload.words));
    EXPECT_EQ(payload.word_count, expected_words[i]) << packets[i].ToString();
    std::string text;
    Packet::FormatTraceWords(payload, &text);
    EXPECT_EQ(text, packets[i].ToString());
  }
}

// Categories are cached by address: a buffer reused with other text at the same
// address and size must still give the other category (and fingerprint).
TEST(TraceCategories, AReusedBufferWithNewTextIsANewCategory) {
  Scheduler scheduler;
  Trace trace(&scheduler, TraceOptions{.keep_all_events = true});
  std::vector<std::string> expected;
  scheduler.Spawn("t", [&] {
    for (std::string buffer : {std::string("t.ab"), std::string("test.category-a"),
                               std::string("test.a-rather-long-category")}) {
      for (size_t position : {size_t{0}, buffer.size() / 2, buffer.size() - 1}) {
        scheduler.Annotate({.category = buffer});
        expected.push_back(buffer);
        buffer[position] = 'X';
        scheduler.Annotate({.category = buffer});
        expected.push_back(buffer);
      }
    }
  });
  ASSERT_TRUE(scheduler.Run().ok());
  std::vector<std::string> seen;
  for (const TraceEvent& e : trace.events()) {
    if (e.kind == TraceEventKind::kAnnotation) seen.push_back(e.category);
  }
  EXPECT_EQ(seen, expected);
}

}  // namespace
}  // namespace dsim

namespace dsim {
namespace {

// ---- The trace sink: raw paths and listeners record the same -------------------------

class NoListener final : public SchedulerListener {};

struct EchoRun {
  uint64_t fingerprint;
  uint64_t events;
  std::string text;
  uint64_t second_fingerprint = 0;  // A second trace's, when asked for.
  std::string second_text;
};

// UDP and TCP echo through a Simulation, as the benchmarks run it: socket calls and
// packets take the raw path when the trace alone listens. `listener` adds a general
// listener (every annotation is then built and sent to all); `second_trace` attaches a
// second trace, which can only listen.
EchoRun RunEcho(bool listener, bool second_trace) {
  SimulationOptions options{.seed = 5};
  options.trace.keep_all_events = true;
  Simulation sim(options);
  NoListener quiet;
  if (listener) sim.scheduler().AddListener(&quiet);
  std::unique_ptr<Trace> second;
  if (second_trace) {
    second = std::make_unique<Trace>(&sim.scheduler(), TraceOptions{.keep_all_events = true});
  }
  using namespace testing;
  sim.AddHost({.name = "server", .start = [] {
    const int udp = UdpBound("10.0.0.1", 90);
    const int listener_fd = ListenOn("10.0.0.1", 80);
    for (int i = 0; i < 5; ++i) {
      std::optional<std::string> got = UdpReceive(udp);
      if (got.has_value()) UdpSend(udp, "10.0.0.2", 91, *got);
    }
    const int conn = Accept(listener_fd, nullptr, nullptr);
    WriteAll(conn, ReadAll(conn));
    Close(conn);
  }, .addresses = {"10.0.0.1"}});
  sim.AddHost({.name = "client", .start = [] {
    const int udp = UdpBound("10.0.0.2", 91);
    for (int i = 0; i < 5; ++i) {
      UdpSend(udp, "10.0.0.1", 90, absl::StrCat("ping ", i));
      UdpReceive(udp);
    }
    const int fd = ConnectTo("10.0.0.1", 80);
    WriteAll(fd, std::string(3000, 'x'));
    Shutdown(fd, SHUT_WR);
    ReadAll(fd);
    Close(fd);
  }, .start_daemon = false, .addresses = {"10.0.0.2"}});
  EXPECT_TRUE(sim.RunFor(absl::Seconds(10)).ok());
  if (listener) sim.scheduler().RemoveListener(&quiet);
  EchoRun run{sim.trace().fingerprint(), sim.trace().event_count(), sim.trace().ToText()};
  if (second != nullptr) {
    // The same events (the simulation names hosts only in its own trace).
    auto events_of = [](const Trace& trace) {
      std::string out;
      for (const TraceEvent& e : trace.events()) {
        absl::StrAppend(&out, e.index, " ", e.time_ns, " ", e.group, " ", e.task, " ",
                        TraceEventKindName(e.kind), " ", e.category, " ", e.detail, " ",
                        e.hash, "\n");
      }
      return out;
    };
    run.second_fingerprint = second->fingerprint();
    run.second_text = events_of(*second);
    run.text = events_of(sim.trace());
    second->Detach();
  }
  return run;
}

TEST(TraceSinkPaths, RawAnnotationsRecordWhatListenersWouldHear) {
  const EchoRun raw = RunEcho(/*listener=*/false, /*second_trace=*/false);
  const EchoRun heard = RunEcho(/*listener=*/true, /*second_trace=*/false);
  EXPECT_GT(raw.events, 100u);
  EXPECT_TRUE(absl::StrContains(raw.text, "socket.call: Sendto(")) << raw.text.substr(0, 2000);
  EXPECT_TRUE(absl::StrContains(raw.text, "net.deliver: udp 10.0.0.2:91->10.0.0.1:90 len=6"))
      << raw.text.substr(0, 2000);
  EXPECT_TRUE(absl::StrContains(raw.text, "net.send: tcp 10.0.0.2:"));
  // A delivery shows its send's packet (the record refers to the send).
  EXPECT_TRUE(absl::StrContains(
      raw.text, "net.deliver: udp 10.0.0.1:90->10.0.0.2:91 len=6 [flow 10 end]"));
  EXPECT_EQ(raw.text, heard.text);
  EXPECT_EQ(raw.fingerprint, heard.fingerprint);
}

TEST(TraceSinkPaths, ASecondTraceListensAndRecordsTheSame) {
  const EchoRun run = RunEcho(/*listener=*/false, /*second_trace=*/true);
  EXPECT_EQ(run.second_fingerprint, run.fingerprint);
  EXPECT_EQ(run.second_text, run.text);
}

// Many blocks through a small ring: the retained events, their per-event hashes and the
// fingerprint are those of a trace that kept everything.
// Records hold no time: an event's time is the clock's as the kClock records before it
// moved it (from the clock when the trace was attached). Every event must read the time
// the scheduler had when it happened, in complete traces and in rings, also for the
// first records of a block (a block remembers the clock it began at) and for a trace
// attached after the clock has moved.
class ClockLog final : public SchedulerListener {
 public:
  explicit ClockLog(Scheduler* scheduler) : scheduler_(scheduler) {}
  void OnDispatch(const TaskView&) override { times.push_back(scheduler_->NowNanos()); }
  void OnClockAdvanced(absl::Time from, absl::Time to) override {
    clocks.emplace_back(absl::ToInt64Nanoseconds(from - Scheduler::Epoch()),
                        absl::ToInt64Nanoseconds(to - Scheduler::Epoch()));
  }
  std::vector<int64_t> times;  // Of each task switch.
  std::vector<std::pair<int64_t, int64_t>> clocks;

 private:
  Scheduler* scheduler_;
};

TEST(TraceTime, EveryEventReadsTheClockOfItsMomentAcrossBlocks) {
  for (const TraceOptions& options :
       {TraceOptions{.keep_all_events = true}, TraceOptions{.keep_last_events = 50}}) {
    Scheduler scheduler(SchedulerOptions{.seed = 4});
    ClockLog log(&scheduler);
    scheduler.Spawn("early", [] { dsim::SleepFor(absl::Microseconds(7)); });
    ASSERT_TRUE(scheduler.RunFor(absl::Microseconds(5)).ok());  // The clock moves first.
    Trace trace(&scheduler, options);
    scheduler.AddListener(&log);
    for (int t = 0; t < 3; ++t) {
      scheduler.Spawn(absl::StrCat("w", t), [t] {
        for (int i = 0; i < 300; ++i) dsim::SleepFor(absl::Nanoseconds(1 + (i * 7 + t) % 5));
      });
    }
    ASSERT_TRUE(scheduler.Run().ok());
    ASSERT_GT(trace.event_count(), 2000u) << "many blocks";
    size_t clock = 0, dispatch = 0;
    const uint64_t first = trace.events().front().index;
    int64_t now = -1;
    for (const TraceEvent& e : trace.events()) {
      if (e.kind == TraceEventKind::kClock) {
        // The listener heard every move; a ring starts part-way (moves only go forward).
        while (clock < log.clocks.size() && log.clocks[clock].second < e.time_ns) ++clock;
        ASSERT_LT(clock, log.clocks.size());
        if (now >= 0) {
          EXPECT_EQ(static_cast<int64_t>(e.number), now) << trace.Describe(e);
        }
        EXPECT_EQ(static_cast<int64_t>(e.number), log.clocks[clock].first) << trace.Describe(e);
        EXPECT_EQ(e.time_ns, log.clocks[clock].second) << trace.Describe(e);
        ++clock;
      } else if (now >= 0) {
        EXPECT_EQ(e.time_ns, now) << trace.Describe(e);
      }
      if (e.kind == TraceEventKind::kDispatch && first == 0) {
        ASSERT_LT(dispatch, log.times.size());
        EXPECT_EQ(e.time_ns, log.times[dispatch++]) << trace.Describe(e);
      }
      now = e.time_ns;
    }
    EXPECT_EQ(clock, log.clocks.size());
    if (first == 0) {
      EXPECT_EQ(trace.events().front().time_ns, 5000) << "the clock when the trace began";
      EXPECT_EQ(dispatch, log.times.size());
    }
    scheduler.RemoveListener(&log);
  }
}

TEST(TraceMemory, ARingThatWrapsManyBlocksKeepsTheLastEventsExactly) {
  auto run = [](TraceOptions options, std::vector<TraceEvent>* events) {
    Scheduler scheduler(SchedulerOptions{.seed = 9});
    Trace trace(&scheduler, options);
    Mutex mu;
    for (int t = 0; t < 3; ++t) {
      scheduler.Spawn(absl::StrCat("w", t), [&] {
        for (int i = 0; i < 400; ++i) {
          MutexLock lock(&mu);
          scheduler.Annotate({.category = "test.step", .detail = absl::StrCat(i)});
          dsim::Yield();
        }
      });
    }
    EXPECT_TRUE(scheduler.Run().ok());
    *events = std::vector<TraceEvent>(trace.events().begin(), trace.events().end());
    return std::make_pair(trace.fingerprint(), trace.event_count());
  };
  std::vector<TraceEvent> all, last;
  const auto full = run(TraceOptions{.keep_all_events = true}, &all);
  const auto ring = run(TraceOptions{.keep_last_events = 37}, &last);
  EXPECT_EQ(full, ring);
  ASSERT_GT(all.size(), 3000u);
  ASSERT_EQ(last.size(), 37u);
  for (size_t i = 0; i < last.size(); ++i) {
    const TraceEvent& expected = all[all.size() - last.size() + i];
    EXPECT_EQ(last[i].index, expected.index);
    EXPECT_EQ(last[i].hash, expected.hash) << "event " << expected.index;
    EXPECT_EQ(last[i].detail, expected.detail);
  }
  // Per-event hashes tell events apart and change along the stream.
  std::set<uint64_t> hashes;
  for (const TraceEvent& e : all) hashes.insert(e.hash);
  EXPECT_EQ(hashes.size(), all.size());
}

}  // namespace
}  // namespace dsim

namespace dsim {
namespace {

// A delivery refers to its send's record. Its send still retained: the packet's text;
// gone from a small ring: a note saying so (the fingerprint still covered the send).
TEST(TraceFlows, ADeliveryShowsItsSendsPayloadOrSaysItLeftTheRing) {
  auto run = [](size_t keep) {
    Scheduler scheduler;
    auto trace = std::make_unique<Trace>(&scheduler, TraceOptions{.keep_last_events = keep});
    scheduler.Spawn("t", [&] {
      Annotation send;
      send.category = "test.send";
      send.format = FormatPair;
      send.payload.text = "pkt";
      send.payload.word_count = 2;
      send.payload.words[0] = 3;
      send.payload.words[1] = 4;
      send.flow_id = 77;
      send.flow_phase = 1;
      scheduler.Annotate(send);
      for (int i = 0; i < 20; ++i) scheduler.Annotate({.category = "test.filler"});
      Annotation deliver = send;
      deliver.category = "test.deliver";
      deliver.payload.word_count = 0;  // Not recorded: the send's words are.
      deliver.flow_phase = 2;
      deliver.repeats_flow_start = true;
      scheduler.Annotate(deliver);
    });
    EXPECT_TRUE(scheduler.Run().ok());
    return std::make_pair(trace->LastEventsText(2), trace->fingerprint());
  };
  const auto kept = run(100);
  const auto lost = run(5);
  EXPECT_TRUE(absl::StrContains(kept.first, "note test.deliver: pkt 3/4 [flow 77 end]"))
      << kept.first;
  EXPECT_TRUE(absl::StrContains(
      lost.first, "note test.deliver: (as at the start of flow 77, which is no longer retained)"))
      << lost.first;
  EXPECT_EQ(kept.second, lost.second);
}

}  // namespace
}  // namespace dsim
