#include "tests/fuzz/schedule_fuzz.h"

#include <cstdio>
#include <cstdlib>

#include "absl/status/statusor.h"
#include "scheduler/schedule.h"

namespace dsim::fuzz {
namespace {

[[noreturn]] void PropertyFailed(const char* what, absl::string_view detail) {
  std::fprintf(stderr, "schedule fuzz property failed: %s: %.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

bool CheckFile(absl::string_view bytes) {
  absl::StatusOr<Schedule> parsed = Schedule::Parse(bytes);
  if (!parsed.ok()) return false;
  absl::StatusOr<std::string> again = parsed->Serialize();
  if (!again.ok()) PropertyFailed("Parse accepted what Serialize rejects", again.status().message());
  absl::StatusOr<Schedule> reparsed = Schedule::Parse(*again);
  if (!reparsed.ok()) PropertyFailed("a serialized schedule does not parse", reparsed.status().message());
  if (!(*reparsed == *parsed) || reparsed->seed() != parsed->seed() ||
      reparsed->strategy() != parsed->strategy()) {
    PropertyFailed("round trip changed the schedule", parsed->ToString());
  }
  return true;
}

}  // namespace

std::string WithChecksum(absl::string_view body) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (unsigned char c : body) hash = (hash ^ c) * 0x100000001b3ULL;
  std::string out(body);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((hash >> (8 * i)) & 0xff));
  return out;
}

bool CheckScheduleBytes(absl::string_view bytes) {
  const bool raw = CheckFile(bytes);
  const bool checksummed = CheckFile(WithChecksum(bytes));
  return raw || checksummed;
}

}  // namespace dsim::fuzz
