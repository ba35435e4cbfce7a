// A socket program decoded from bytes, for fuzzing: the whole socket API (good and bad
// arguments: bad descriptors, null and out-of-range buffers, odd lengths, families and
// flags) from several tasks on three hosts, under a fault mix and a chaos task
// (partitions, holds, pauses, crashes and restarts, injected resets), all read from the
// input. Any byte string is a valid program; running out of bytes ends it.
//
//   uint64_t a = dsim::fuzz::RunSocketProgram(data, size);
//   uint64_t b = dsim::fuzz::RunSocketProgram(data, size);  // must equal a
//
// The result is the trace fingerprint of the run (every socket call with its result,
// every packet, every fault) mixed with the run's outcome: the same input must give
// the same value, every time, on every build.
#ifndef DSIM_TESTS_FUZZ_SOCKET_PROGRAM_H_
#define DSIM_TESTS_FUZZ_SOCKET_PROGRAM_H_

#include <cstddef>
#include <cstdint>

namespace dsim::fuzz {

uint64_t RunSocketProgram(const uint8_t* data, size_t size);

}  // namespace dsim::fuzz

#endif  // DSIM_TESTS_FUZZ_SOCKET_PROGRAM_H_
