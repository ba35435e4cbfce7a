#include "sim/liveness.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"

namespace dsim {
namespace {

bool InCore(const std::vector<HostId>& core, HostId id) {
  return core.empty() || std::find(core.begin(), core.end(), id) != core.end();
}

// Heals what the fault phase left: partitions, holds, pauses, crashes.
void Heal(Simulation& sim, const LivenessOptions& options) {
  sim.HealAll();
  const HostId hosts = static_cast<HostId>(sim.host_count());
  for (HostId from = 1; from <= hosts; ++from) {
    if (sim.host(from).network_host() == nullptr) continue;
    for (HostId to = 1; to <= hosts; ++to) {
      if (to == from || sim.host(to).network_host() == nullptr) continue;
      while (sim.Release(from, to)) {
      }
    }
  }
  std::vector<HostId> outside;
  for (HostId id = 1; id <= hosts; ++id) {
    if (!InCore(options.core, id)) {
      outside.push_back(id);
      continue;
    }
    const HostState state = sim.host(id).state();
    if (state == HostState::kPaused) sim.Resume(id);
    if (state == HostState::kCrashed && options.restart_crashed) sim.Restart(id);
  }
  sim.StopFaults();
  if (!options.core.empty() && !outside.empty()) sim.Partition(options.core, outside);
}

// The phase's events that still are in memory, without the idle clock advances the
// progress checks cause: the first and the last `count / 2`.
std::string PhaseTrace(const Trace& trace, uint64_t first_event, size_t count) {
  std::vector<const TraceEvent*> events;
  for (const TraceEvent& event : trace.events()) {
    if (event.index >= first_event && event.kind != TraceEventKind::kClock) events.push_back(&event);
  }
  std::string out;
  for (size_t i = 0; i < events.size(); ++i) {
    if (i == count / 2 && events.size() > count) {
      absl::StrAppend(&out, "  ... ", events.size() - count, " more events ...\n");
      i = events.size() - (count - count / 2);
    }
    absl::StrAppend(&out, "  ", trace.Describe(*events[i]), "\n");
  }
  return out;
}

// "no progress within X after heal", with the phase's trace.
absl::Status NoProgress(Simulation& sim, const LivenessOptions& options, uint64_t first_event,
                        absl::string_view why) {
  return absl::DeadlineExceededError(absl::StrCat(
      "no progress within ", absl::FormatDuration(options.within), " after heal", why, "\n",
      "trace of the liveness phase (", sim.trace().event_count() - first_event,
      " events; clock advances left out):\n",
      PhaseTrace(sim.trace(), first_event, options.trace_events)));
}

}  // namespace

absl::Status RunLivenessPhase(Simulation& sim, const LivenessOptions& options) {
  DSIM_MISUSE(options.progress != nullptr, "RunLivenessPhase without a progress predicate");
  DSIM_MISUSE(options.check_interval > absl::ZeroDuration() && options.within >= absl::ZeroDuration(),
              "RunLivenessPhase: check_interval must be positive and within not negative");
  const uint64_t first_event = sim.trace().event_count();
  sim.Annotate("liveness", absl::StrCat("heal; progress required within ",
                                        absl::FormatDuration(options.within)));
  Heal(sim, options);
  const absl::Time deadline = sim.Now() + options.within;
  while (!options.progress()) {
    if (sim.Now() >= deadline) return NoProgress(sim, options, first_event, "");
    RunResult result = sim.RunUntil(std::min(deadline, sim.Now() + options.check_interval));
    if (!result.ok()) return result.status();
    if (result.outcome == RunOutcome::kIdle && !options.progress()) {
      // Nothing left to happen: progress can never come.
      return NoProgress(sim, options, first_event, " (the simulation went idle)");
    }
  }
  sim.Annotate("liveness", "progress");
  return absl::OkStatus();
}

}  // namespace dsim
