// Randomness: getrandom, getentropy and reads of /dev/urandom and /dev/random draw from
// the simulation's strategy (recorded, replayed, shrunk like every other decision).
//
// The devices. open, open64, openat and openat64 are defined here WEAK: they simulate
// only the two device paths (in a task) and forward every other call. //posix:files
// defines the same names strongly for the simulated disk and asks OpenDevice() first,
// so a binary with both links without duplicate symbols and still gets the devices.
// fopen/fopen64 of the devices (std::ifstream opens with fopen64) return a stdio stream
// over the simulated descriptor (posix/streams.cc).
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "posix/internal/files.h"
#include "posix/internal/random.h"
#include "posix/internal/real.h"
#include "posix/internal/real_descriptors.h"
#include "posix/internal/state.h"
#include "sockets/socket.h"

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
DSIM_DECLARE_REAL(open);
DSIM_DECLARE_REAL(open64);
DSIM_DECLARE_REAL(openat);
DSIM_DECLARE_REAL(openat64);

// The mode argument of open is present only with O_CREAT or O_TMPFILE.
mode_t ModeOf(int flags, va_list args) {
  return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(args, mode_t) : 0;
}

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

namespace {
// A task's open of `path`: the random devices are simulated; any other path is opened by
// `open_real` (the real file system) and its descriptor moved out of the host's range.
template <typename OpenReal>
int OpenInTask(dsim::Scheduler& scheduler, const char* call, const char* path, int flags,
               OpenReal open_real) {
  if (const int fd = pi::OpenDevice(scheduler, call, path, flags); fd != pi::kNotADevice) {
    return fd;
  }
  return pi::MoveToRealRange(scheduler, call, open_real());
}
}  // namespace

extern "C" {

// Weak: //posix:files defines these strongly (and calls pi::OpenDevice first).
__attribute__((weak)) int open(const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = ModeOf(flags, args);
  va_end(args);
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    return OpenInTask(*scheduler, "open", path, flags,
                      [&] { return DSIM_REAL(open)(path, flags, mode); });
  }
  return DSIM_REAL(open)(path, flags, mode);
}

__attribute__((weak)) int open64(const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = ModeOf(flags, args);
  va_end(args);
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    return OpenInTask(*scheduler, "open64", path, flags,
                      [&] { return DSIM_REAL(open64)(path, flags, mode); });
  }
  return DSIM_REAL(open64)(path, flags, mode);
}

__attribute__((weak)) int openat(int dirfd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = ModeOf(flags, args);
  va_end(args);
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    return OpenInTask(*scheduler, "openat", path, flags,
                      [&] { return DSIM_REAL(openat)(dirfd, path, flags, mode); });
  }
  return DSIM_REAL(openat)(dirfd, path, flags, mode);
}

__attribute__((weak)) int openat64(int dirfd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = ModeOf(flags, args);
  va_end(args);
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    return OpenInTask(*scheduler, "openat64", path, flags,
                      [&] { return DSIM_REAL(openat64)(dirfd, path, flags, mode); });
  }
  return DSIM_REAL(openat64)(dirfd, path, flags, mode);
}

}  // extern "C"
