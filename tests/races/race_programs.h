// Internal to the race corpus: what its source files share.
#ifndef DSIM_TESTS_RACES_RACE_PROGRAMS_H_
#define DSIM_TESTS_RACES_RACE_PROGRAMS_H_

#include "tests/races/race_corpus.h"

namespace dsim::races {

inline bool Buggy(Variant variant) { return variant == Variant::kBuggy; }

// network_races.cc
RaceOutcome DuplicateAfterRetry(Variant variant, const RaceRunOptions& options);
RaceOutcome StaleReadAfterHeal(Variant variant, const RaceRunOptions& options);

}  // namespace dsim::races

#endif  // DSIM_TESTS_RACES_RACE_PROGRAMS_H_
