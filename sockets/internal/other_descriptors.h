// OtherDescriptors: open files of other kinds (simulated disk files, files/file.h) that
// share a host's descriptor numbers with its sockets.
//
// A process has one descriptor table; a socket and a file can never have the same
// number, and read(), write() and close() work on either. Until the descriptor table is
// generalized (the unmodified-code issue), the socket layer keeps its table and asks
// this router, installed by the files layer in the scheduler's kFilesExtension slot,
// whether a number belongs to a file: the calls that both kinds answer (Read, Write,
// Close, GetFlags, SetNonblock) go to the files layer for such numbers, and the socket
// layer never hands out a number a file holds (and the files layer asks
// SocketDescriptorOpen for the reverse).
#ifndef DSIM_SOCKETS_INTERNAL_OTHER_DESCRIPTORS_H_
#define DSIM_SOCKETS_INTERNAL_OTHER_DESCRIPTORS_H_

#include <sys/types.h>

#include "scheduler/scheduler.h"
#include "scheduler/source_location.h"

namespace dsim::internal {

class OtherDescriptors {
 public:
  virtual ~OtherDescriptors() = default;
  // Whether `fd` is open as another kind of file in `group` (a host incarnation).
  virtual bool InUse(Scheduler& scheduler, GroupId group, int fd) const = 0;
  // The calls, for a number InUse by the calling task's group. Same contract as the
  // public calls: -1 and errno on failure.
  virtual ssize_t Read(int fd, void* buffer, size_t length) const = 0;
  virtual ssize_t Write(int fd, const void* buffer, size_t length) const = 0;
  virtual int Close(int fd) const = 0;
  virtual int GetFlags(int fd) const = 0;
  virtual int SetNonblock(int fd, bool nonblocking) const = 0;
};

// The router of the scheduler running on this thread if the calling task's group holds
// `fd` as another kind of file; null otherwise (the common case costs a load and a test).
inline const OtherDescriptors* OtherDescriptorsFor(int fd) {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr) return nullptr;
  auto* other =
      static_cast<const OtherDescriptors*>(scheduler->extension(Scheduler::kFilesExtension));
  if (other == nullptr || !scheduler->InTask()) return nullptr;
  return other->InUse(*scheduler, scheduler->CurrentGroup(), fd) ? other : nullptr;
}

// True if `fd` is an open socket of the host of `group` (false without a network).
bool SocketDescriptorOpen(Scheduler& scheduler, GroupId group, int fd);

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_OTHER_DESCRIPTORS_H_
