// What stat(2)-like calls answer for simulated descriptors that are not files on a
// simulated disk: sockets, pipes, eventfds, timerfds, epoll instances and the random
// devices. Shared by //posix (where no simulated descriptor is a disk file) and
// //posix:files (which serves disk files itself and asks here for the rest).
#ifndef DSIM_POSIX_INTERNAL_DESCRIPTOR_KINDS_H_
#define DSIM_POSIX_INTERNAL_DESCRIPTOR_KINDS_H_

#include <sys/stat.h>
#include <sys/statfs.h>

#include "scheduler/scheduler.h"

namespace dsim::internal {
class HostStack;
}  // namespace dsim::internal

namespace dsim::posix::internal {

// In a task, the host's stack when `fd` is one of its descriptors. Otherwise null: the
// call goes to the process's real descriptor of that number (listed once in
// EscapedCalls), unless the task's host crashed, when `*refused` says it must fail.
::dsim::internal::HostStack* SimulatedOrForwarded(Scheduler& scheduler, const char* call,
                                                  int fd, bool* refused);

// The host's stack when `fd` is one of its descriptors and not a simulated disk file;
// null otherwise.
::dsim::internal::HostStack* NonDiskDescriptor(Scheduler& scheduler, int fd);

// fstat(2) of such a descriptor, as Linux fills it: S_IFSOCK|0777 for sockets,
// S_IFIFO|0600 for pipes, S_IFCHR|0666 with the device number for the random devices,
// 0600 and no file type for eventfd, timerfd and epoll (anonymous inodes); one link,
// 4096-byte blocks. Inode numbers and times are 0 (nothing in a simulation needs them
// to be unique). Returns 0.
int FstatNonDisk(::dsim::internal::HostStack& stack, int fd, struct stat* out);

// lseek(2) of such a descriptor: the random devices accept any seek and stay at 0
// (noop_llseek); sockets, pipes and anonymous inodes are ESPIPE. -1 with errno.
off64_t SeekNonDisk(::dsim::internal::HostStack& stack, int fd, off64_t offset, int whence);

// fstatfs(2) of such a descriptor: sockfs, pipefs or the anonymous-inode file system.
int FstatfsNonDisk(::dsim::internal::HostStack& stack, int fd, struct statfs* out);

}  // namespace dsim::posix::internal

#endif  // DSIM_POSIX_INTERNAL_DESCRIPTOR_KINDS_H_
