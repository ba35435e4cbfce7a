// stdio over simulated descriptors: fopen/fopen64 in a task (the random devices; with
// //posix:files every path, on the host's disk), fdopen of a simulated descriptor, and
// dprintf/vdprintf to one. See posix/internal/streams.h for why each is a cookie stream.
// Without //posix:files, fopen of any other path in a task opens the real file, moved to
// the real descriptor range (posix/internal/real_descriptors.h).
#include "posix/internal/streams.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "posix/internal/files.h"
#include "posix/internal/real.h"
#include "posix/internal/real_descriptors.h"
#include "posix/internal/state.h"
#include "sockets/internal/stack.h"
#include "sockets/socket.h"

namespace dsim::posix::internal {

::dsim::internal::HostStack* SimulatedFd(Scheduler& scheduler, int fd);    // posix/io.cc
bool Forwarded(Scheduler& scheduler, const char* call, int fd);            // posix/io.cc

__attribute__((weak)) bool PathsAreSimulated() { return false; }

int OpenFlagsOfStreamMode(const char* mode) {
  if (mode == nullptr) return -1;
  int flags;
  switch (mode[0]) {
    case 'r': flags = O_RDONLY; break;
    case 'w': flags = O_WRONLY | O_CREAT | O_TRUNC; break;
    case 'a': flags = O_WRONLY | O_CREAT | O_APPEND; break;
    default: return -1;
  }
  // glibc reads at most six more characters; ',' starts a "ccs=" encoding.
  for (const char* c = mode + 1; *c != '\0' && *c != ',' && c < mode + 7; ++c) {
    if (*c == '+') flags = (flags & ~O_ACCMODE) | O_RDWR;
    if (*c == 'e') flags |= O_CLOEXEC;
    if (*c == 'x') flags |= O_EXCL;
  }
  return flags;
}

namespace {

int DescriptorOf(void* cookie) { return static_cast<int>(reinterpret_cast<intptr_t>(cookie)); }

// stdio calls these from C frames, which a kill must not unwind through: it waits for
// a later scheduling point. A stream flushed or closed outside any task (glibc flushes
// every stream at exit) has no host to reach: the call fails with EBADF.
bool InATask() {
  Scheduler* scheduler = Scheduler::Current();
  return scheduler != nullptr && scheduler->InTask();
}

ssize_t CookieRead(void* cookie, char* buffer, size_t length) {
  if (!InATask()) return errno = EBADF, -1;
  Scheduler::NoUnwindScope no_unwind;
  return ::dsim::Read(DescriptorOf(cookie), buffer, length);
}

ssize_t CookieWrite(void* cookie, const char* buffer, size_t length) {
  if (!InATask()) return errno = EBADF, 0;
  Scheduler::NoUnwindScope no_unwind;
  const ssize_t n = ::dsim::Write(DescriptorOf(cookie), buffer, length);
  return n < 0 ? 0 : n;  // stdio's convention: 0 is an error.
}

// Only files on the simulated disk can seek; //posix:files routes lseek64 there.
int CookieSeek(void* cookie, off64_t* position, int whence) {
  if (!InATask()) return errno = EBADF, -1;
  if (!PathsAreSimulated()) return errno = ESPIPE, -1;
  Scheduler::NoUnwindScope no_unwind;
  const off64_t result = lseek64(DescriptorOf(cookie), *position, whence);
  if (result < 0) return -1;
  *position = result;
  return 0;
}

int CookieClose(void* cookie) {
  if (!InATask()) return errno = EBADF, -1;
  Scheduler::NoUnwindScope no_unwind;
  return ::dsim::Close(DescriptorOf(cookie));
}

// fdopen's check (as glibc's): the mode may not ask for an access the descriptor lacks;
// 'a' sets O_APPEND on the descriptor.
bool ModeFitsDescriptor(int fd, int stream_flags) {
  const int fd_flags = ::dsim::Fcntl(fd, F_GETFL);
  if (fd_flags < 0) return false;
  const int fd_access = fd_flags & O_ACCMODE;
  const int wanted = stream_flags & O_ACCMODE;
  if ((wanted == O_RDWR && fd_access != O_RDWR) ||
      (wanted == O_RDONLY && fd_access == O_WRONLY) ||
      (wanted == O_WRONLY && fd_access == O_RDONLY)) {
    errno = EINVAL;
    return false;
  }
  if ((stream_flags & O_APPEND) && !(fd_flags & O_APPEND)) {
    return ::dsim::Fcntl(fd, F_SETFL, fd_flags | O_APPEND) == 0;
  }
  return true;
}

}  // namespace

FILE* StreamOverSimulatedDescriptor(int fd, const char* mode) {
  cookie_io_functions_t functions{CookieRead, CookieWrite, CookieSeek, CookieClose};
  FILE* stream = fopencookie(reinterpret_cast<void*>(static_cast<intptr_t>(fd)), mode, functions);
  if (stream != nullptr) stream->_fileno = fd;
  return stream;
}

}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
DSIM_DECLARE_REAL(fopen);
DSIM_DECLARE_REAL(fopen64);
DSIM_DECLARE_REAL(fdopen);
DSIM_DECLARE_REAL(vdprintf);

// A task's fopen: the random devices are simulated descriptors; with //posix:files every
// path is on the host's disk (through the interposed open); otherwise the real file is
// opened and moved to the real descriptor range.
template <typename OpenReal>
FILE* OpenStreamInTask(dsim::Scheduler& scheduler, const char* call, const char* path,
                       const char* mode, OpenReal open_real) {
  const int flags = pi::OpenFlagsOfStreamMode(mode);
  if (flags < 0) return errno = EINVAL, nullptr;
  int fd = pi::OpenDevice(scheduler, call, path, flags);
  if (fd == pi::kNotADevice) {
    if (!pi::PathsAreSimulated()) return pi::MoveStreamToRealRange(scheduler, call, open_real());
    fd = open(path, flags, 0666);
  }
  if (fd < 0) return nullptr;
  FILE* stream = pi::StreamOverSimulatedDescriptor(fd, mode);
  if (stream == nullptr) {
    const int saved = errno;
    dsim::Close(fd);
    errno = saved;
  }
  return stream;
}

// The text of a dprintf, formatted without touching any descriptor.
bool Format(std::string* out, const char* format, va_list args) {
  char small[512];
  va_list copy;
  va_copy(copy, args);
  const int length = vsnprintf(small, sizeof small, format, copy);
  va_end(copy);
  if (length < 0) return false;
  if (static_cast<size_t>(length) < sizeof small) {
    out->assign(small, length);
    return true;
  }
  out->resize(length + 1);
  vsnprintf(out->data(), out->size(), format, args);
  out->resize(length);
  return true;
}

// dprintf to a simulated descriptor: all of the text, as glibc's (it loops over partial
// writes); -1 with errno if a write fails.
int SimulatedDprintf(int fd, const char* format, va_list args) {
  std::string text;
  if (!Format(&text, format, args)) return -1;
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = dsim::Write(fd, text.data() + done, text.size() - done);
    if (n < 0) return -1;
    done += static_cast<size_t>(n);
  }
  return static_cast<int>(text.size());
}

}  // namespace

extern "C" {

FILE* fopen(const char* path, const char* mode) {
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    return OpenStreamInTask(*scheduler, "fopen", path, mode,
                            [&] { return DSIM_REAL(fopen)(path, mode); });
  }
  return DSIM_REAL(fopen)(path, mode);
}

FILE* fopen64(const char* path, const char* mode) {
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {
    return OpenStreamInTask(*scheduler, "fopen64", path, mode,
                            [&] { return DSIM_REAL(fopen64)(path, mode); });
  }
  return DSIM_REAL(fopen64)(path, mode);
}

FILE* fdopen(int fd, const char* mode) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(fdopen)(fd, mode);
  dsim::Scheduler::NoUnwindScope no_unwind;
  if (pi::SimulatedFd(*scheduler, fd) == nullptr) {
    if (!pi::Forwarded(*scheduler, "fdopen", fd)) return nullptr;
    return DSIM_REAL(fdopen)(fd, mode);
  }
  const int flags = pi::OpenFlagsOfStreamMode(mode);
  if (flags < 0) return errno = EINVAL, nullptr;
  if (!pi::ModeFitsDescriptor(fd, flags)) return nullptr;
  if ((flags & O_CLOEXEC) && dsim::Fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) return nullptr;
  return pi::StreamOverSimulatedDescriptor(fd, mode);
}

int vdprintf(int fd, const char* format, va_list args) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(vdprintf)(fd, format, args);
  if (pi::SimulatedFd(*scheduler, fd) == nullptr) {
    if (!pi::Forwarded(*scheduler, "vdprintf", fd)) return -1;
    return DSIM_REAL(vdprintf)(fd, format, args);
  }
  DSIM_CALL_SITE(*scheduler);
  return SimulatedDprintf(fd, format, args);
}

int dprintf(int fd, const char* format, ...) {
  va_list args;
  va_start(args, format);
  const int result = vdprintf(fd, format, args);
  va_end(args);
  return result;
}

}  // extern "C"
