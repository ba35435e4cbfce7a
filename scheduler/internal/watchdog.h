// Watchdog: reports a task that runs a long stretch of wall-clock time without reaching
// a scheduling point (a spin loop, a real std::mutex held across a dsim sleep, a real
// sleep in a polling loop). Such a task hangs the whole simulation, and no step or
// virtual-time limit can fire, because only scheduling points advance them.
//
// It only observes. One process-wide watchdog thread (started on first use) wakes every
// 50 ms and reads, for every active run, a counter the run bumps at each scheduling step
// and timer. When a counter has not moved for the threshold, it sends SIGURG to the
// thread running that simulation; the handler, on that thread, prints which task is
// running and its stack (backtrace(3)) to stderr, once per stall, then returns, so the
// task goes on as before, or aborts when asked to. It never reads or writes simulation
// state, so it cannot change what a run does. SIGURG is ignored by default, and the
// handler passes signals it did not ask for on to the previous handler.
//
// Settings (SchedulerOptions::watchdog, ::watchdog_abort) are overridden by the
// environment: DSIM_WATCHDOG=<seconds> sets the threshold, DSIM_WATCHDOG=0 (or "off")
// turns it off (for debuggers: a stopped breakpoint is a stall too),
// DSIM_WATCHDOG_ABORT=1 aborts after the report.
#ifndef DSIM_SCHEDULER_INTERNAL_WATCHDOG_H_
#define DSIM_SCHEDULER_INTERNAL_WATCHDOG_H_

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace dsim::internal {

struct WatchdogSettings {
  absl::Duration threshold;  // ZeroDuration() or less: off.
  bool abort = false;
};

// Applies DSIM_WATCHDOG and DSIM_WATCHDOG_ABORT to `settings`.
WatchdogSettings WatchdogFromEnvironment(WatchdogSettings settings);

struct WatchdogEntry;

// Watches `heartbeat` for the calling thread until Unwatch. Null when off.
WatchdogEntry* Watch(const std::atomic<uint64_t>* heartbeat, const WatchdogSettings& settings);
void Unwatch(WatchdogEntry* entry);

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_WATCHDOG_H_
