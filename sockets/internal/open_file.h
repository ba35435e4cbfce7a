// OpenFile: an open file description that is not a socket (a pipe end, an eventfd, a
// timerfd, an epoll instance, later a regular file on a simulated disk), as it sits in
// a host's descriptor table next to sockets.
//
// Descriptors hold a description by shared_ptr, as Linux's files hold a struct file:
// duplicated descriptors share one description (its offset and O_NONBLOCK), and the
// description learns that the last descriptor closed through OnLastClose().
//
// Example (a new kind of file):
//
//   class CounterFile final : public OpenFile {
//    public:
//     const char* kind() const override { return "counter"; }
//     ssize_t Read(HostStack& stack, absl::Span<const iovec> iov,
//                  SourceLocation where) override {
//       while (count_ == 0) {
//         if (nonblocking()) return -EAGAIN;
//         readable().Wait("read", where);        // blocks the task in virtual time
//       }
//       ...
//     }
//     short PollMask() const override { return count_ > 0 ? POLLIN : 0; }
//   };
//   int fd = stack.InstallFile(std::make_shared<CounterFile>(), O_RDWR);
//
// Readiness. A file calls NotifyReadiness() whenever its PollMask() may have changed:
// that wakes every task blocked in read/write/poll/epoll on it, and counts an edge for
// edge-triggered epoll. Results are a count or a negative errno, never -1 plus errno.
#ifndef DSIM_SOCKETS_INTERNAL_OPEN_FILE_H_
#define DSIM_SOCKETS_INTERNAL_OPEN_FILE_H_

#include <fcntl.h>
#include <poll.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstdint>

#include "absl/types/span.h"
#include "scheduler/internal/wait_queue.h"
#include "scheduler/source_location.h"

namespace dsim::internal {

class HostStack;
class UnixSocket;

class OpenFile {
 public:
  explicit OpenFile(int status_flags) : status_flags_(status_flags) {}
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  virtual ~OpenFile() = default;

  // "pipe", "eventfd", ...: for messages and traces.
  virtual const char* kind() const = 0;

  // read(2) / readv(2) and write(2) / writev(2). The default is Linux's answer for a
  // file that does not support the direction (EINVAL), overridden per kind.
  virtual ssize_t Read(HostStack&, absl::Span<const iovec>, SourceLocation) { return -EINVAL; }
  virtual ssize_t Write(HostStack&, absl::Span<const iovec>, SourceLocation) { return -EINVAL; }
  // lseek(2); files without a position answer ESPIPE, as pipes do.
  virtual off_t Seek(off_t, int) { return -ESPIPE; }
  // Readiness now, as poll(2) reports it: POLLIN, POLLOUT, POLLHUP, POLLERR, ...
  virtual short PollMask() const = 0;
  // The last descriptor referring to this description was closed.
  virtual void OnLastClose() {}
  // ioctl(2) requests this kind answers (FIONREAD, ...): the result or a negative errno;
  // -ENOTTY (the default) for requests it does not know.
  virtual int Ioctl(HostStack&, unsigned long /*request*/, void* /*arg*/) { return -ENOTTY; }
  // The kinds that are sockets (socketpair's AF_UNIX ends) answer the socket calls;
  // every other kind is not a socket (ENOTSOCK).
  virtual UnixSocket* AsUnixSocket() { return nullptr; }
  // fcntl(2) commands this kind answers itself (status flags beyond the access mode and
  // O_NONBLOCK, per-description state). kFcntlNotHandled leaves the command to the host
  // table; otherwise the result, or a negative errno.
  static constexpr int kFcntlNotHandled = -0x7fffffff;
  virtual int Fcntl(HostStack&, int /*cmd*/, long /*arg*/) { return kFcntlNotHandled; }

  // File status flags (fcntl F_GETFL): the access mode plus O_NONBLOCK.
  int status_flags() const { return status_flags_; }
  void set_nonblocking(bool on) {
    status_flags_ = on ? (status_flags_ | O_NONBLOCK) : (status_flags_ & ~O_NONBLOCK);
  }
  bool nonblocking() const { return (status_flags_ & O_NONBLOCK) != 0; }
  // fcntl(F_SETFL): replaces the flags in `settable` (the access mode stays).
  void set_status_flags(int flags, int settable) {
    status_flags_ = (status_flags_ & ~settable) | (flags & settable);
  }

  // Tasks blocked on this file: readers and pollers on readable(), writers on writable().
  WaitQueue& readable() { return readable_; }
  WaitQueue& writable() { return writable_; }

  // Readiness may have changed: wake every waiter and count an edge. `key` says which
  // side changed, as the mask Linux passes with its wakeup: POLLIN (data arrived),
  // POLLOUT (space freed), 0 (any: hang-up, error, shutdown). An edge-triggered epoll
  // entry counts only the wakeups its events match (ep_poll_callback's filter).
  void NotifyReadiness(short key = 0) {
    if (key == 0 || (key & (POLLIN | POLLRDNORM | POLLPRI))) ++in_edges_;
    if (key == 0 || (key & (POLLOUT | POLLWRNORM))) ++out_edges_;
    wake_key_ = key;
    if (!readable_.empty()) readable_.WakeAll();
    if (!writable_.empty()) writable_.WakeAll();
    wake_key_ = 0;
  }
  // The key of the NotifyReadiness in progress (0 for any other wake): what epoll's
  // watchers filter on, as ep_poll_callback filters on the key of a wakeup.
  short wake_key() const { return wake_key_; }
  // How many wakeups matching `events` (poll/epoll bits) there were; edge-triggered
  // epoll compares it. Events with neither an input nor an output bit count them all.
  uint64_t edges(uint32_t events = 0) const {
    const bool in = (events & (POLLIN | POLLRDNORM | POLLPRI)) != 0;
    const bool out = (events & (POLLOUT | POLLWRNORM)) != 0;
    if (in == out) return in_edges_ + out_edges_;
    return in ? in_edges_ : out_edges_;
  }
  // Descriptors (in any host table) that refer to this description.
  int descriptor_count() const { return descriptor_count_; }

 private:
  friend class HostStack;
  int status_flags_;
  int descriptor_count_ = 0;
  uint64_t in_edges_ = 0;
  uint64_t out_edges_ = 0;
  short wake_key_ = 0;
  WaitQueue readable_;
  WaitQueue writable_;
};

}  // namespace dsim::internal

#endif  // DSIM_SOCKETS_INTERNAL_OPEN_FILE_H_
