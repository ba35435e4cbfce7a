// History: every operation the demo's clients made, with the virtual times they began
// and ended, checked for linearizability with the key-value model (check/).
//
// Example:
//
//   dsim::demo::History history;
//   history.Record({.client = 1, .kind = Operation::Kind::kPut, .key = "x",
//                   .start = t0, .end = t1, .ok = true, .value = "c1.1",
//                   .version = {1, 1}});
//   absl::Status verdict = history.Check();   // OK, or the first violation, explained
//
// What Check() verifies: that the operations on each key are linearizable, with the
// store as one register per key (dsim::check::KvModel): some order of them, consistent
// with real time, in which every read returns the latest write (or nothing, for a key
// never written). Operations that failed (no quorum in time) may or may not have taken
// effect, at any later point: a failed put is an "info" operation to the checker, and a
// failed get constrains nothing. The versions the store returns are not used: the
// checker needs only what clients saw.
//
// The scenario records each operation twice: here, for the summary's counts, and in a
// dsim::check::Recorder, whose events are in the exact order they happened (Record()
// has only times, and operations that touch at the same virtual instant count as
// concurrent). Check() and CheckEvents() run the same checker.
#ifndef DSIM_SIM_DEMO_HISTORY_H_
#define DSIM_SIM_DEMO_HISTORY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "check/history.h"
#include "check/linearizability.h"
#include "sim/demo/kv_store.h"

namespace dsim::demo {

struct Operation {
  enum class Kind { kPut, kGet };

  int client = 0;
  Kind kind = Kind::kGet;
  std::string key;
  absl::Time start;  // Virtual time the client called Put or Get.
  absl::Time end;    // Virtual time it returned.
  bool ok = false;   // False: unavailable, the outcome is unknown.
  // kPut: the value written. kGet (when ok): the value read.
  std::string value;
  // kPut (when ok): the version written. kGet (when ok): the version read.
  Version version;
};

class History {
 public:
  void Record(Operation operation) { operations_.push_back(std::move(operation)); }
  const std::vector<Operation>& operations() const { return operations_; }

  int Count(Operation::Kind kind, bool ok) const;

  // The operations as a checker history (Jepsen's form): put is :write, get is :read
  // (nil for a key never written), unavailable is :info; events sorted by time.
  check::History ToCheckHistory() const;

  // OK, or a FailedPrecondition whose first line names the first key found not
  // linearizable and the operation that cannot be linearized.
  absl::Status Check() const;

 private:
  std::vector<Operation> operations_;  // In the order they ended.
};

// The demo's checker over an exact history: the KV model, a deterministic step budget
// (so a verdict never depends on the machine). `result` (optional) receives the whole
// result, for the HTML page.
absl::Status CheckEvents(const check::History& history, check::CheckResult* result = nullptr);

// "1.234s": a virtual time as seconds since the simulation's epoch.
std::string FormatVirtualTime(absl::Time time);

}  // namespace dsim::demo

#endif  // DSIM_SIM_DEMO_HISTORY_H_
