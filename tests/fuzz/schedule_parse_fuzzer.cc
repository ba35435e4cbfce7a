// libFuzzer entry point for the schedule parser. Build and run with clang-14:
//
//   ./bazelw --output_base=/tmp/dsim-fuzz build --config=fuzz //tests/fuzz:schedule_parse_fuzzer
//   mkdir -p /tmp/schedule-corpus
//   /tmp/dsim-fuzz/execroot/dsim/bazel-out/k8-fastbuild/bin/tests/fuzz/schedule_parse_fuzzer
//       /tmp/schedule-corpus -max_total_time=60
//
// (A separate output base keeps the clang toolchain from replacing the gcc one of the
// everyday build.) The property is in schedule_fuzz.h.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/schedule_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsim::fuzz::CheckScheduleBytes(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
