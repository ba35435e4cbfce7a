#include "sim/clock_faults.h"

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"

namespace dsim {

bool ClockFaultOptions::any() const {
  return !fixed.empty() || random_offset_max > absl::ZeroDuration() || random_drift_ppm_max > 0 ||
         jumps_max > 0;
}

void ClockFaultOptions::Validate() const {
  DSIM_MISUSE(random_offset_max >= absl::ZeroDuration() && random_offset_max <= absl::Hours(24 * 365),
              "ClockFaultOptions::random_offset_max must lie in [0, 1 year]");
  DSIM_MISUSE(random_drift_ppm_max >= 0 && random_drift_ppm_max <= 100'000,
              "ClockFaultOptions::random_drift_ppm_max must lie in [0, 100000] ppm");
  DSIM_MISUSE(jumps_max >= 0 && jumps_max <= 1000, "ClockFaultOptions::jumps_max must lie in [0, 1000]");
  DSIM_MISUSE(jump_window > absl::ZeroDuration() && jump_max >= absl::ZeroDuration() &&
                  jump_max <= absl::Hours(24 * 365),
              "ClockFaultOptions: jump_window must be positive and jump_max in [0, 1 year]");
  for (const HostClockSkew& skew : fixed) {
    DSIM_MISUSE(skew.drift_ppm >= -100'000 && skew.drift_ppm <= 100'000,
                "HostClockSkew::drift_ppm must lie in [-100000, 100000] ppm");
  }
}

std::string FormatClockSkew(absl::Duration offset, int64_t drift_ppb) {
  const int64_t ppm_tenths = drift_ppb / 100;
  return absl::StrCat("offset ", offset < absl::ZeroDuration() ? "" : "+", absl::FormatDuration(offset),
                      " drift ", drift_ppb < 0 ? "-" : "+", std::abs(ppm_tenths) / 10, ".",
                      std::abs(ppm_tenths) % 10, "ppm");
}

}  // namespace dsim
