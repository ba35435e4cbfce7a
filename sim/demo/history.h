// History: every operation the demo's clients made, with the virtual times they began
// and ended, and the checker that finds stale reads in it.
//
// Example:
//
//   dsim::demo::History history;
//   history.Record({.client = 1, .kind = Operation::Kind::kPut, .key = "x",
//                   .start = t0, .end = t1, .ok = true, .value = "c1.1",
//                   .version = {1, 1}});
//   absl::Status verdict = history.Check();   // OK, or the first stale read, explained
//
// What Check() verifies, per key, for every read that completed:
//   - it returned a value some client wrote (or the key's initial empty value);
//   - it is not stale: its version is at least that of every write that completed
//     before the read began, and of every read that completed before it began.
// The store promises that its version order is a linearization of the writes, so
// these rules are what linearizability of each key means for it. Operations that
// failed (no quorum in time) may or may not have taken effect: they never constrain a
// read, but their values may legitimately be read.
#ifndef DSIM_SIM_DEMO_HISTORY_H_
#define DSIM_SIM_DEMO_HISTORY_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
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

  // OK, or a FailedPrecondition naming the first bad read (by start time) and the
  // operation it contradicts.
  absl::Status Check() const;

 private:
  absl::Status CheckRead(const Operation& read) const;

  std::vector<Operation> operations_;  // In the order they ended.
};

// "1.234s": a virtual time as seconds since the simulation's epoch.
std::string FormatVirtualTime(absl::Time time);

}  // namespace dsim::demo

#endif  // DSIM_SIM_DEMO_HISTORY_H_
