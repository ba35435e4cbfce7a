// Histories (check/history.h): Jepsen EDN and JSON in and out, pairing, the recorder
// under a scheduler, the HTML page, and the command-line checker //sim:check_history.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <sys/wait.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "check/history.h"
#include "check/html.h"
#include "check/linearizability.h"
#include "check/recorder.h"
#include "scheduler/scheduler.h"

namespace dsim::check {
namespace {

constexpr const char* kStale = R"(
{:process 0, :type :invoke, :f :write, :value 1, :key "x", :time 1000}
{:process 0, :type :ok, :f :write, :value 1, :key "x", :time 2000}
{:process 0, :type :invoke, :f :write, :value 2, :key "x", :time 3000}
{:process 0, :type :ok, :f :write, :value 2, :key "x", :time 4000}
{:process 1, :type :invoke, :f :read, :value nil, :key "x", :time 5000}
{:process 1, :type :ok, :f :read, :value 1, :key "x", :time 6000}
)";

// ---- Formats ------------------------------------------------------------------------

TEST(Edn, ReadsJepsenOperationMaps) {
  absl::StatusOr<History> history = History::ParseEdn(
      "{:index 0, :time 5, :type :invoke, :process 3, :f :cas, :value [1 2]}\n"
      "{:type :info, :f :start, :process :nemesis, :value nil}\n"  // Not a client: skipped.
      "#jepsen.history.Op{:index 1, :time 9, :type :ok, :process 3, :f :cas, :value [1 2]}\n");
  ASSERT_TRUE(history.ok()) << history.status();
  ASSERT_EQ(history->size(), 2u);
  const Event& invoke = history->events()[0];
  EXPECT_EQ(invoke.process, 3);
  EXPECT_EQ(invoke.type, EventType::kInvoke);
  EXPECT_EQ(invoke.f, "cas");
  EXPECT_EQ(invoke.value, Value::List({Value(1), Value(2)}));
  EXPECT_EQ(invoke.time_ns, 5);
  EXPECT_EQ(history->events()[1].type, EventType::kOk);
}

TEST(Edn, WholeHistoryAsOneVectorReadsTheSame) {
  absl::StatusOr<History> lines = History::ParseEdn(kStale);
  absl::StatusOr<History> vector = History::ParseEdn(absl::StrCat("[", kStale, "]"));
  ASSERT_TRUE(lines.ok() && vector.ok());
  EXPECT_EQ(lines->ToEdn(), vector->ToEdn());
}

TEST(Edn, RoundTripsThroughTextAndJson) {
  absl::StatusOr<History> history = History::ParseEdn(
      "{:process 0, :type :invoke, :f :write, :value \"a \\\"quoted\\\" s\", :key :k}\n"
      "{:process 0, :type :info, :f :write, :value \"a \\\"quoted\\\" s\", :key :k}\n"
      "{:process 1, :type :invoke, :f :read, :value nil}\n"
      "{:process 1, :type :ok, :f :read, :value [1 -2 [3]]}\n");
  ASSERT_TRUE(history.ok()) << history.status();
  absl::StatusOr<History> from_edn = History::Parse(history->ToEdn());
  ASSERT_TRUE(from_edn.ok()) << from_edn.status();
  EXPECT_EQ(from_edn->ToEdn(), history->ToEdn());
  absl::StatusOr<History> from_json = History::Parse(history->ToJson());
  ASSERT_TRUE(from_json.ok()) << from_json.status() << history->ToJson();
  // JSON has no keywords: :k comes back as "k"; everything else is the same.
  EXPECT_EQ(from_json->events()[0].key, Value("k"));
  EXPECT_EQ(from_json->events()[3].value, history->events()[3].value);
  EXPECT_EQ(from_json->ToJson(), history->ToJson());
}

TEST(Json, ReadsOneObjectPerLineToo) {
  absl::StatusOr<History> history = History::Parse(
      "{\"process\": 0, \"type\": \"invoke\", \"f\": \"write\", \"value\": 1}\n"
      "{\"process\": 0, \"type\": \"ok\", \"f\": \"write\", \"value\": 1}\n");
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ(history->size(), 2u);
}

TEST(Parse, BadInputIsAnErrorNamingTheLine) {
  for (const char* text : {
           "{:process 0, :type :invoke, :f :write, :value 1}\n{:process 0 :type}\n",
           "{:process 0, :type :invoke, :f :write, :value [1 2}\n",
           "{:process 0, :type :sideways, :f :write}\n",
           "{:process 0, :type :invoke}\n",
           "{:process 0, :type :invoke, :f :write, :value 1.5}\n",
           "{\"process\": 0, \"type\": \"invoke\", \"f\": }\n",
           "\"just a string\"\n",
           "{:process 0, :type :invoke, :f :write, :value \"unterminated}\n",
       }) {
    absl::StatusOr<History> history = History::Parse(text);
    EXPECT_FALSE(history.ok()) << text;
    EXPECT_TRUE(absl::StrContains(history.status().message(), "line ")) << history.status();
  }
}

TEST(Parse, DeepNestingIsAnErrorNotACrash) {
  const std::string deep = absl::StrCat("{:process 0, :type :invoke, :f :write, :value ",
                                        std::string(100000, '['), "}\n");
  EXPECT_FALSE(History::Parse(deep).ok());
}

TEST(Operations, PairsInvocationsWithCompletionsPerProcess) {
  absl::StatusOr<History> history = History::ParseEdn(kStale);
  ASSERT_TRUE(history.ok());
  absl::StatusOr<std::vector<Operation>> ops = history->Operations();
  ASSERT_TRUE(ops.ok()) << ops.status();
  ASSERT_EQ(ops->size(), 3u);
  EXPECT_EQ((*ops)[2].f, "read");
  EXPECT_EQ((*ops)[2].output, Value(1));
  EXPECT_EQ((*ops)[2].call_position, 4);
  EXPECT_EQ((*ops)[2].return_position, 5);
  EXPECT_EQ((*ops)[2].return_time_ns, 6000);
}

TEST(Operations, CompletionWithoutInvocationIsAnError) {
  absl::StatusOr<History> history =
      History::ParseEdn("{:process 0, :type :ok, :f :write, :value 1}\n");
  ASSERT_TRUE(history.ok());
  EXPECT_FALSE(history->Operations().ok());
}

TEST(Operations, SecondInvocationWhileOneIsOpenIsAnError) {
  absl::StatusOr<History> history = History::ParseEdn(
      "{:process 0, :type :invoke, :f :write, :value 1}\n"
      "{:process 0, :type :invoke, :f :write, :value 2}\n");
  ASSERT_TRUE(history.ok());
  EXPECT_FALSE(history->Operations().ok());
}

TEST(FromIntervals, OperationsThatTouchInTimeAreConcurrent) {
  // The write ends at 10 and the read begins at 10: concurrent, so the read may see
  // the old value.
  Operation write{.process = 0, .f = "write", .input = Value(1), .output = Value(1),
                  .call_time_ns = 0, .return_time_ns = 10};
  Operation read{.process = 1, .f = "read", .output = Value(), .call_time_ns = 10,
                 .return_time_ns = 20};
  const History history = History::FromIntervals({write, read});
  EXPECT_EQ(CheckLinearizability(history, RegisterModel()).verdict, Verdict::kLinearizable);
  read.call_time_ns = 11;
  EXPECT_EQ(CheckLinearizability(History::FromIntervals({write, read}), RegisterModel()).verdict,
            Verdict::kNotLinearizable);
}

// ---- The recorder ----------------------------------------------------------------------

TEST(Recorder, StampsVirtualTimesInTheOrderEventsHappen) {
  Recorder recorder;
  Scheduler scheduler(SchedulerOptions{.seed = 3});
  scheduler.Spawn("writer", [&] {
    PendingOp op = recorder.Invoke(0, "write", Value(1), Value("x"));
    dsim::SleepFor(absl::Milliseconds(5));
    op.Ok();
  });
  scheduler.Spawn("reader", [&] {
    dsim::SleepFor(absl::Milliseconds(5));  // Same instant as the write's completion.
    PendingOp op = recorder.Invoke(1, "read", Value(), Value("x"));
    dsim::SleepFor(absl::Milliseconds(1));
    op.Info();
  });
  ASSERT_TRUE(scheduler.Run().ok());
  const History& history = recorder.history();
  ASSERT_EQ(history.size(), 4u);
  EXPECT_EQ(history.events()[0].time_ns, 0);
  EXPECT_EQ(history.events()[0].key, Value("x"));
  // A write's ok repeats its value, as Jepsen's do.
  for (const Event& event : history.events()) {
    if (event.type == EventType::kOk) {
      EXPECT_EQ(event.value, Value(1));
    }
    if (event.type == EventType::kInfo) {
      EXPECT_EQ(event.time_ns, 6'000'000);
    }
  }
  EXPECT_TRUE(history.Operations().ok());
}

TEST(Recorder, OperationAbandonedByAnExceptionIsRecordedAsUnknown) {
  Recorder recorder;
  try {
    PendingOp op = recorder.Invoke(0, "write", Value(1));
    throw std::runtime_error("client crashed");
  } catch (const std::runtime_error&) {
  }
  PendingOp next = recorder.Invoke(0, "read");  // The same client goes on.
  next.Ok(Value(1));
  ASSERT_EQ(recorder.history().size(), 4u);
  EXPECT_EQ(recorder.history().events()[1].type, EventType::kInfo);
  EXPECT_EQ(CheckLinearizability(recorder.history(), RegisterModel()).verdict,
            Verdict::kLinearizable);
}

// ---- The HTML page ----------------------------------------------------------------------

TEST(Html, PageMarksTheOperationThatCannotBeLinearized) {
  absl::StatusOr<History> history = History::ParseEdn(kStale);
  ASSERT_TRUE(history.ok());
  const CheckResult result = CheckLinearizability(*history, KvModel());
  const std::string html = RenderHtml(result);
  EXPECT_TRUE(absl::StartsWith(html, "<!DOCTYPE html>"));
  EXPECT_TRUE(absl::StrContains(html, "not linearizable"));
  EXPECT_TRUE(absl::StrContains(html, "class=\"bar failing\" data-op=\"2\""));  // The read.
  EXPECT_TRUE(absl::StrContains(html, "class=\"bar lin\" data-op=\"1\""));      // write 2.
  EXPECT_FALSE(absl::StrContains(html, "http://")  && absl::StrContains(html, "<script src"));
}

// ---- //sim:check_history ------------------------------------------------------------------

struct ToolRun {
  int exit_code;
  std::string out;
};

ToolRun CheckHistory(const std::string& args, const std::string& history_text) {
  const std::string dir = ::testing::TempDir();
  const std::string input = absl::StrCat(dir, "history_", std::rand(), ".edn");
  std::ofstream(input) << history_text;
  const std::string out = input + ".out";
  const std::string command = absl::StrCat("sim/check_history ", args, " ", input, " >", out,
                                           " 2>&1");
  const int status = std::system(command.c_str());
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

std::string LastLine(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  return lines.empty() ? "" : lines.back();
}

TEST(CheckHistoryTool, PrintsTheVerdictLastAndExitsWithItsCode) {
  ToolRun bad = CheckHistory("--model=kv", kStale);
  EXPECT_EQ(bad.exit_code, 1) << bad.out;
  EXPECT_EQ(LastLine(bad.out), "not linearizable");
  ToolRun good = CheckHistory("--model=register",
                          "{:process 0, :type :invoke, :f :write, :value 1}\n"
                          "{:process 0, :type :ok, :f :write, :value 1}\n");
  EXPECT_EQ(good.exit_code, 0) << good.out;
  EXPECT_EQ(LastLine(good.out), "linearizable");
}

TEST(CheckHistoryTool, ExhaustedBudgetIsUnknownWithExitTwo) {
  std::string edn;
  for (int p = 0; p < 6; ++p) {
    absl::StrAppend(&edn, "{:process ", p, ", :type :invoke, :f :enqueue, :value ", p, "}\n");
  }
  absl::StrAppend(&edn, "{:process 99, :type :invoke, :f :dequeue, :value nil}\n",
                  "{:process 99, :type :ok, :f :dequeue, :value 1000}\n");
  for (int p = 0; p < 6; ++p) {
    absl::StrAppend(&edn, "{:process ", p, ", :type :ok, :f :enqueue, :value ", p, "}\n");
  }
  ToolRun run = CheckHistory("--model=queue --max_steps=100", edn);
  EXPECT_EQ(run.exit_code, 2) << run.out;
  EXPECT_EQ(LastLine(run.out), "unknown");
}

TEST(CheckHistoryTool, WritesTheHtmlPage) {
  const std::string page = absl::StrCat(::testing::TempDir(), "page.html");
  ToolRun run = CheckHistory(absl::StrCat("--html=", page), kStale);
  EXPECT_EQ(run.exit_code, 1);
  std::ifstream in(page);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(absl::StrContains(text.str(), "<svg")) << page;
}

TEST(CheckHistoryTool, BadInputExitsThreeWithAMessage) {
  for (const auto& [args, text] : std::vector<std::pair<std::string, std::string>>{
           {"--model=kv", "{:process 0 :type"},
           {"--model=graph", kStale},
           {"--model=kv --budget=soon", kStale},
           {"--frobnicate", kStale},
           {"--model=register", "{:process 0, :type :invoke, :f :fly, :value 1}\n"},
           {"--model=register", "{:process 0, :type :ok, :f :write, :value 1}\n"},
       }) {
    ToolRun run = CheckHistory(args, text);
    EXPECT_EQ(run.exit_code, 3) << args << "\n" << run.out;
    EXPECT_TRUE(absl::StrContains(run.out, "check_history: ")) << run.out;
  }
}

}  // namespace
}  // namespace dsim::check
