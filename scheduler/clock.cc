#include "scheduler/clock.h"

#include "scheduler/internal/check.h"

namespace dsim {
namespace {
constexpr int64_t kBillion = 1'000'000'000;
}  // namespace

int64_t HostClock::Scale(int64_t true_ns) const {
  const __int128 scaled = static_cast<__int128>(true_ns) * (kBillion + drift_ppb_) / kBillion;
  return static_cast<int64_t>(scaled);
}

void HostClock::Anchor(absl::Time true_now) {
  anchor_wall_ = WallAt(true_now);
  anchor_monotonic_ = MonotonicAt(true_now);
  anchor_true_ = true_now;
}

void HostClock::SetDrift(absl::Time true_now, int64_t drift_ppb) {
  DSIM_MISUSE(drift_ppb > -kBillion / 2 && drift_ppb < kBillion / 2,
              "HostClock drift must lie within +-50% (", drift_ppb, " ppb)");
  Anchor(true_now);
  drift_ppb_ = drift_ppb;
}

void HostClock::Step(absl::Time true_now, absl::Duration offset) {
  Anchor(true_now);
  anchor_wall_ += offset;
}

void HostClock::Reboot(absl::Time true_now) {
  Anchor(true_now);
  anchor_monotonic_ = absl::ZeroDuration();
}

absl::Time HostClock::WallAt(absl::Time true_now) const {
  return anchor_wall_ +
         absl::Nanoseconds(Scale(absl::ToInt64Nanoseconds(true_now - anchor_true_)));
}

absl::Duration HostClock::MonotonicAt(absl::Time true_now) const {
  return anchor_monotonic_ +
         absl::Nanoseconds(Scale(absl::ToInt64Nanoseconds(true_now - anchor_true_)));
}

absl::Duration HostClock::TrueDuration(absl::Duration local) const {
  if (local == absl::InfiniteDuration() || local <= absl::ZeroDuration()) return local;
  const __int128 local_ns = absl::ToInt64Nanoseconds(local);
  const __int128 rate = kBillion + drift_ppb_;
  // Round up: a sleep must not end before the local clock has measured `local`.
  return absl::Nanoseconds(static_cast<int64_t>((local_ns * kBillion + rate - 1) / rate));
}

absl::Duration HostClock::LocalDuration(absl::Duration true_duration) const {
  if (true_duration == absl::InfiniteDuration() || true_duration <= absl::ZeroDuration()) {
    return true_duration;
  }
  return absl::Nanoseconds(Scale(absl::ToInt64Nanoseconds(true_duration)));
}

absl::Time HostClock::TrueTimeOfWall(absl::Time wall, absl::Time true_now) const {
  if (wall == absl::InfiniteFuture()) return wall;
  const absl::Time wall_now = WallAt(true_now);
  if (wall <= wall_now) return true_now;
  absl::Time when = true_now + TrueDuration(wall - wall_now);
  // Integer rounding may leave the clock a nanosecond short: step to the first instant.
  while (WallAt(when) < wall) when += absl::Nanoseconds(1);
  return when;
}

}  // namespace dsim
