// Planted deep bugs: small systems whose bug needs a conjunction of rare events, in
// order, within one run. For //bench:guided_search and //tests/deep_bugs:deep_bugs_test.
//
// Each system runs its own chaos processes (every tick, a rare fault with a small
// probability), so every rare event is drawn when it could happen, as a real fault
// injector draws them. The intermediate states a user would want to see covered are
// marked with DSIM_SOMETIMES (as sim/assertions.h recommends), and the bug itself is a
// DSIM_ALWAYS that fails. Each bug also has a fixed twin that must never fail.
//
//   partition_leader_change_clock_jump  a leader change (rare) is interrupted by a
//       partition (rare, and only within the change's short window), and then a forward
//       clock step on the old leader (rare) makes it act on an expired lease.
//   crash_between_two_writes  a BUGGIFY'd slow flush opens a window between a record
//       and its index; a crash lands in it (rare); recovery then trusts the index only
//       when a second BUGGIFY site (skip the checksum) fires on that very recovery.
//   dup_apply_after_restart  a server persists its dedup table lazily (BUGGIFY), a reply
//       is lost (rare), and the server restarts (rare) before the client's retry: the
//       retry is applied twice.
//   reorder_then_duplicate  a datagram is reordered past the receive window (rare), then
//       the window's slot is recycled, then a duplicate of that very datagram arrives
//       (rare): it is delivered twice.
//   stale_reply_after_pause  a reply is stuck in a latency tail (rare), the client
//       times out and retries, the server pauses (rare) so the retry's reply comes
//       late too, and the stale reply is accepted for the retry.
#ifndef DSIM_TESTS_DEEP_BUGS_DEEP_BUGS_H_
#define DSIM_TESTS_DEEP_BUGS_DEEP_BUGS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "sim/simulation.h"

namespace dsim::deep_bugs {

struct DeepBug {
  std::string name;
  std::string conjunction;  // The rare events it needs, in order.
  std::function<absl::Status(Simulation&)> buggy;
  std::function<absl::Status(Simulation&)> fixed;
};

const std::vector<DeepBug>& Corpus();

}  // namespace dsim::deep_bugs

#endif  // DSIM_TESTS_DEEP_BUGS_DEEP_BUGS_H_
