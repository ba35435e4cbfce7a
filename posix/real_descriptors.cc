// See posix/internal/real_descriptors.h.
#include "posix/internal/real_descriptors.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"
#include "sockets/internal/stack.h"

namespace dsim::posix::internal {

::dsim::internal::HostStack* SimulatedFd(Scheduler& scheduler, int fd);  // posix/io.cc

namespace {
DSIM_DECLARE_REAL(fcntl);
DSIM_DECLARE_REAL(close);
}  // namespace

int ComputeRealDescriptorFloor() {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) return 1 << 19;
  // Below 64 there is no room for two ranges; moving would only spend descriptors.
  if (limit.rlim_cur < 64) return 3;
  return static_cast<int>(limit.rlim_cur / 2);
}
}  // namespace dsim::posix::internal

namespace dsim::posix {
int RealDescriptorFloor() {
  static const int floor = internal::ComputeRealDescriptorFloor();
  return floor;
}
}  // namespace dsim::posix

namespace dsim::posix::internal {

int MoveToRealRange(Scheduler& scheduler, const char* call, int fd) {
  if (fd < 0) return fd;
  const int saved_errno = errno;
  const int fd_flags = DSIM_REAL(fcntl)(fd, F_GETFD);
  const int command = fd_flags > 0 && (fd_flags & FD_CLOEXEC) ? F_DUPFD_CLOEXEC : F_DUPFD;
  int lowest = RealDescriptorFloor();
  int moved = -1;
  // A host holding numbers in the real range (over RLIMIT_NOFILE/2 descriptors open) only
  // pushes the real descriptor further up.
  for (int attempt = 0; attempt < 64; ++attempt) {
    moved = fd >= lowest && SimulatedFd(scheduler, fd) == nullptr
                ? fd
                : DSIM_REAL(fcntl)(fd, command, lowest);
    if (moved < 0 || SimulatedFd(scheduler, moved) == nullptr) break;
    DSIM_REAL(close)(moved);
    lowest = moved + 1;
    moved = -1;
  }
  if (moved < 0) {
    if (SimulatedFd(scheduler, fd) != nullptr) {
      RecordEscape(scheduler, call,
                   absl::StrCat("the real descriptor ", fd,
                                " has the number of one of the host's simulated descriptors "
                                "and cannot be moved out of its way (no free descriptor at or "
                                "above ", RealDescriptorFloor(), ")"),
                   true);
    }
    errno = saved_errno;
    return fd;
  }
  if (moved != fd) DSIM_REAL(close)(fd);
  errno = saved_errno;
  return moved;
}

FILE* MoveStreamToRealRange(Scheduler& scheduler, const char* call, FILE* stream) {
  if (stream == nullptr) return stream;
  const int fd = fileno(stream);
  const int moved = MoveToRealRange(scheduler, call, fd);
  // glibc reads the descriptor from _fileno on every operation (read, write, seek, close).
  if (moved != fd) stream->_fileno = moved;
  return stream;
}

}  // namespace dsim::posix::internal
