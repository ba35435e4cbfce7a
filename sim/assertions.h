// Assertions with names, checked in every run and counted across the seeds of a sweep
// (Antithesis's "always" and "sometimes").
//
// Example:
//
//   #include "sim/assertions.h"
//
//   void Replica::OnElected() {
//     DSIM_REACHABLE("a replica became leader");          // counted per seed
//     DSIM_ALWAYS(leaders_in_term(term_) == 1, "one leader per term");
//     DSIM_SOMETIMES(votes_ == cluster_size_, "unanimous election");
//   }
//   void Replica::OnVote(...) {
//     if (term < term_) DSIM_UNREACHABLE("a stale vote was counted");
//   }
//
// - DSIM_ALWAYS(cond, name): cond must hold every time it is evaluated. When it does
//   not, the run fails (Scheduler::Fail, RunOutcome::kTaskFailed) with
//   `DSIM_ALWAYS("name") failed at file.cc:12`; a sweep reports the seed.
// - DSIM_UNREACHABLE(name): reaching it fails the run the same way.
// - DSIM_SOMETIMES(cond, name): cond should be true in *some* runs. Counts the seeds in
//   which it was true at least once.
// - DSIM_REACHABLE(name): should be reached in some runs. Counts seeds that reached it.
// At the end of a sweep, SeedSweep prints for every SOMETIMES and REACHABLE in how many
// seeds it was hit, and warns about those never hit (sim/coverage.h): a property never
// hit means the faults or the workload never produced that situation, and the green
// sweep proves less than it seems.
//
// `name` must be a string literal; a site's identity is its kind and name (two sites
// with one name count as one property). The condition is always evaluated. Outside a
// Simulation's run (plain code, a bare Scheduler, between runs) the macros do nothing.
#ifndef DSIM_SIM_ASSERTIONS_H_
#define DSIM_SIM_ASSERTIONS_H_

#include "sim/coverage.h"

namespace dsim::internal {
// Reports an evaluation to the running simulation, if any.
void AssertionReached(const Site& site, bool condition);
}  // namespace dsim::internal

// A constant Site for this expansion, registered when the program loads.
#define DSIM_INTERNAL_SITE(kind, name)                                       \
  ([]() -> const ::dsim::Site* {                                             \
    static constexpr ::dsim::Site kDsimSite{kind, name, __FILE__, __LINE__}; \
    (void)::dsim::internal::SiteRegistrar<&kDsimSite>::registered;           \
    return &kDsimSite;                                                       \
  }())

#define DSIM_INTERNAL_ASSERTION(kind, cond, name)                                         \
  ::dsim::internal::AssertionReached(*DSIM_INTERNAL_SITE(::dsim::SiteKind::kind, name), \
                                     static_cast<bool>(cond))

#define DSIM_ALWAYS(cond, name) DSIM_INTERNAL_ASSERTION(kAlways, cond, name)
#define DSIM_SOMETIMES(cond, name) DSIM_INTERNAL_ASSERTION(kSometimes, cond, name)
#define DSIM_REACHABLE(name) DSIM_INTERNAL_ASSERTION(kReachable, true, name)
#define DSIM_UNREACHABLE(name) DSIM_INTERNAL_ASSERTION(kUnreachable, false, name)

#endif  // DSIM_SIM_ASSERTIONS_H_
