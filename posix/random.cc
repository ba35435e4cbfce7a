// Randomness: getrandom and getentropy draw from the simulation's strategy (recorded,
// replayed, shrunk like every other decision).
#include <errno.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "posix/internal/random.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"

namespace dsim::posix::internal {

long FillRandom(Scheduler& scheduler, void* buffer, size_t length, unsigned flags) {
  if ((flags & ~(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE)) != 0 ||
      (flags & (GRND_RANDOM | GRND_INSECURE)) == (GRND_RANDOM | GRND_INSECURE)) {
    errno = EINVAL;
    return -1;
  }
  // Linux caps one call at 33,554,431 bytes.
  if (length > 33554431) length = 33554431;
  auto* out = static_cast<unsigned char*>(buffer);
  size_t done = 0;
  while (done < length) {
    const uint64_t bits = scheduler.random().NextBits();
    const size_t n = length - done < 8 ? length - done : 8;
    std::memcpy(out + done, &bits, n);
    done += n;
  }
  return static_cast<long>(length);
}

}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(getrandom);
DSIM_DECLARE_REAL(getentropy);
}  // namespace

extern "C" {

ssize_t getrandom(void* buffer, size_t length, unsigned int flags) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(getrandom)(buffer, length, flags);
  return pi::FillRandom(*scheduler, buffer, length, flags);
}

int getentropy(void* buffer, size_t length) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(getentropy)(buffer, length);
  if (length > 256) {
    errno = EIO;
    return -1;
  }
  pi::FillRandom(*scheduler, buffer, length, 0);
  return 0;
}

}  // extern "C"
