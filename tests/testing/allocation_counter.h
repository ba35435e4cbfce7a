// Counts every heap allocation of the binary that links //tests:allocation_counter (it
// replaces the global operator new and delete), so a test or a benchmark can pin that a
// steady-state loop allocates nothing.
//
//   const uint64_t before = dsim::testing::HeapAllocations();
//   RunTheLoop();
//   EXPECT_EQ(dsim::testing::HeapAllocations() - before, 0u);
#ifndef DSIM_TESTS_TESTING_ALLOCATION_COUNTER_H_
#define DSIM_TESTS_TESTING_ALLOCATION_COUNTER_H_

#include <cstdint>

namespace dsim::testing {

// Allocations through operator new and new[] since the process started (relaxed atomic:
// exact while one thread allocates, a count across threads otherwise).
uint64_t HeapAllocations();

}  // namespace dsim::testing

#endif  // DSIM_TESTS_TESTING_ALLOCATION_COUNTER_H_
