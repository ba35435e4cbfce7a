// Race programs written in plain standard C++ (std::thread, std::mutex,
// std::condition_variable, std::this_thread::sleep_for), run unmodified under //posix.
// Same shape as race_corpus.h: each has a planted bug and a fixed twin that must never
// fail.
//
// Example:
//
//   for (const dsim::races::RaceProgram& program : dsim::races::StdCorpus()) {
//     dsim::races::RaceOutcome outcome = program.run(dsim::races::Variant::kBuggy, {pct});
//   }
//
// Linking this library links //posix: std:: calls made inside tasks are simulated.
#ifndef DSIM_TESTS_RACES_STD_RACES_H_
#define DSIM_TESTS_RACES_STD_RACES_H_

#include <vector>

#include "tests/races/race_corpus.h"

namespace dsim::races {

// std_bounded_queue, std_lock_order, std_lost_wakeup.
const std::vector<RaceProgram>& StdCorpus();

}  // namespace dsim::races

#endif  // DSIM_TESTS_RACES_STD_RACES_H_
