// ProgressLine: "dsim: 120/1000 seeds, 1 failed, 345.6 seeds/s, ETA 2.5s" on stderr,
// redrawn in place while a long sweep runs. Uses the wall clock, which is fine: it
// lives outside every simulation and decides nothing inside one. Thread-safe.
#ifndef DSIM_SIM_INTERNAL_PROGRESS_H_
#define DSIM_SIM_INTERNAL_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace dsim::internal {

class ProgressLine {
 public:
  // `enabled`: nullopt means "when stderr is a terminal".
  ProgressLine(std::string label, uint64_t total, std::optional<bool> enabled);
  ~ProgressLine();  // Clears the line.

  void SeedDone(bool failed);

 private:
  using Clock = std::chrono::steady_clock;
  void Draw(Clock::time_point now);

  const std::string label_;
  const uint64_t total_;
  const bool enabled_;
  const Clock::time_point start_;
  std::mutex mu_;
  uint64_t done_ = 0;
  uint64_t failed_ = 0;
  Clock::time_point last_draw_;
  bool drawn_ = false;
};

}  // namespace dsim::internal

#endif  // DSIM_SIM_INTERNAL_PROGRESS_H_
