// The six random characters of a temporary name (mkstemp's, mktemp's, tmpnam's), drawn
// from the strategy so that a seed replays them; glibc draws them from the real clock.
#ifndef DSIM_POSIX_INTERNAL_TEMP_NAMES_H_
#define DSIM_POSIX_INTERNAL_TEMP_NAMES_H_

#include "scheduler/scheduler.h"

namespace dsim::posix::internal {

// glibc's bound on the names tried before giving up with EEXIST.
inline constexpr int kTempNameAttempts = 62 * 62 * 62;

// Writes six characters of [A-Za-z0-9], as glibc's, over `six`.
inline void DrawTempNameLetters(Scheduler& scheduler, char* six) {
  static constexpr char kLetters[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  uint64_t bits = scheduler.random().NextBits();
  for (int i = 0; i < 6; ++i, bits /= 62) six[i] = kLetters[bits % 62];
}

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_TEMP_NAMES_H_
