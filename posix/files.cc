// //posix:files: the libc file calls, interposed, so unmodified code running in a dsim
// task (SQLite, LevelDB) reads and writes its host's simulated disk (files/file.h).
//
// Rule. Outside a task every call goes to the real libc. Inside a task, calls that
// name a path always act on the simulated disk (a simulated process has no other file
// system); calls on a descriptor act on the simulated descriptor table for numbers >= 3
// and go to the real libc for 0, 1 and 2 (stdin, stdout, stderr: logging still works).
//
// Overlap with //posix. read, write, close, fcntl, readv and writev are generic
// descriptor calls that //posix's descriptor layer will also own; until then this file
// routes them through dsim::Read/Write/Close (which serve sockets, pipes and disk files
// alike). When //posix interposes them, drop them here.
//
// stdio: fopen/fopen64 of a path in a task open it here and return a stream over the
// simulated descriptor (posix/streams.cc). Not interposed: freopen, tmpfile, mkstemp
// (glibc opens those internally), symlink calls, chdir, xattrs, inotify.
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "files/file.h"
#include "posix/internal/descriptor_kinds.h"
#include "posix/internal/files.h"
#include "posix/internal/real.h"
#include "posix/internal/state.h"
#include "posix/internal/streams.h"
#include "sockets/internal/open_file.h"
#include "sockets/internal/stack.h"

// With this library linked, a task's paths name its host's disk: fopen opens there too
// (posix/streams.cc asks; //posix alone answers false).
namespace dsim::posix::internal {
bool PathsAreSimulated() { return true; }
}  // namespace dsim::posix::internal

namespace {

namespace pi = ::dsim::posix::internal;

// In a task: the path calls are simulated.
bool Simulated() { return pi::TaskScheduler() != nullptr; }

// /dev/urandom and /dev/random are //posix's (posix/random.cc), disk or not.
#define DSIM_OPEN_DEVICE(call, path, flags)                                                  \
  if (dsim::Scheduler* scheduler = pi::TaskScheduler(); scheduler != nullptr) {               \
    if (const int fd = pi::OpenDevice(*scheduler, call, path, flags); fd != pi::kNotADevice) { \
      return fd;                                                                              \
    }                                                                                         \
  }
// In a task, a descriptor above stderr: simulated.
bool SimulatedFd(int fd) { return fd > 2 && pi::TaskScheduler() != nullptr; }

// In a task, the host's stack when `fd` is a simulated descriptor other than a disk file
// (socket, pipe, eventfd, ...): the stat and seek calls answer for those as //posix
// does (posix/descriptor_kinds.cc), the disk's calls know only disk files.
dsim::internal::HostStack* NonDiskFd(int fd) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  return fd > 2 && scheduler != nullptr ? pi::NonDiskDescriptor(*scheduler, fd) : nullptr;
}


DSIM_DECLARE_REAL(open);
DSIM_DECLARE_REAL(open64);
DSIM_DECLARE_REAL(openat);
DSIM_DECLARE_REAL(openat64);
DSIM_DECLARE_REAL(creat);
DSIM_DECLARE_REAL(close);
DSIM_DECLARE_REAL(read);
DSIM_DECLARE_REAL(write);
DSIM_DECLARE_REAL(pread);
DSIM_DECLARE_REAL(pread64);
DSIM_DECLARE_REAL(pwrite);
DSIM_DECLARE_REAL(pwrite64);
DSIM_DECLARE_REAL(readv);
DSIM_DECLARE_REAL(writev);
DSIM_DECLARE_REAL(preadv);
DSIM_DECLARE_REAL(pwritev);
DSIM_DECLARE_REAL(lseek);
DSIM_DECLARE_REAL(lseek64);
DSIM_DECLARE_REAL(fsync);
DSIM_DECLARE_REAL(fdatasync);
DSIM_DECLARE_REAL(sync_file_range);
DSIM_DECLARE_REAL(syncfs);
DSIM_DECLARE_REAL(sync);
DSIM_DECLARE_REAL(ftruncate);
DSIM_DECLARE_REAL(ftruncate64);
DSIM_DECLARE_REAL(truncate);
DSIM_DECLARE_REAL(fallocate);
DSIM_DECLARE_REAL(fallocate64);
DSIM_DECLARE_REAL(posix_fallocate);
DSIM_DECLARE_REAL(posix_fallocate64);
DSIM_DECLARE_REAL(rename);
DSIM_DECLARE_REAL(renameat);
DSIM_DECLARE_REAL(renameat2);
DSIM_DECLARE_REAL(link);
DSIM_DECLARE_REAL(unlink);
DSIM_DECLARE_REAL(unlinkat);
DSIM_DECLARE_REAL(mkdir);
DSIM_DECLARE_REAL(mkdirat);
DSIM_DECLARE_REAL(rmdir);
DSIM_DECLARE_REAL(opendir);
DSIM_DECLARE_REAL(fdopendir);
DSIM_DECLARE_REAL(readdir);
DSIM_DECLARE_REAL(readdir64);
DSIM_DECLARE_REAL(closedir);
DSIM_DECLARE_REAL(dirfd);
DSIM_DECLARE_REAL(rewinddir);
DSIM_DECLARE_REAL(stat);
DSIM_DECLARE_REAL(stat64);
DSIM_DECLARE_REAL(lstat);
DSIM_DECLARE_REAL(lstat64);
DSIM_DECLARE_REAL(fstat);
DSIM_DECLARE_REAL(fstat64);
DSIM_DECLARE_REAL(fstatat);
DSIM_DECLARE_REAL(fstatat64);
DSIM_DECLARE_REAL(access);
DSIM_DECLARE_REAL(faccessat);
DSIM_DECLARE_REAL(statfs);
DSIM_DECLARE_REAL(fstatfs);
DSIM_DECLARE_REAL(fcntl);
DSIM_DECLARE_REAL(fcntl64);
DSIM_DECLARE_REAL(flock);
DSIM_DECLARE_REAL(mmap);
DSIM_DECLARE_REAL(mmap64);
DSIM_DECLARE_REAL(munmap);
DSIM_DECLARE_REAL(getcwd);
DSIM_DECLARE_REAL(readlink);
DSIM_DECLARE_REAL(fchmod);
DSIM_DECLARE_REAL(fchown);

// The mode argument of open is present only with O_CREAT or O_TMPFILE.
mode_t ModeOf(int flags, va_list args) {
  return (flags & O_CREAT) || (flags & __O_TMPFILE) == __O_TMPFILE ? va_arg(args, mode_t) : 0;
}

int Fcntl(int fd, int command, void* argument) {
  switch (command) {
    case F_GETLK: case F_SETLK: case F_SETLKW:
    case F_OFD_GETLK: case F_OFD_SETLK: case F_OFD_SETLKW:
      return dsim::Fcntl(fd, command, static_cast<struct flock*>(argument));
    default:
      return dsim::Fcntl(fd, command, static_cast<long>(reinterpret_cast<intptr_t>(argument)));
  }
}

}  // namespace

extern "C" {

int open(const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = ModeOf(flags, args);
  va_end(args);
  DSIM_OPEN_DEVICE("open", path, flags);
  return Simulated() ? dsim::Open(path, flags, mode) : DSIM_REAL(open)(path, flags, mode);
}
int open64(const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = ModeOf(flags, args);
  va_end(args);
  DSIM_OPEN_DEVICE("open64", path, flags);
  return Simulated() ? dsim::Open(path, flags, mode) : DSIM_REAL(open64)(path, flags, mode);
}
int openat(int dirfd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = ModeOf(flags, args);
  va_end(args);
  DSIM_OPEN_DEVICE("openat", path, flags);
  return Simulated() ? dsim::Openat(dirfd, path, flags, mode)
                     : DSIM_REAL(openat)(dirfd, path, flags, mode);
}
int openat64(int dirfd, const char* path, int flags, ...) {
  va_list args;
  va_start(args, flags);
  const mode_t mode = ModeOf(flags, args);
  va_end(args);
  DSIM_OPEN_DEVICE("openat64", path, flags);
  return Simulated() ? dsim::Openat(dirfd, path, flags, mode)
                     : DSIM_REAL(openat64)(dirfd, path, flags, mode);
}
int creat(const char* path, mode_t mode) {
  return Simulated() ? dsim::Creat(path, mode) : DSIM_REAL(creat)(path, mode);
}

// close, read, write, readv, writev and fcntl are //posix's (io.cc): they serve every
// kind of descriptor in the host's table, disk files included. fcntl's lock commands
// come here through dsim_posix_file_lock_fcntl.
ssize_t pread(int fd, void* buffer, size_t length, off_t offset) {
  return SimulatedFd(fd) ? dsim::Pread(fd, buffer, length, offset)
                         : DSIM_REAL(pread)(fd, buffer, length, offset);
}
ssize_t pread64(int fd, void* buffer, size_t length, off64_t offset) {
  return SimulatedFd(fd) ? dsim::Pread(fd, buffer, length, offset)
                         : DSIM_REAL(pread64)(fd, buffer, length, offset);
}
ssize_t pwrite(int fd, const void* buffer, size_t length, off_t offset) {
  return SimulatedFd(fd) ? dsim::Pwrite(fd, buffer, length, offset)
                         : DSIM_REAL(pwrite)(fd, buffer, length, offset);
}
ssize_t pwrite64(int fd, const void* buffer, size_t length, off64_t offset) {
  return SimulatedFd(fd) ? dsim::Pwrite(fd, buffer, length, offset)
                         : DSIM_REAL(pwrite64)(fd, buffer, length, offset);
}
ssize_t preadv(int fd, const struct iovec* iov, int count, off_t offset) {
  return SimulatedFd(fd) ? dsim::Preadv(fd, iov, count, offset)
                         : DSIM_REAL(preadv)(fd, iov, count, offset);
}
ssize_t pwritev(int fd, const struct iovec* iov, int count, off_t offset) {
  return SimulatedFd(fd) ? dsim::Pwritev(fd, iov, count, offset)
                         : DSIM_REAL(pwritev)(fd, iov, count, offset);
}
off_t lseek(int fd, off_t offset, int whence) {
  if (auto* stack = NonDiskFd(fd)) return pi::SeekNonDisk(*stack, fd, offset, whence);
  return SimulatedFd(fd) ? dsim::Lseek(fd, offset, whence)
                         : DSIM_REAL(lseek)(fd, offset, whence);
}
off64_t lseek64(int fd, off64_t offset, int whence) {
  if (auto* stack = NonDiskFd(fd)) return pi::SeekNonDisk(*stack, fd, offset, whence);
  return SimulatedFd(fd) ? dsim::Lseek(fd, offset, whence)
                         : DSIM_REAL(lseek64)(fd, offset, whence);
}

int fsync(int fd) { return SimulatedFd(fd) ? dsim::Fsync(fd) : DSIM_REAL(fsync)(fd); }
int fdatasync(int fd) {
  return SimulatedFd(fd) ? dsim::Fdatasync(fd) : DSIM_REAL(fdatasync)(fd);
}
int sync_file_range(int fd, off64_t offset, off64_t length, unsigned int flags) {
  return SimulatedFd(fd) ? dsim::SyncFileRange(fd, offset, length, flags)
                         : DSIM_REAL(sync_file_range)(fd, offset, length, flags);
}
int syncfs(int fd) { return SimulatedFd(fd) ? dsim::Syncfs(fd) : DSIM_REAL(syncfs)(fd); }
void sync(void) {
  if (Simulated()) {
    dsim::Sync();
  } else {
    DSIM_REAL(sync)();
  }
}
int ftruncate(int fd, off_t length) {
  return SimulatedFd(fd) ? dsim::Ftruncate(fd, length) : DSIM_REAL(ftruncate)(fd, length);
}
int ftruncate64(int fd, off64_t length) {
  return SimulatedFd(fd) ? dsim::Ftruncate(fd, length) : DSIM_REAL(ftruncate64)(fd, length);
}
int truncate(const char* path, off_t length) {
  return Simulated() ? dsim::Truncate(path, length) : DSIM_REAL(truncate)(path, length);
}
int fallocate(int fd, int mode, off_t offset, off_t length) {
  return SimulatedFd(fd) ? dsim::Fallocate(fd, mode, offset, length)
                         : DSIM_REAL(fallocate)(fd, mode, offset, length);
}
int fallocate64(int fd, int mode, off64_t offset, off64_t length) {
  return SimulatedFd(fd) ? dsim::Fallocate(fd, mode, offset, length)
                         : DSIM_REAL(fallocate64)(fd, mode, offset, length);
}
int posix_fallocate(int fd, off_t offset, off_t length) {
  return SimulatedFd(fd) ? dsim::PosixFallocate(fd, offset, length)
                         : DSIM_REAL(posix_fallocate)(fd, offset, length);
}
int posix_fallocate64(int fd, off64_t offset, off64_t length) {
  return SimulatedFd(fd) ? dsim::PosixFallocate(fd, offset, length)
                         : DSIM_REAL(posix_fallocate64)(fd, offset, length);
}

int rename(const char* from, const char* to) {
  return Simulated() ? dsim::Rename(from, to) : DSIM_REAL(rename)(from, to);
}
int renameat(int from_dirfd, const char* from, int to_dirfd, const char* to) {
  return Simulated() ? dsim::Renameat(from_dirfd, from, to_dirfd, to)
                     : DSIM_REAL(renameat)(from_dirfd, from, to_dirfd, to);
}
int renameat2(int from_dirfd, const char* from, int to_dirfd, const char* to,
              unsigned int flags) {
  return Simulated() ? dsim::Renameat2(from_dirfd, from, to_dirfd, to, flags)
                     : DSIM_REAL(renameat2)(from_dirfd, from, to_dirfd, to, flags);
}
int link(const char* existing, const char* name) {
  return Simulated() ? dsim::Link(existing, name) : DSIM_REAL(link)(existing, name);
}
int unlink(const char* path) {
  return Simulated() ? dsim::Unlink(path) : DSIM_REAL(unlink)(path);
}
int unlinkat(int dirfd, const char* path, int flags) {
  return Simulated() ? dsim::Unlinkat(dirfd, path, flags)
                     : DSIM_REAL(unlinkat)(dirfd, path, flags);
}
int mkdir(const char* path, mode_t mode) {
  return Simulated() ? dsim::Mkdir(path, mode) : DSIM_REAL(mkdir)(path, mode);
}
int mkdirat(int dirfd, const char* path, mode_t mode) {
  return Simulated() ? dsim::Mkdirat(dirfd, path, mode) : DSIM_REAL(mkdirat)(dirfd, path, mode);
}
int rmdir(const char* path) { return Simulated() ? dsim::Rmdir(path) : DSIM_REAL(rmdir)(path); }

DIR* opendir(const char* path) {
  return Simulated() ? dsim::Opendir(path) : DSIM_REAL(opendir)(path);
}
DIR* fdopendir(int fd) {
  return SimulatedFd(fd) ? dsim::Fdopendir(fd) : DSIM_REAL(fdopendir)(fd);
}
// A task only ever holds simulated directory streams.
struct dirent* readdir(DIR* dir) {
  return Simulated() ? dsim::Readdir(dir) : DSIM_REAL(readdir)(dir);
}
struct dirent64* readdir64(DIR* dir) {
  static_assert(sizeof(struct dirent) == sizeof(struct dirent64), "same layout on LP64");
  return Simulated() ? reinterpret_cast<struct dirent64*>(dsim::Readdir(dir))
                     : DSIM_REAL(readdir64)(dir);
}
int closedir(DIR* dir) { return Simulated() ? dsim::Closedir(dir) : DSIM_REAL(closedir)(dir); }
int dirfd(DIR* dir) { return Simulated() ? dsim::Dirfd(dir) : DSIM_REAL(dirfd)(dir); }
void rewinddir(DIR* dir) {
  if (Simulated()) {
    dsim::Rewinddir(dir);
  } else {
    DSIM_REAL(rewinddir)(dir);
  }
}

int stat(const char* path, struct stat* out) {
  return Simulated() ? dsim::Stat(path, out) : DSIM_REAL(stat)(path, out);
}
int stat64(const char* path, struct stat64* out) {
  return Simulated() ? dsim::Stat(path, reinterpret_cast<struct stat*>(out))
                     : DSIM_REAL(stat64)(path, out);
}
int lstat(const char* path, struct stat* out) {
  return Simulated() ? dsim::Lstat(path, out) : DSIM_REAL(lstat)(path, out);
}
int lstat64(const char* path, struct stat64* out) {
  return Simulated() ? dsim::Lstat(path, reinterpret_cast<struct stat*>(out))
                     : DSIM_REAL(lstat64)(path, out);
}
int fstat(int fd, struct stat* out) {
  if (auto* stack = NonDiskFd(fd)) return pi::FstatNonDisk(*stack, fd, out);
  return SimulatedFd(fd) ? dsim::Fstat(fd, out) : DSIM_REAL(fstat)(fd, out);
}
int fstat64(int fd, struct stat64* out) {
  if (auto* stack = NonDiskFd(fd)) {
    return pi::FstatNonDisk(*stack, fd, reinterpret_cast<struct stat*>(out));
  }
  return SimulatedFd(fd) ? dsim::Fstat(fd, reinterpret_cast<struct stat*>(out))
                         : DSIM_REAL(fstat64)(fd, out);
}
int fstatat(int dirfd, const char* path, struct stat* out, int flags) {
  return Simulated() ? dsim::Fstatat(dirfd, path, out, flags)
                     : DSIM_REAL(fstatat)(dirfd, path, out, flags);
}
int fstatat64(int dirfd, const char* path, struct stat64* out, int flags) {
  return Simulated() ? dsim::Fstatat(dirfd, path, reinterpret_cast<struct stat*>(out), flags)
                     : DSIM_REAL(fstatat64)(dirfd, path, out, flags);
}
int access(const char* path, int mode) {
  return Simulated() ? dsim::Access(path, mode) : DSIM_REAL(access)(path, mode);
}
int faccessat(int dirfd, const char* path, int mode, int flags) {
  return Simulated() ? dsim::Faccessat(dirfd, path, mode, flags)
                     : DSIM_REAL(faccessat)(dirfd, path, mode, flags);
}
int statfs(const char* path, struct statfs* out) {
  return Simulated() ? dsim::Statfs(path, out) : DSIM_REAL(statfs)(path, out);
}
int fstatfs(int fd, struct statfs* out) {
  if (auto* stack = NonDiskFd(fd)) return pi::FstatfsNonDisk(*stack, fd, out);
  return SimulatedFd(fd) ? dsim::Fstatfs(fd, out) : DSIM_REAL(fstatfs)(fd, out);
}

// //posix's fcntl hands record and OFD lock commands on simulated descriptors here.
int dsim_posix_file_lock_fcntl(int fd, int command, void* argument) {
  return Fcntl(fd, command, argument);
}
int fcntl64(int fd, int command, ...) {
  va_list args;
  va_start(args, command);
  void* argument = va_arg(args, void*);
  va_end(args);
  return SimulatedFd(fd) ? Fcntl(fd, command, argument)
                         : DSIM_REAL(fcntl64)(fd, command, argument);
}
int flock(int fd, int operation) {
  return SimulatedFd(fd) ? dsim::Flock(fd, operation) : DSIM_REAL(flock)(fd, operation);
}

void* mmap(void* address, size_t length, int protection, int flags, int fd, off_t offset) {
  if (fd > 2 && !(flags & MAP_ANONYMOUS) && Simulated()) {
    return dsim::Mmap(address, length, protection, flags, fd, offset);
  }
  return DSIM_REAL(mmap)(address, length, protection, flags, fd, offset);
}
void* mmap64(void* address, size_t length, int protection, int flags, int fd, off64_t offset) {
  if (fd > 2 && !(flags & MAP_ANONYMOUS) && Simulated()) {
    return dsim::Mmap(address, length, protection, flags, fd, offset);
  }
  return DSIM_REAL(mmap64)(address, length, protection, flags, fd, offset);
}
int munmap(void* address, size_t length) {
  if (Simulated()) {
    // A simulated mapping, or anonymous memory the task mapped for itself.
    const int saved = errno;
    if (dsim::Munmap(address, length) == 0) return 0;
    errno = saved;
  }
  return DSIM_REAL(munmap)(address, length);
}

char* getcwd(char* buffer, size_t size) {
  if (!Simulated()) return DSIM_REAL(getcwd)(buffer, size);
  if (buffer == nullptr || size < 2) {
    errno = buffer == nullptr ? EINVAL : ERANGE;
    return nullptr;
  }
  std::strcpy(buffer, "/");  // A simulated process's working directory is "/".
  return buffer;
}
ssize_t readlink(const char* path, char* buffer, size_t size) {
  if (!Simulated()) return DSIM_REAL(readlink)(path, buffer, size);
  struct stat st;
  if (dsim::Lstat(path, &st) != 0) return -1;
  errno = EINVAL;  // No symbolic links exist on a simulated disk.
  return -1;
}
int fchmod(int fd, mode_t mode) {
  if (!SimulatedFd(fd)) return DSIM_REAL(fchmod)(fd, mode);
  struct stat st;
  return dsim::Fstat(fd, &st);  // Permission bits are not enforced: accept and keep.
}
int fchown(int fd, uid_t owner, gid_t group) {
  if (!SimulatedFd(fd)) return DSIM_REAL(fchown)(fd, owner, group);
  struct stat st;
  return dsim::Fstat(fd, &st);
}

}  // extern "C"
