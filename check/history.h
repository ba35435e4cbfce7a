// Histories of client operations, in the shape Jepsen gives them: a list of events,
// each the invocation of an operation by a client or its completion (ok, fail, or
// info: unknown outcome). Read from and written to Jepsen's EDN format and to JSON, so
// Knossos, Elle or Porcupine can check the same history dsim checks.
//
// Example:
//
//   dsim::check::History history;
//   history.Add({.process = 0, .type = EventType::kInvoke, .f = "write", .value = Value(3)});
//   history.Add({.process = 1, .type = EventType::kInvoke, .f = "read"});
//   history.Add({.process = 0, .type = EventType::kOk, .f = "write", .value = Value(3)});
//   history.Add({.process = 1, .type = EventType::kOk, .f = "read", .value = Value(3)});
//   std::string edn = history.ToEdn();     // one map per line, as Jepsen writes them
//   absl::StatusOr<History> back = History::Parse(edn);
//   absl::StatusOr<std::vector<Operation>> ops = history.Operations();  // paired
//
// The EDN form, one operation map per line (Jepsen's history.edn):
//
//   {:process 0, :type :invoke, :f :write, :value 3}
//   {:process 0, :type :ok, :f :write, :value 3}
//   {:process 1, :type :invoke, :f :cas, :value [3 4], :key "x"}
//   {:process 1, :type :info, :f :cas, :value [3 4], :key "x", :time 1200000}
//
// Keys read: :process (an integer; events of other processes such as :nemesis are
// skipped), :type (:invoke :ok :fail :info), :f, :value, :key (maps), :time
// (nanoseconds, optional, shown on the HTML page). Anything else (:index, :error, ...)
// is ignored. Tagged elements (#jepsen.history.Op{...}) are read as their untagged
// value; the whole history may also be one vector of maps. The JSON form is an array of
// objects, or one object per line, with the same fields as strings: {"process": 0,
// "type": "invoke", "f": "write", "value": 3, "key": "x", "time": 0}.
//
// Order. The order of events IS the history's real-time order (as in Jepsen's files):
// an operation precedes another if its completion event comes before the other's
// invocation event. :time only labels the events.
#ifndef DSIM_CHECK_HISTORY_H_
#define DSIM_CHECK_HISTORY_H_

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace dsim::check {

// A value in an operation: nil, an integer, a string, a keyword, or a list (a Jepsen
// vector; EDN sets and lists read as lists too). Compared structurally.
class Value {
 public:
  enum class Kind { kNil, kInt, kString, kKeyword, kList };

  Value() = default;  // nil
  explicit Value(int64_t number) : kind_(Kind::kInt), int_(number) {}
  explicit Value(int number) : Value(static_cast<int64_t>(number)) {}
  explicit Value(std::string text) : kind_(Kind::kString), text_(std::move(text)) {}
  explicit Value(const char* text) : Value(std::string(text)) {}
  static Value Keyword(std::string name);
  static Value List(std::vector<Value> items);

  Kind kind() const { return kind_; }
  bool is_nil() const { return kind_ == Kind::kNil; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_list() const { return kind_ == Kind::kList; }
  int64_t as_int() const { return int_; }
  // The text of a string or the name of a keyword (without ':').
  const std::string& text() const { return text_; }
  const std::vector<Value>& items() const { return items_; }

  // EDN text: nil, 3, "x", :ok, [1 2].
  std::string ToEdn() const;
  // JSON text: null, 3, "x", "ok" (keywords become strings), [1,2].
  std::string ToJson() const;
  // For messages and the HTML page: nil, 3, "x", :ok, [1 2] (EDN, shortened past 60
  // characters).
  std::string Short() const;

  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  Kind kind_ = Kind::kNil;
  int64_t int_ = 0;
  std::string text_;
  std::vector<Value> items_;
};

enum class EventType { kInvoke, kOk, kFail, kInfo };
// "invoke", "ok", "fail", "info".
const char* EventTypeName(EventType type);

struct Event {
  int64_t process = 0;
  EventType type = EventType::kInvoke;
  std::string f;                  // "read", "write", "cas", "add", ...
  Value value;                    // Invoke: the argument. Ok: the result.
  std::optional<Value> key;       // For maps (the kv model).
  std::optional<int64_t> time_ns; // Optional label: when it happened.
};

// How an operation ended. kFail: it did not take effect. kInfo: unknown, it may have
// taken effect, at any point after its invocation (or the history ended first).
enum class Outcome { kOk, kFail, kInfo };

// An invocation paired with its completion.
struct Operation {
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

  size_t id = 0;          // Index in the list Operations() returns.
  int64_t process = 0;
  std::string f;
  std::optional<Value> key;
  Value input;            // The invocation's value.
  Value output;           // The completion's value (nil unless ok).
  Outcome outcome = Outcome::kOk;
  // Positions of the two events in the history; return_position is kNever for kInfo.
  int64_t call_position = 0;
  int64_t return_position = kNever;
  // The events' :time, or nullopt.
  std::optional<int64_t> call_time_ns;
  std::optional<int64_t> return_time_ns;

  // "write 3", "read -> 3", "cas [1 2]", with the key when there is one:
  // "x: read -> 3"; info and fail marked.
  std::string Describe() const;
};

class History {
 public:
  History() = default;

  void Add(Event event) { events_.push_back(std::move(event)); }
  const std::vector<Event>& events() const { return events_; }
  size_t size() const { return events_.size(); }

  // Pairs each invocation with the next completion of its process. An invocation left
  // without a completion becomes kInfo. Errors: a completion without an invocation, a
  // second invocation by a process whose previous one is still open (Jepsen gives a
  // crashed process a new number), a completion whose :f or :key differs from its
  // invocation's. The result is in invocation order.
  absl::StatusOr<std::vector<Operation>> Operations() const;

  // One map per line, as Jepsen writes history.edn.
  std::string ToEdn() const;
  // An array of objects, one per line.
  std::string ToJson() const;

  // Reads EDN or JSON (by the first character: '{' followed by '"' or '[' followed by
  // '{"' is JSON). Errors name the line and what was expected.
  static absl::StatusOr<History> Parse(absl::string_view text);
  static absl::StatusOr<History> ParseEdn(absl::string_view text);
  static absl::StatusOr<History> ParseJson(absl::string_view text);

  // Builds a history from operations that carry only times (for users who logged
  // intervals): events sorted by time, invocations before completions at equal times
  // (the conservative choice: operations that touch in time count as concurrent).
  // Positions and ids in `operations` are ignored.
  static History FromIntervals(const std::vector<Operation>& operations);

 private:
  std::vector<Event> events_;
};

}  // namespace dsim::check

#endif  // DSIM_CHECK_HISTORY_H_
