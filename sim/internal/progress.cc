#include "sim/internal/progress.h"

#include <unistd.h>

#include <cstdio>

#include "absl/strings/str_format.h"

namespace dsim::internal {
namespace {

// A sweep shorter than this shows no progress at all (no flicker in quick tests).
constexpr std::chrono::milliseconds kFirstDraw(1000);
constexpr std::chrono::milliseconds kRedraw(200);

}  // namespace

ProgressLine::ProgressLine(std::string label, uint64_t total, std::optional<bool> enabled)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled.value_or(isatty(STDERR_FILENO) != 0)),
      start_(Clock::now()),
      last_draw_(start_) {}

ProgressLine::~ProgressLine() {
  if (!drawn_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
}

void ProgressLine::SeedDone(bool failed) {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mu_);
  ++done_;
  if (failed) ++failed_;
  const Clock::time_point now = Clock::now();
  if (now - start_ < kFirstDraw || (drawn_ && now - last_draw_ < kRedraw)) return;
  Draw(now);
}

void ProgressLine::Draw(Clock::time_point now) {
  const double seconds = std::chrono::duration<double>(now - start_).count();
  const double rate = seconds > 0 ? static_cast<double>(done_) / seconds : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done_) / rate : 0;
  std::fprintf(stderr, "\r\033[K%s: %llu/%llu seeds, %llu failed, %.1f seeds/s, ETA %.1fs",
               label_.c_str(), static_cast<unsigned long long>(done_),
               static_cast<unsigned long long>(total_),
               static_cast<unsigned long long>(failed_), rate, eta);
  std::fflush(stderr);
  last_draw_ = now;
  drawn_ = true;
}

}  // namespace dsim::internal
