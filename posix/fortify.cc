// The fortified entry points (_FORTIFY_SOURCE). Code built with it, as Bazel builds
// -c opt code (-D_FORTIFY_SOURCE=1) and Debian builds its libraries, calls
// __read_chk(fd, buffer, n, size) instead of read(fd, buffer, n) when the buffer's size
// is known, __open_2 instead of open when the flags are not constant, and so on. glibc
// implements each with its internal __read, __open, ... that no interposer sees, so a
// task's fortified read of a simulated descriptor would read the process's real
// descriptor of that number. Each does glibc's check here and then calls the interposed
// function, as a tail call, so the interposer sees the user's return address.
//
// Built with -O2 whatever the compilation mode (see BUILD.bazel): sibling calls need it.
#undef _FORTIFY_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "posix/internal/real.h"

extern "C" {
[[noreturn]] void __chk_fail(void);
ssize_t __read_chk(int fd, void* buffer, size_t length, size_t buffer_size);
ssize_t __pread_chk(int fd, void* buffer, size_t length, off_t offset, size_t buffer_size);
ssize_t __pread64_chk(int fd, void* buffer, size_t length, off64_t offset,
                      size_t buffer_size);
ssize_t __recv_chk(int fd, void* buffer, size_t length, size_t buffer_size, int flags);
ssize_t __recvfrom_chk(int fd, void* buffer, size_t length, size_t buffer_size, int flags,
                       struct sockaddr* address, socklen_t* address_length);
int __poll_chk(struct pollfd* fds, nfds_t count, int timeout_ms, size_t fds_size);
int __ppoll_chk(struct pollfd* fds, nfds_t count, const struct timespec* timeout,
                const sigset_t* mask, size_t fds_size);
int __open_2(const char* path, int flags);
int __open64_2(const char* path, int flags);
int __openat_2(int dirfd, const char* path, int flags);
int __openat64_2(int dirfd, const char* path, int flags);
int __gethostname_chk(char* name, size_t length, size_t buffer_size) noexcept;
ssize_t __readlink_chk(const char* path, char* buffer, size_t length,
                       size_t buffer_size) noexcept;
char* __getcwd_chk(char* buffer, size_t length, size_t buffer_size) noexcept;
}

namespace {
DSIM_DECLARE_REAL(__open_2);
DSIM_DECLARE_REAL(__open64_2);
DSIM_DECLARE_REAL(__openat_2);
DSIM_DECLARE_REAL(__openat64_2);

// open(2) without a mode needs neither O_CREAT nor O_TMPFILE (glibc's __OPEN_NEEDS_MODE).
bool NeedsMode(int flags) {
  return (flags & O_CREAT) != 0 || (flags & __O_TMPFILE) == __O_TMPFILE;
}
}  // namespace

extern "C" {

ssize_t __read_chk(int fd, void* buffer, size_t length, size_t buffer_size) {
  if (length > buffer_size) __chk_fail();
  return read(fd, buffer, length);
}

ssize_t __pread_chk(int fd, void* buffer, size_t length, off_t offset, size_t buffer_size) {
  if (length > buffer_size) __chk_fail();
  return pread(fd, buffer, length, offset);
}

ssize_t __pread64_chk(int fd, void* buffer, size_t length, off64_t offset,
                      size_t buffer_size) {
  if (length > buffer_size) __chk_fail();
  return pread64(fd, buffer, length, offset);
}

ssize_t __recv_chk(int fd, void* buffer, size_t length, size_t buffer_size, int flags) {
  if (length > buffer_size) __chk_fail();
  return recv(fd, buffer, length, flags);
}

ssize_t __recvfrom_chk(int fd, void* buffer, size_t length, size_t buffer_size, int flags,
                       struct sockaddr* address, socklen_t* address_length) {
  if (length > buffer_size) __chk_fail();
  return recvfrom(fd, buffer, length, flags, address, address_length);
}

int __poll_chk(struct pollfd* fds, nfds_t count, int timeout_ms, size_t fds_size) {
  if (fds_size / sizeof(*fds) < count) __chk_fail();
  return poll(fds, count, timeout_ms);
}

int __ppoll_chk(struct pollfd* fds, nfds_t count, const struct timespec* timeout,
                const sigset_t* mask, size_t fds_size) {
  if (fds_size / sizeof(*fds) < count) __chk_fail();
  return ppoll(fds, count, timeout, mask);
}

// A mode-needing open without a mode: glibc's own function reports it and aborts.
int __open_2(const char* path, int flags) {
  if (NeedsMode(flags)) return DSIM_REAL(__open_2)(path, flags);
  return open(path, flags);
}

int __open64_2(const char* path, int flags) {
  if (NeedsMode(flags)) return DSIM_REAL(__open64_2)(path, flags);
  return open64(path, flags);
}

int __openat_2(int dirfd, const char* path, int flags) {
  if (NeedsMode(flags)) return DSIM_REAL(__openat_2)(dirfd, path, flags);
  return openat(dirfd, path, flags);
}

int __openat64_2(int dirfd, const char* path, int flags) {
  if (NeedsMode(flags)) return DSIM_REAL(__openat64_2)(dirfd, path, flags);
  return openat64(dirfd, path, flags);
}

int __gethostname_chk(char* name, size_t length, size_t buffer_size) noexcept {
  if (buffer_size < length) __chk_fail();
  return gethostname(name, length);
}

ssize_t __readlink_chk(const char* path, char* buffer, size_t length,
                       size_t buffer_size) noexcept {
  if (length > buffer_size) __chk_fail();
  return readlink(path, buffer, length);
}

char* __getcwd_chk(char* buffer, size_t length, size_t buffer_size) noexcept {
  if (length > buffer_size) __chk_fail();
  return getcwd(buffer, length);
}

}  // extern "C"
