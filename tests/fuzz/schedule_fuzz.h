// The schedule parser's fuzz property, shared by the libFuzzer target
// (//tests/fuzz:schedule_parse_fuzzer) and the seeded driver in the default suite
// (//tests/fuzz:schedule_parse_fuzz_test).
//
// For any bytes: Schedule::Parse returns a schedule or an error, and never crashes,
// overflows or allocates without bound. A parsed schedule serializes again (Validate
// accepts everything Parse accepts), and parses back to itself. The bytes are tried
// twice: as a whole file, and as a file body with a valid checksum appended, since
// random bytes almost never carry a valid checksum and would stop at that check.
#ifndef DSIM_TESTS_FUZZ_SCHEDULE_FUZZ_H_
#define DSIM_TESTS_FUZZ_SCHEDULE_FUZZ_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace dsim::fuzz {

// `body` with the 8-byte little-endian FNV-1a 64 checksum the format ends with.
std::string WithChecksum(absl::string_view body);

// Checks the property for one input; aborts with a message when it does not hold.
// Returns true if either form of the input parsed.
bool CheckScheduleBytes(absl::string_view bytes);

}  // namespace dsim::fuzz

#endif  // DSIM_TESTS_FUZZ_SCHEDULE_FUZZ_H_
