// Simulated descriptors that are not disk files under the file calls (fstat, lseek,
// pread, fsync, ...). See posix/internal/descriptor_kinds.h.
//
// //posix defines the file calls weakly here: without //posix:files no simulated
// descriptor is a disk file, and each call answers what Linux answers for a socket, a
// pipe or an anonymous inode; without these definitions it would reach the process's
// real descriptor of the same number. //posix:files defines them strongly and asks
// NonDiskDescriptor() first.
#include "posix/internal/descriptor_kinds.h"

#include <errno.h>
#include <linux/magic.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cstring>

#include "posix/internal/real.h"
#include "posix/internal/state.h"
#include "sockets/internal/open_file.h"
#include "sockets/internal/stack.h"

namespace dsim::posix::internal {

::dsim::internal::HostStack* SimulatedFd(Scheduler& scheduler, int fd);  // posix/io.cc
bool Forwarded(Scheduler& scheduler, const char* call, int fd);          // posix/io.cc

namespace {

using ::dsim::internal::HostStack;
using ::dsim::internal::OpenFile;

enum class Kind { kSocket, kPipe, kCharDevice, kAnonymous, kDiskFile };

bool Named(const OpenFile& file, const char* kind) {
  return std::strcmp(file.kind(), kind) == 0;
}

Kind KindOf(HostStack& stack, int fd, dev_t* device) {
  *device = 0;
  // Callers know `fd` is open: a descriptor that is no OpenFile is a network socket.
  const OpenFile* file = stack.LookupFile(fd);
  if (file == nullptr) return Kind::kSocket;
  if (Named(*file, "AF_UNIX socket")) return Kind::kSocket;
  if (Named(*file, "pipe")) return Kind::kPipe;
  if (Named(*file, "/dev/urandom")) return *device = makedev(1, 9), Kind::kCharDevice;
  if (Named(*file, "/dev/random")) return *device = makedev(1, 8), Kind::kCharDevice;
  if (Named(*file, "eventfd") || Named(*file, "timerfd") || Named(*file, "epoll")) {
    return Kind::kAnonymous;
  }
  return Kind::kDiskFile;
}

}  // namespace

HostStack* SimulatedOrForwarded(Scheduler& scheduler, const char* call, int fd, bool* refused) {
  *refused = false;
  if (HostStack* stack = SimulatedFd(scheduler, fd); stack != nullptr) return stack;
  *refused = !Forwarded(scheduler, call, fd);
  return nullptr;
}

HostStack* NonDiskDescriptor(Scheduler& scheduler, int fd) {
  HostStack* stack = SimulatedFd(scheduler, fd);
  if (stack == nullptr) return nullptr;
  dev_t device;
  return KindOf(*stack, fd, &device) == Kind::kDiskFile ? nullptr : stack;
}

int FstatNonDisk(HostStack& stack, int fd, struct stat* out) {
  std::memset(out, 0, sizeof *out);
  out->st_nlink = 1;
  out->st_blksize = 4096;
  dev_t device;
  switch (KindOf(stack, fd, &device)) {
    case Kind::kSocket: out->st_mode = S_IFSOCK | 0777; break;
    case Kind::kPipe: out->st_mode = S_IFIFO | 0600; break;
    case Kind::kCharDevice:
      out->st_mode = S_IFCHR | 0666;
      out->st_rdev = device;
      break;
    case Kind::kAnonymous:
    case Kind::kDiskFile: out->st_mode = 0600; break;
  }
  return 0;
}

off64_t SeekNonDisk(HostStack& stack, int fd, off64_t offset, int whence) {
  OpenFile* file = stack.LookupFile(fd);
  const off_t result = file != nullptr ? file->Seek(offset, whence) : -ESPIPE;
  if (result < 0) return errno = static_cast<int>(-result), -1;
  return result;
}

int FstatfsNonDisk(HostStack& stack, int fd, struct statfs* out) {
  std::memset(out, 0, sizeof *out);
  out->f_bsize = 4096;
  out->f_namelen = 255;
  out->f_frsize = 4096;
  dev_t device;
  switch (KindOf(stack, fd, &device)) {
    case Kind::kSocket: out->f_type = SOCKFS_MAGIC; break;
    case Kind::kPipe: out->f_type = PIPEFS_MAGIC; break;
    case Kind::kCharDevice: out->f_type = TMPFS_MAGIC; break;  // devtmpfs reports tmpfs's.
    case Kind::kAnonymous:
    case Kind::kDiskFile: out->f_type = ANON_INODE_FS_MAGIC; break;
  }
  return 0;
}

}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
using ::dsim::internal::HostStack;

DSIM_DECLARE_REAL(fstat);
DSIM_DECLARE_REAL(fstat64);
DSIM_DECLARE_REAL(fstatfs);
DSIM_DECLARE_REAL(lseek);
DSIM_DECLARE_REAL(lseek64);
DSIM_DECLARE_REAL(pread);
DSIM_DECLARE_REAL(pread64);
DSIM_DECLARE_REAL(pwrite);
DSIM_DECLARE_REAL(pwrite64);
DSIM_DECLARE_REAL(fsync);
DSIM_DECLARE_REAL(fdatasync);
DSIM_DECLARE_REAL(ftruncate);
DSIM_DECLARE_REAL(ftruncate64);

// In a task, the host's stack when `fd` is one of its (non-disk) descriptors; null
// outside tasks and as SimulatedOrForwarded says.
HostStack* Simulated(const char* call, int fd, bool* refused) {
  *refused = false;
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  return scheduler != nullptr ? pi::SimulatedOrForwarded(*scheduler, call, fd, refused)
                              : nullptr;
}

}  // namespace

// The answers without //posix:files: see the file comment.
#define DSIM_NON_DISK_CALL(call, fd, failed, simulated, ...) \
  bool refused;                                             \
  if (HostStack* stack = Simulated(#call, fd, &refused); stack != nullptr) { \
    (void)stack;                                            \
    return simulated;                                       \
  }                                                         \
  if (refused) return failed;                               \
  return DSIM_REAL(call)(__VA_ARGS__)

extern "C" {

__attribute__((weak)) int fstat(int fd, struct stat* out) {
  DSIM_NON_DISK_CALL(fstat, fd, -1, pi::FstatNonDisk(*stack, fd, out), fd, out);
}
__attribute__((weak)) int fstat64(int fd, struct stat64* out) {
  DSIM_NON_DISK_CALL(fstat64, fd, -1,
                     pi::FstatNonDisk(*stack, fd, reinterpret_cast<struct stat*>(out)), fd,
                     out);
}
__attribute__((weak)) int fstatfs(int fd, struct statfs* out) {
  DSIM_NON_DISK_CALL(fstatfs, fd, -1, pi::FstatfsNonDisk(*stack, fd, out), fd, out);
}
__attribute__((weak)) off_t lseek(int fd, off_t offset, int whence) {
  DSIM_NON_DISK_CALL(lseek, fd, -1, pi::SeekNonDisk(*stack, fd, offset, whence), fd, offset,
                     whence);
}
__attribute__((weak)) off64_t lseek64(int fd, off64_t offset, int whence) {
  DSIM_NON_DISK_CALL(lseek64, fd, -1, pi::SeekNonDisk(*stack, fd, offset, whence), fd, offset,
                     whence);
}
__attribute__((weak)) ssize_t pread(int fd, void* buffer, size_t length, off_t offset) {
  DSIM_NON_DISK_CALL(pread, fd, -1, (errno = ESPIPE, -1), fd, buffer, length, offset);
}
__attribute__((weak)) ssize_t pread64(int fd, void* buffer, size_t length, off64_t offset) {
  DSIM_NON_DISK_CALL(pread64, fd, -1, (errno = ESPIPE, -1), fd, buffer, length, offset);
}
__attribute__((weak)) ssize_t pwrite(int fd, const void* buffer, size_t length, off_t offset) {
  DSIM_NON_DISK_CALL(pwrite, fd, -1, (errno = ESPIPE, -1), fd, buffer, length, offset);
}
__attribute__((weak)) ssize_t pwrite64(int fd, const void* buffer, size_t length,
                                       off64_t offset) {
  DSIM_NON_DISK_CALL(pwrite64, fd, -1, (errno = ESPIPE, -1), fd, buffer, length, offset);
}
// Sockets, pipes and anonymous inodes have no fsync: EINVAL, as Linux.
__attribute__((weak)) int fsync(int fd) {
  DSIM_NON_DISK_CALL(fsync, fd, -1, (errno = EINVAL, -1), fd);
}
__attribute__((weak)) int fdatasync(int fd) {
  DSIM_NON_DISK_CALL(fdatasync, fd, -1, (errno = EINVAL, -1), fd);
}
__attribute__((weak)) int ftruncate(int fd, off_t length) {
  DSIM_NON_DISK_CALL(ftruncate, fd, -1, (errno = EINVAL, -1), fd, length);
}
__attribute__((weak)) int ftruncate64(int fd, off64_t length) {
  DSIM_NON_DISK_CALL(ftruncate64, fd, -1, (errno = EINVAL, -1), fd, length);
}

}  // extern "C"
