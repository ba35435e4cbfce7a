// glibc 2.36's arc4random, arc4random_buf and arc4random_uniform fill from getrandom
// through an internal call no interposer sees. In a task they draw from the strategy
// exactly as getrandom does (FillRandom), so they are recorded and replayed; outside
// tasks they are glibc's.
#include <stdint.h>
#include <stdlib.h>

#include "posix/internal/random.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(arc4random);
DSIM_DECLARE_REAL(arc4random_buf);
DSIM_DECLARE_REAL(arc4random_uniform);

uint32_t Draw32(dsim::Scheduler& scheduler) {
  uint32_t value = 0;
  pi::FillRandom(scheduler, &value, sizeof(value), 0);
  return value;
}

}  // namespace

extern "C" {

uint32_t arc4random(void) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(arc4random)();
  return Draw32(*scheduler);
}

void arc4random_buf(void* buffer, size_t length) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(arc4random_buf)(buffer, length);
  // FillRandom, like getrandom, fills at most 33,554,431 bytes per call.
  auto* out = static_cast<unsigned char*>(buffer);
  while (length > 0) {
    const long filled = pi::FillRandom(*scheduler, out, length, 0);
    out += filled;
    length -= static_cast<size_t>(filled);
  }
}

// Unbiased: draws are masked to the smallest power of two above the bound and rejected
// until one lies below it (each try succeeds with probability above one half). A
// modulo would favour small results.
uint32_t arc4random_uniform(uint32_t upper_bound) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(arc4random_uniform)(upper_bound);
  if (upper_bound <= 1) return 0;  // As glibc: 0 for a bound of 0 or 1.
  const uint32_t mask = UINT32_MAX >> __builtin_clz(upper_bound - 1);
  while (true) {
    const uint32_t value = Draw32(*scheduler) & mask;
    if (value < upper_bound) return value;
  }
}

}  // extern "C"
