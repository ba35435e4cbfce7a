// BUGGIFY: code sites where the code under test misbehaves on purpose, in simulation
// only (FoundationDB's BUGGIFY).
//
// Example:
//
//   #include "sim/buggify.h"
//
//   absl::Duration Client::RetryTimeout() {
//     if (DSIM_BUGGIFY) return absl::Milliseconds(1);   // a far too short timeout
//     return absl::Seconds(1);
//   }
//   size_t Reader::ChunkBytes() { return DSIM_BUGGIFY_NAMED("tiny chunks") ? 1 : 4096; }
//
// Semantics. The first time a run reaches a site, the site is switched on for the rest
// of the run with probability BuggifySiteOptions::site_probability (0.25); a switched-on
// site then fires with probability fire_probability (0.25) each time it is reached.
// Both are SimulationOptions::buggify_sites. Each of these choices is a strategy
// decision ("fault.buggify.site", "fault.buggify.fire", 0 meaning no), so a recorded
// schedule replays them and shrinking turns sites off. Each firing is annotated in the
// trace ("buggify"). Outside a Simulation's run DSIM_BUGGIFY is always false and costs
// a thread-local read.
//
// Identity. An unnamed site is "buggify <file basename>:<line>"; a named one is
// "buggify <name>". Coverage reports (sim/coverage.h) count, per site, the seeds in
// which it fired.
#ifndef DSIM_SIM_BUGGIFY_H_
#define DSIM_SIM_BUGGIFY_H_

#include "sim/assertions.h"
#include "sim/coverage.h"

namespace dsim::internal {
bool BuggifyReached(const Site& site);
}  // namespace dsim::internal

#define DSIM_BUGGIFY \
  (::dsim::internal::BuggifyReached(*DSIM_INTERNAL_SITE(::dsim::SiteKind::kBuggify, "")))
#define DSIM_BUGGIFY_NAMED(name) \
  (::dsim::internal::BuggifyReached(*DSIM_INTERNAL_SITE(::dsim::SiteKind::kBuggify, name)))

#endif  // DSIM_SIM_BUGGIFY_H_
