// Inline conversions between absl::Time / absl::Duration and int64 nanoseconds.
//
// Debian's Abseil is a shared library: absl::ToInt64Nanoseconds and absl::Time /
// absl::Duration arithmetic are out-of-line calls of 20 to 60 instructions each. The run
// loop, the network and the socket engine keep their times as int64 nanoseconds since
// Scheduler::Epoch() and convert at the edges with these. The fast paths read a
// Duration's representation (whole seconds and quarter nanoseconds) through Abseil's own
// inline accessors, as newer Abseil's inline ToInt64Nanoseconds does; anything outside
// them (negative, infinite, beyond about 272 years) takes Abseil's path. Sub-nanosecond
// parts are truncated, as absl::ToInt64Nanoseconds truncates them.
//
// Example:
//
//   int64_t due_ns = internal::SaturatingAdd(scheduler.NowNanos(),
//                                            internal::DurationToNanos(latency));
#ifndef DSIM_SCHEDULER_INTERNAL_NANOS_H_
#define DSIM_SCHEDULER_INTERNAL_NANOS_H_

#include <cstdint>

#include "absl/base/optimization.h"
#include "absl/time/time.h"

namespace dsim::internal {

// Scheduler::Epoch(), 2000-01-01 00:00:00 UTC, in Unix seconds and nanoseconds.
inline constexpr int64_t kEpochUnixSeconds = 946684800;
inline constexpr int64_t kEpochUnixNanos = kEpochUnixSeconds * 1000000000;
// "Never": the nanosecond form of absl::InfiniteFuture() and absl::InfiniteDuration().
inline constexpr int64_t kNeverNanos = INT64_MAX;

// A duration in nanoseconds, as absl::ToInt64Nanoseconds (INT64_MAX for infinite ones).
inline int64_t DurationToNanos(absl::Duration d) {
  const int64_t seconds = absl::time_internal::GetRepHi(d);
  if (ABSL_PREDICT_TRUE(seconds >= 0 && (seconds >> 33) == 0)) {
    // Finite (an infinite duration has seconds == INT64_MAX) and small enough that the
    // product cannot overflow. The low word counts quarter nanoseconds.
    return seconds * 1000000000 + absl::time_internal::GetRepLo(d) / 4;
  }
  return absl::ToInt64Nanoseconds(d);
}

// a + b for b >= 0, stopping at kNeverNanos instead of overflowing.
inline int64_t SaturatingAdd(int64_t a, int64_t b) {
  return b > kNeverNanos - a ? kNeverNanos : a + b;
}

// The instant `ns` nanoseconds after the epoch; kNeverNanos is absl::InfiniteFuture().
inline absl::Time EpochNanosToTime(int64_t ns) {
  if (ABSL_PREDICT_TRUE(ns <= kNeverNanos - kEpochUnixNanos)) {
    return absl::FromUnixNanos(kEpochUnixNanos + ns);
  }
  if (ns == kNeverNanos) return absl::InfiniteFuture();
  return absl::FromUnixSeconds(kEpochUnixSeconds) + absl::Nanoseconds(ns);
}

// Nanoseconds since the epoch of `t`, clamped as Scheduler's timers are: 0 before the
// epoch, kNeverNanos at or beyond the last representable nanosecond.
int64_t TimeToEpochNanosSlow(absl::Time t);
inline int64_t TimeToEpochNanos(absl::Time t) {
  const absl::Duration since_unix = absl::time_internal::ToUnixDuration(t);
  const int64_t unix_seconds = absl::time_internal::GetRepHi(since_unix);
  const uint32_t quarters = absl::time_internal::GetRepLo(since_unix);
  // An infinite time has the low word ~0; seconds below 2^33 cannot overflow.
  if (ABSL_PREDICT_TRUE(unix_seconds >= kEpochUnixSeconds &&
                        ((unix_seconds - kEpochUnixSeconds) >> 33) == 0 &&
                        quarters != ~uint32_t{0})) {
    return (unix_seconds - kEpochUnixSeconds) * 1000000000 + quarters / 4;
  }
  if (t == absl::InfiniteFuture()) return kNeverNanos;  // "No deadline": common.
  return TimeToEpochNanosSlow(t);
}

}  // namespace dsim::internal

#endif  // DSIM_SCHEDULER_INTERNAL_NANOS_H_
