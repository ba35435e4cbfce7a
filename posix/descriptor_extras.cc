// The rarer descriptor calls. Every call that takes a descriptor must either act on the
// simulated descriptor or refuse loudly: one that reached the kernel with a simulated
// number would act on the process's real descriptor of that number (GoogleTest's log,
// Bazel's pipes) and nobody would know.
//
//   simulated:  sendmmsg, recvmmsg, sendfile (emulated with reads and writes), isatty,
//               tcgetattr, tcsetattr, ttyname, ttyname_r (ENOTTY, as for any socket),
//               close_range and closefrom (the host's descriptors in the range)
//               lockf (fcntl record locks, as glibc's), posix_fadvise and readahead (advice:
//               nothing to do, with Linux's errors for pipes and sockets)
//   refused:    splice, tee, vmsplice, copy_file_range with a simulated descriptor (the
//               run fails naming the call; -1 with EINVAL)
//               pidfd_open (pids in a task are simulated; a real pidfd would name a
//               real process)
//   moved:      memfd_create, inotify_init(1), signalfd and fanotify_init make real
//               descriptors: each is moved to the real range at once
//               (posix/internal/real_descriptors.h), as real files are.
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/fanotify.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
// glibc 2.36's <sys/pidfd.h> lacks __BEGIN_DECLS.
extern "C" {
#include <sys/pidfd.h>
}
#include <sys/socket.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "posix/internal/descriptor_kinds.h"
#include "posix/internal/real.h"
#include "posix/internal/real_descriptors.h"
#include "posix/internal/state.h"
#include "posix/internal/streams.h"
#include "sockets/internal/open_file.h"
#include "sockets/internal/stack.h"
#include "sockets/socket.h"

namespace dsim::posix::internal {
::dsim::internal::HostStack* SimulatedFd(Scheduler& scheduler, int fd);  // posix/io.cc
bool Forwarded(Scheduler& scheduler, const char* call, int fd);          // posix/io.cc
::dsim::internal::HostStack* HostOfTask(Scheduler& scheduler);           // posix/io.cc
}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
using ::dsim::internal::HostStack;

DSIM_DECLARE_REAL(sendmmsg);
DSIM_DECLARE_REAL(recvmmsg);
DSIM_DECLARE_REAL(sendfile);
DSIM_DECLARE_REAL(sendfile64);
DSIM_DECLARE_REAL(isatty);
DSIM_DECLARE_REAL(tcgetattr);
DSIM_DECLARE_REAL(tcsetattr);
DSIM_DECLARE_REAL(ttyname);
DSIM_DECLARE_REAL(ttyname_r);
DSIM_DECLARE_REAL(close_range);
DSIM_DECLARE_REAL(closefrom);
DSIM_DECLARE_REAL(splice);
DSIM_DECLARE_REAL(tee);
DSIM_DECLARE_REAL(vmsplice);
DSIM_DECLARE_REAL(copy_file_range);
DSIM_DECLARE_REAL(lockf);
DSIM_DECLARE_REAL(lockf64);
DSIM_DECLARE_REAL(posix_fadvise);
DSIM_DECLARE_REAL(posix_fadvise64);
DSIM_DECLARE_REAL(readahead);
DSIM_DECLARE_REAL(memfd_create);
DSIM_DECLARE_REAL(inotify_init);
DSIM_DECLARE_REAL(inotify_init1);
DSIM_DECLARE_REAL(signalfd);
DSIM_DECLARE_REAL(fanotify_init);
DSIM_DECLARE_REAL(pidfd_open);

dsim::SourceLocation Where(dsim::Scheduler& scheduler) {
  return pi::CachedCallerLocation(pi::State(scheduler));
}

// In a task: is `fd` simulated? See pi::SimulatedOrForwarded.
bool IsSimulated(dsim::Scheduler& scheduler, const char* call, int fd, bool* refused) {
  return pi::SimulatedOrForwarded(scheduler, call, fd, refused) != nullptr;
}

// A call dsim cannot simulate on a simulated descriptor: the run fails naming it.
int Refuse(dsim::Scheduler& scheduler, const char* call, int fd) {
  pi::RecordEscape(scheduler, call,
                   absl::StrCat("descriptor ", fd,
                                " is simulated, and this call is not simulated (it would reach "
                                "the process's real descriptor of that number)"),
                   true);
  errno = EINVAL;
  return -1;
}

bool EitherSimulated(dsim::Scheduler& scheduler, int a, int b) {
  return pi::SimulatedFd(scheduler, a) != nullptr || pi::SimulatedFd(scheduler, b) != nullptr;
}

// sendfile between descriptors of which at least one is simulated: read a chunk from
// `in` (pread at *offset when given, else read at its position), write it to `out`,
// until `count` bytes, end of file, or a write that takes less. The reads and writes go
// through the interposed calls, which route each descriptor to its kind. `in` must be
// a file: a simulated socket or pipe is EINVAL, as for Linux without a page cache.
ssize_t EmulatedSendfile(int out, int in, off64_t* offset, size_t count) {
  char chunk[16384];
  size_t done = 0;
  while (done < count) {
    const size_t want = std::min(count - done, sizeof chunk);
    const ssize_t got = offset != nullptr ? pread64(in, chunk, want, *offset)
                                          : read(in, chunk, want);
    if (got < 0) {
      if (errno == ESPIPE) errno = EINVAL;
      return done > 0 ? static_cast<ssize_t>(done) : -1;
    }
    if (got == 0) break;
    ssize_t put = 0;
    while (put < got) {
      const ssize_t n = write(out, chunk + put, got - put);
      if (n <= 0) break;
      put += n;
    }
    if (offset != nullptr) {
      *offset += put;
    } else if (put < got) {
      lseek64(in, put - got, SEEK_CUR);  // Give back what was read but not sent.
    }
    done += static_cast<size_t>(put);
    if (put < got) return done > 0 ? static_cast<ssize_t>(done) : -1;
  }
  return static_cast<ssize_t>(done);
}

// lockf(3) as glibc builds it on fcntl(2), through the interposed fcntl (record locks of
// disk files with //posix:files; dsim's answer for other kinds).
int EmulatedLockf(int fd, int command, off64_t length) {
  struct flock64 lock = {};
  lock.l_whence = SEEK_CUR;
  lock.l_len = length;
  switch (command) {
    case F_TEST:
      lock.l_type = F_RDLCK;
      if (fcntl(fd, F_GETLK64, &lock) < 0) return -1;
      if (lock.l_type == F_UNLCK) return 0;
      return errno = EACCES, -1;
    case F_ULOCK:
      lock.l_type = F_UNLCK;
      return fcntl(fd, F_SETLK64, &lock);
    case F_LOCK:
      lock.l_type = F_WRLCK;
      return fcntl(fd, F_SETLKW64, &lock);
    case F_TLOCK:
      lock.l_type = F_WRLCK;
      return fcntl(fd, F_SETLK64, &lock);
    default:
      return errno = EINVAL, -1;
  }
}

// posix_fadvise(2) and readahead(2) of a simulated descriptor: advice, so nothing to do
// for a disk file; pipes are ESPIPE and other kinds EINVAL (readahead) as in Linux.
bool IsPipe(dsim::Scheduler& scheduler, int fd) {
  HostStack* stack = pi::SimulatedFd(scheduler, fd);
  const ::dsim::internal::OpenFile* file = stack != nullptr ? stack->LookupFile(fd) : nullptr;
  return file != nullptr && std::strcmp(file->kind(), "pipe") == 0;
}

int SimulatedFadvise(dsim::Scheduler& scheduler, int fd, int advice) {
  if (advice < POSIX_FADV_NORMAL || advice > POSIX_FADV_NOREUSE) return EINVAL;
  return IsPipe(scheduler, fd) ? ESPIPE : 0;
}

// A simulated descriptor is never a terminal.
constexpr int kNotATerminal = ENOTTY;

}  // namespace

extern "C" {

int sendmmsg(int fd, struct mmsghdr* messages, unsigned int count, int flags) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(sendmmsg)(fd, messages, count, flags);
  bool refused;
  if (IsSimulated(*scheduler, "sendmmsg", fd, &refused)) {
    DSIM_CALL_SITE(*scheduler);
    return dsim::Sendmmsg(fd, messages, count, flags, Where(*scheduler));
  }
  return refused ? -1 : DSIM_REAL(sendmmsg)(fd, messages, count, flags);
}

int recvmmsg(int fd, struct mmsghdr* messages, unsigned int count, int flags,
             struct timespec* timeout) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(recvmmsg)(fd, messages, count, flags, timeout);
  bool refused;
  if (IsSimulated(*scheduler, "recvmmsg", fd, &refused)) {
    DSIM_CALL_SITE(*scheduler);
    return dsim::Recvmmsg(fd, messages, count, flags, timeout, Where(*scheduler));
  }
  return refused ? -1 : DSIM_REAL(recvmmsg)(fd, messages, count, flags, timeout);
}

ssize_t sendfile64(int out, int in, off64_t* offset, size_t count) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr || !EitherSimulated(*scheduler, out, in)) {
    if (scheduler != nullptr && !pi::Forwarded(*scheduler, "sendfile", out)) return -1;
    return DSIM_REAL(sendfile64)(out, in, offset, count);
  }
  if (pi::SimulatedFd(*scheduler, in) != nullptr && !pi::PathsAreSimulated()) {
    errno = EINVAL;  // Without //posix:files no simulated descriptor is a file.
    return -1;
  }
  return EmulatedSendfile(out, in, offset, count);
}

ssize_t sendfile(int out, int in, off_t* offset, size_t count) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr || !EitherSimulated(*scheduler, out, in)) {
    if (scheduler != nullptr && !pi::Forwarded(*scheduler, "sendfile", out)) return -1;
    return DSIM_REAL(sendfile)(out, in, offset, count);
  }
  off64_t position = offset != nullptr ? *offset : 0;
  const ssize_t result = sendfile64(out, in, offset != nullptr ? &position : nullptr, count);
  if (offset != nullptr) *offset = static_cast<off_t>(position);
  return result;
}

int isatty(int fd) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(isatty)(fd);
  bool refused;
  if (IsSimulated(*scheduler, "isatty", fd, &refused)) return errno = kNotATerminal, 0;
  return refused ? 0 : DSIM_REAL(isatty)(fd);
}

int tcgetattr(int fd, struct termios* out) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(tcgetattr)(fd, out);
  bool refused;
  if (IsSimulated(*scheduler, "tcgetattr", fd, &refused)) return errno = kNotATerminal, -1;
  return refused ? -1 : DSIM_REAL(tcgetattr)(fd, out);
}

int tcsetattr(int fd, int when, const struct termios* in) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(tcsetattr)(fd, when, in);
  bool refused;
  if (IsSimulated(*scheduler, "tcsetattr", fd, &refused)) return errno = kNotATerminal, -1;
  return refused ? -1 : DSIM_REAL(tcsetattr)(fd, when, in);
}

char* ttyname(int fd) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(ttyname)(fd);
  bool refused;
  if (IsSimulated(*scheduler, "ttyname", fd, &refused)) return errno = kNotATerminal, nullptr;
  return refused ? nullptr : DSIM_REAL(ttyname)(fd);
}

int ttyname_r(int fd, char* buffer, size_t length) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(ttyname_r)(fd, buffer, length);
  bool refused;
  if (IsSimulated(*scheduler, "ttyname_r", fd, &refused)) return kNotATerminal;
  return refused ? EPERM : DSIM_REAL(ttyname_r)(fd, buffer, length);
}

// The host's descriptors in [first, last] are closed (or marked close-on-exec). The
// process's real descriptors are not the task's and stay open; the call is listed.
int close_range(unsigned int first, unsigned int last, int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(close_range)(first, last, flags);
  if (first > last || (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) != 0) {
    errno = EINVAL;
    return -1;
  }
  dsim::Scheduler::NoUnwindScope no_unwind;
  if (HostStack* stack = pi::HostOfTask(*scheduler); stack != nullptr) {
    for (unsigned fd = first; fd <= last && fd < stack->descriptor_table_size(); ++fd) {
      if (!stack->IsOpen(static_cast<int>(fd))) continue;
      if (flags & CLOSE_RANGE_CLOEXEC) {
        dsim::Fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
      } else {
        dsim::Close(static_cast<int>(fd));
      }
    }
  }
  pi::RecordEscape(*scheduler, "close_range",
                   "closed the host's simulated descriptors in the range; the process's real "
                   "descriptors there were left open (they are not the task's)",
                   false);
  return 0;
}

void closefrom(int lowest) noexcept {
  if (pi::TaskScheduler() == nullptr) return DSIM_REAL(closefrom)(lowest);
  close_range(static_cast<unsigned>(std::max(lowest, 0)), ~0U, 0);
}

ssize_t splice(int in, off64_t* in_offset, int out, off64_t* out_offset, size_t length,
               unsigned int flags) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler != nullptr && EitherSimulated(*scheduler, in, out)) {
    return Refuse(*scheduler, "splice", pi::SimulatedFd(*scheduler, in) ? in : out);
  }
  return DSIM_REAL(splice)(in, in_offset, out, out_offset, length, flags);
}

ssize_t tee(int in, int out, size_t length, unsigned int flags) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler != nullptr && EitherSimulated(*scheduler, in, out)) {
    return Refuse(*scheduler, "tee", pi::SimulatedFd(*scheduler, in) ? in : out);
  }
  return DSIM_REAL(tee)(in, out, length, flags);
}

ssize_t vmsplice(int fd, const struct iovec* iov, size_t count, unsigned int flags) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler != nullptr && pi::SimulatedFd(*scheduler, fd) != nullptr) {
    return Refuse(*scheduler, "vmsplice", fd);
  }
  return DSIM_REAL(vmsplice)(fd, iov, count, flags);
}

ssize_t copy_file_range(int in, off64_t* in_offset, int out, off64_t* out_offset,
                        size_t length, unsigned int flags) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler != nullptr && EitherSimulated(*scheduler, in, out)) {
    return Refuse(*scheduler, "copy_file_range", pi::SimulatedFd(*scheduler, in) ? in : out);
  }
  return DSIM_REAL(copy_file_range)(in, in_offset, out, out_offset, length, flags);
}

int lockf(int fd, int command, off_t length) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(lockf)(fd, command, length);
  bool refused;
  if (IsSimulated(*scheduler, "lockf", fd, &refused)) return EmulatedLockf(fd, command, length);
  return refused ? -1 : DSIM_REAL(lockf)(fd, command, length);
}

int lockf64(int fd, int command, off64_t length) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(lockf64)(fd, command, length);
  bool refused;
  if (IsSimulated(*scheduler, "lockf64", fd, &refused)) {
    return EmulatedLockf(fd, command, length);
  }
  return refused ? -1 : DSIM_REAL(lockf64)(fd, command, length);
}

int posix_fadvise(int fd, off_t offset, off_t length, int advice) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(posix_fadvise)(fd, offset, length, advice);
  bool refused;
  if (IsSimulated(*scheduler, "posix_fadvise", fd, &refused)) {
    return SimulatedFadvise(*scheduler, fd, advice);
  }
  return refused ? EPERM : DSIM_REAL(posix_fadvise)(fd, offset, length, advice);
}

int posix_fadvise64(int fd, off64_t offset, off64_t length, int advice) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(posix_fadvise64)(fd, offset, length, advice);
  bool refused;
  if (IsSimulated(*scheduler, "posix_fadvise64", fd, &refused)) {
    return SimulatedFadvise(*scheduler, fd, advice);
  }
  return refused ? EPERM : DSIM_REAL(posix_fadvise64)(fd, offset, length, advice);
}

ssize_t readahead(int fd, off64_t offset, size_t count) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(readahead)(fd, offset, count);
  bool refused;
  if (IsSimulated(*scheduler, "readahead", fd, &refused)) {
    const bool disk_file = pi::NonDiskDescriptor(*scheduler, fd) == nullptr;
    return disk_file ? 0 : (errno = EINVAL, -1);
  }
  return refused ? -1 : DSIM_REAL(readahead)(fd, offset, count);
}

// ---- Calls that make real descriptors: moved out of the host's numbers ----------------

int memfd_create(const char* name, unsigned int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  const int fd = DSIM_REAL(memfd_create)(name, flags);
  return scheduler == nullptr ? fd : pi::MoveToRealRange(*scheduler, "memfd_create", fd);
}

int inotify_init(void) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  const int fd = DSIM_REAL(inotify_init)();
  return scheduler == nullptr ? fd : pi::MoveToRealRange(*scheduler, "inotify_init", fd);
}

int inotify_init1(int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  const int fd = DSIM_REAL(inotify_init1)(flags);
  return scheduler == nullptr ? fd : pi::MoveToRealRange(*scheduler, "inotify_init1", fd);
}

int signalfd(int fd, const sigset_t* mask, int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(signalfd)(fd, mask, flags);
  if (fd != -1 && pi::SimulatedFd(*scheduler, fd) != nullptr) return errno = EINVAL, -1;
  const int result = DSIM_REAL(signalfd)(fd, mask, flags);
  return fd != -1 ? result : pi::MoveToRealRange(*scheduler, "signalfd", result);
}

int fanotify_init(unsigned int flags, unsigned int event_flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  const int fd = DSIM_REAL(fanotify_init)(flags, event_flags);
  return scheduler == nullptr ? fd : pi::MoveToRealRange(*scheduler, "fanotify_init", fd);
}

// Pids in a task are simulated (posix/internal/machine.h): a real pidfd of that number
// would name whichever real process has it. Refused, as the raw syscall is.
int pidfd_open(pid_t pid, unsigned int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pidfd_open)(pid, flags);
  pi::RecordEscape(*scheduler, "pidfd_open",
                   "processes are not simulated: a pidfd would name a real process", true);
  errno = ESRCH;
  return -1;
}

}  // extern "C"
