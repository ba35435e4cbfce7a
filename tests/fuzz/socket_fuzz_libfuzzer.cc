// libFuzzer entry point: every input is a socket program (tests/fuzz/socket_program.h),
// run twice; different fingerprints abort. Build and run with clang-14 (see
// tests/fuzz/README.md): tests/fuzz/build_libfuzzer.sh, then
//   /tmp/dsim-socket-fuzz -max_total_time=600 /tmp/dsim-socket-corpus
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
