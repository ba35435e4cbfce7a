// Randomness from the simulation's strategy, so it replays.
#ifndef DSIM_POSIX_INTERNAL_RANDOM_H_
#define DSIM_POSIX_INTERNAL_RANDOM_H_

#include <cstddef>

#include "scheduler/scheduler.h"

namespace dsim::posix::internal {

// getrandom(2) semantics: fills `length` bytes, returns the count or -1 with errno.
long FillRandom(Scheduler& scheduler, void* buffer, size_t length, unsigned flags);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_RANDOM_H_
