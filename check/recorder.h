// Recorder: builds a History (check/history.h) as simulated clients run, one line per
// operation, stamping each event with the virtual time.
//
// Example, in a client task:
//
//   dsim::check::Recorder recorder;                 // shared by the clients
//   ...
//   auto op = recorder.Invoke(client, "write", Value(3), /*key=*/Value("x"));
//   absl::Status put = kv.Put("x", 3);
//   put.ok() ? op.Ok() : op.Info();                 // timeout: outcome unknown
//
//   auto read = recorder.Invoke(client, "read", Value(), Value("x"));
//   absl::StatusOr<int> got = kv.Get("x");
//   got.ok() ? read.Ok(Value(*got)) : read.Info();
//   ...
//   CheckLinearizability(recorder.history(), KvModel());
//
// Events are appended in the order they happen, which on dsim's one OS thread is the
// real order, so operations that begin and end at the same virtual instant are still
// ordered exactly. Times are nanoseconds since Scheduler::Epoch() (absent when no
// scheduler runs on this thread). A simulation runs on one thread; the recorder is not
// for sharing between OS threads.
//
// Completion rules (Jepsen's): Ok when the operation certainly took effect (with its
// result), Fail when it certainly did not, Info when nobody knows (a timeout, a lost
// connection). A PendingOp destroyed without a completion (its task unwound in a
// crash, or an exception left the scope) records Info then, which is also what a crash
// of the client means. For operations other than reads and dequeues, Ok() without a
// result repeats the invocation's value, as Jepsen's histories do.
#ifndef DSIM_CHECK_RECORDER_H_
#define DSIM_CHECK_RECORDER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "check/history.h"

namespace dsim::check {

class Recorder;

// An invoked operation, to be completed once.
class PendingOp {
 public:
  PendingOp(PendingOp&& other) noexcept;
  PendingOp& operator=(PendingOp&&) = delete;
  PendingOp(const PendingOp&) = delete;
  ~PendingOp();

  // Took effect; `result` is what it returned (a read's value; for a write, its value
  // is repeated when result is nil, as Jepsen does).
  void Ok(Value result = Value());
  // Certainly did not take effect.
  void Fail();
  // Unknown outcome.
  void Info();

 private:
  friend class Recorder;
  PendingOp(Recorder* recorder, Event invocation)
      : recorder_(recorder), invocation_(std::move(invocation)) {}
  void Complete(EventType type, Value value);

  Recorder* recorder_;
  Event invocation_;
};

class Recorder {
 public:
  // Records the invocation now. `process` is the client (one operation at a time).
  PendingOp Invoke(int64_t process, std::string f, Value input = Value(),
                   std::optional<Value> key = std::nullopt);

  const History& history() const { return history_; }

 private:
  friend class PendingOp;
  void Append(Event event);

  History history_;
};

}  // namespace dsim::check

#endif  // DSIM_CHECK_RECORDER_H_
