// libFuzzer entry point: every input is a socket program (tests/fuzz/socket_program.h),
// run twice; different fingerprints abort. Build with clang-14 (tests/fuzz/README.md):
//   ./bazelw --output_base=/tmp/dsim-fuzz build --config=fuzz //tests/fuzz:socket_fuzzer
// or, without Bazel, tests/fuzz/build_libfuzzer.sh (-> /tmp/dsim-socket-fuzz); then
//   <binary> -max_total_time=600 /tmp/dsim-socket-corpus
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/socket_program.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const uint64_t a = dsim::fuzz::RunSocketProgram(data, size);
  const uint64_t b = dsim::fuzz::RunSocketProgram(data, size);
  if (a != b) {
    std::fprintf(stderr, "dsim socket fuzz: the same input ran differently twice "
                         "(fingerprints %016llx and %016llx)\n",
                 static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
    std::abort();
  }
  return 0;
}
