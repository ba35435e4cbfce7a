// HostStack, part 3: the descriptor-level calls real code makes next to socket calls:
// fcntl, ioctl and dup. Kept apart from the socket calls because they act on the
// descriptor table and on the open file, not on the connection.
#include <fcntl.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "scheduler/internal/check.h"
#include "sockets/internal/stack.h"
#include "sockets/internal/unix_socket.h"

namespace dsim::internal {
namespace {

// The status flags F_SETFL may change (Linux's SETFL_MASK; O_NDELAY is O_NONBLOCK).
constexpr int kSettableStatusFlags = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_ASYNC;
// The ones kept besides O_NONBLOCK, which lives in SocketState::nonblocking.
constexpr int kKeptStatusFlags = O_APPEND | O_NOATIME | O_ASYNC;

}  // namespace

int HostStack::GetFlags(int fd) {
  if (const OpenFile* file = LookupFile(fd); file != nullptr) return file->status_flags();
  SocketState* s;
  if (int r = LookupOrFail(fd, &s); r < 0) return r;
  return O_RDWR | s->status_flags | (s->nonblocking ? O_NONBLOCK : 0);
}

// The fcntl commands on the descriptor itself, the same for every kind: F_DUPFD and
// F_DUPFD_CLOEXEC (a copy sharing the open file description), F_GETFD, F_SETFD.
// kFcntlNotHandled for the commands on the description.
int HostStack::DescriptorFcntl(int fd, int cmd, long arg) {
  switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      // F_DUPFD takes an int: Linux looks at the low 32 bits of the argument.
      const int lowest = static_cast<int>(arg);
      if (lowest < 0 || lowest >= descriptor_limit()) {
        return Fail(EINVAL, absl::StrCat("fcntl(F_DUPFD): ", lowest,
                                         " is outside the descriptor range"));
      }
      const int new_fd = ReserveDescriptor(lowest);
      if (new_fd < 0) return new_fd;
      InstallCopy(new_fd, fd, cmd == F_DUPFD_CLOEXEC);
      return new_fd;
    }
    case F_GETFD:
      return descriptors_[fd].close_on_exec ? FD_CLOEXEC : 0;
    case F_SETFD:
      descriptors_[fd].close_on_exec = (arg & FD_CLOEXEC) != 0;
      return 0;
    default:
      return OpenFile::kFcntlNotHandled;
  }
}

// fcntl on a descriptor that is not a TCP/UDP socket: the status flag commands.
// The status flags live in the open file description, shared by its duplicates.
int HostStack::FileFcntl(int fd, int cmd, long arg) {
  OpenFile* file = LookupFile(fd);
  if (const int r = file->Fcntl(*this, cmd, arg); r != OpenFile::kFcntlNotHandled) return r;
  if (const int r = DescriptorFcntl(fd, cmd, arg); r != OpenFile::kFcntlNotHandled) return r;
  switch (cmd) {
    case F_GETFL:
      return file->status_flags();
    case F_SETFL:
      // Kept as set (pipes, eventfds, ... accept them): O_NONBLOCK, O_APPEND, O_ASYNC.
      file->set_status_flags(static_cast<int>(arg), O_NONBLOCK | O_APPEND | O_ASYNC);
      return 0;
    default:
      return Fail(EINVAL, absl::StrCat("fcntl: command ", cmd, " is not simulated for a ",
                                       file->kind(), " (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, "
                                       "F_SETFD, F_GETFL and F_SETFL are)"));
  }
}

int HostStack::Fcntl(int fd, int cmd, long arg) {
  if (LookupFile(fd) != nullptr) return FileFcntl(fd, cmd, arg);
  SocketState* s;
  if (int r = LookupOrFail(fd, &s); r < 0) return r;
  if (const int r = DescriptorFcntl(fd, cmd, arg); r != OpenFile::kFcntlNotHandled) return r;
  switch (cmd) {
    case F_GETFL:
      return GetFlags(fd);
    case F_SETFL: {
      const int flags = static_cast<int>(arg);
      if (flags & O_DIRECT) {
        return Fail(EINVAL, "fcntl(F_SETFL): O_DIRECT is not supported by sockets");
      }
      s->nonblocking = (flags & O_NONBLOCK) != 0;
      s->status_flags = flags & kSettableStatusFlags & kKeptStatusFlags;
      return 0;
    }
    default:
      return Fail(EINVAL, absl::StrCat("fcntl: command ", cmd,
                                       " is not simulated (F_DUPFD, F_DUPFD_CLOEXEC, F_GETFD, "
                                       "F_SETFD, F_GETFL and F_SETFL are)"));
  }
}

int HostStack::Ioctl(int fd, unsigned long request, void* arg) {
  if (OpenFile* file = LookupFile(fd); file != nullptr) {
    if (request == FIONBIO && arg != nullptr) {
      int on;
      std::memcpy(&on, arg, sizeof(on));
      file->set_nonblocking(on != 0);
      return 0;
    }
    if (request == FIOCLEX || request == FIONCLEX) {
      descriptors_[fd].close_on_exec = request == FIOCLEX;
      return 0;
    }
    if (const int r = file->Ioctl(*this, request, arg); r != -ENOTTY) return r;
    return Fail(ENOTTY, absl::StrCat("ioctl: request ", request, " is not simulated for a ",
                                     file->kind()));
  }
  SocketState* s;
  if (int r = LookupOrFail(fd, &s); r < 0) return r;
  int value = 0;
  switch (request) {
    // Handled for every file by do_vfs_ioctl.
    case FIOCLEX:
    case FIONCLEX:
      descriptors_[fd].close_on_exec = request == FIOCLEX;
      return 0;
    case FIONBIO:
    case FIOASYNC: {
      if (arg == nullptr) return Fail(EFAULT, "ioctl: the argument pointer is null");
      int on;
      std::memcpy(&on, arg, sizeof(on));
      if (request == FIONBIO) {
        s->nonblocking = on != 0;
      } else {
        s->status_flags = on != 0 ? (s->status_flags | O_ASYNC) : (s->status_flags & ~O_ASYNC);
      }
      return 0;
    }
    // Socket ioctls (tcp_ioctl, udp_ioctl).
    case SIOCINQ:  // FIONREAD
      if (s->is_tcp()) {
        if (s->state == TcpState::kListen) {
          return Fail(EINVAL, "ioctl(FIONREAD) on a listening socket");
        }
        value = s->state == TcpState::kSynSent ? 0 : static_cast<int>(s->rx.size());
      } else {
        value = s->datagrams.empty() ? 0 : static_cast<int>(s->datagrams.front()->payload.size());
      }
      break;
    case SIOCOUTQ:
      if (s->is_tcp()) {
        if (s->state == TcpState::kListen) {
          return Fail(EINVAL, "ioctl(SIOCOUTQ) on a listening socket");
        }
        // write_seq - snd_una: unacknowledged bytes, and the FIN once it is queued.
        const bool fin_unacked = s->fin_queued && !s->fin_acked;
        value = s->state == TcpState::kSynSent
                    ? 0
                    : static_cast<int>(s->tx.size()) + (fin_unacked ? 1 : 0);
      } else {
        value = 0;  // Datagrams leave the host at once.
      }
      break;
    default:
      return Fail(ENOTTY, absl::StrCat("ioctl: request ", request,
                                       " is not simulated for sockets (FIONREAD, FIONBIO, "
                                       "FIOASYNC, FIOCLEX, FIONCLEX, SIOCINQ, SIOCOUTQ are)"));
  }
  if (arg == nullptr) return Fail(EFAULT, "ioctl: the argument pointer is null");
  std::memcpy(arg, &value, sizeof(value));
  return 0;
}

// dup (new_fd < 0), dup2 and dup3: the new descriptor refers to the same open file
// description (socket or other file), which stays open until its last descriptor
// closes. FD_CLOEXEC is per descriptor.
int HostStack::Dup(int fd, int new_fd, int flags, const char* call) {
  const bool dup3 = flags >= 0;
  if (dup3 && (flags & ~O_CLOEXEC) != 0) {
    return Fail(EINVAL, absl::StrCat(call, ": unknown flags ", flags));
  }
  if (new_fd < 0 && !dup3) {
    if (!IsOpen(fd)) return Fail(EBADF, absl::StrCat(call, ": descriptor ", fd, " is not open"));
    const int copy = ReserveDescriptor();
    if (copy < 0) return copy;
    InstallCopy(copy, fd, false);
    return copy;
  }
  // dup2 and dup3 (ksys_dup3): the target's range first, then the source.
  if (dup3 && fd == new_fd) {
    return Fail(EINVAL, absl::StrCat(call, ": the old and new descriptor are both ", fd));
  }
  if (new_fd < 0 || new_fd >= descriptor_limit()) {
    return Fail(EBADF, absl::StrCat(call, ": descriptor ", new_fd, " is outside the range"));
  }
  if (!IsOpen(fd)) return Fail(EBADF, absl::StrCat(call, ": descriptor ", fd, " is not open"));
  if (fd == new_fd) return new_fd;  // dup2 of a descriptor onto itself: nothing to do.
  if (static_cast<size_t>(new_fd) < descriptors_.size()) {
    const Descriptor& target = descriptors_[new_fd];
    if (target.reserved) {
      // An accept() holds the slot it will return (do_dup2: the file is not installed).
      return Fail(EBUSY, absl::StrCat(call, ": descriptor ", new_fd,
                                      " is reserved by an accept in progress"));
    }
    // The target is closed silently.
    if (target.socket != nullptr) {
      DropDescriptor(new_fd);
    } else if (target.file != nullptr) {
      CloseFile(new_fd);
    }
  }
  if (static_cast<size_t>(new_fd) >= descriptors_.size()) {
    for (int i = static_cast<int>(descriptors_.size()); i < new_fd; ++i) {
      free_descriptors_.insert(i);
    }
    descriptors_.resize(new_fd + 1);
  } else {
    free_descriptors_.erase(new_fd);
  }
  // dup2 may exceed the open-descriptor count only as Linux does: the number is valid.
  descriptors_[new_fd].reserved = true;
  ++open_descriptors_;
  InstallCopy(new_fd, fd, dup3 && (flags & O_CLOEXEC) != 0);
  return new_fd;
}

void HostStack::InstallCopy(int fd, int source, bool close_on_exec) {
  if (SocketState* s = Lookup(source); s != nullptr) {
    Install(fd, s, close_on_exec);
  } else {
    InstallFileAt(fd, descriptors_[source].file, close_on_exec);
  }
}

int HostStack::TakePendingError(int fd) {
  SocketState* s = Lookup(fd);
  if (s == nullptr) {
    if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) {
      return pair_end->TakeError();
    }
    DSIM_CHECK(IsOpen(fd), "TakePendingError on a closed descriptor");
    return 0;  // Not a socket: the call itself will say ENOTSOCK.
  }
  const int error = s->error;
  s->error = 0;
  return error;
}

void HostStack::SetPendingError(int fd, int error) {
  SocketState* s = Lookup(fd);
  if (s != nullptr) s->error = error;
  if (UnixSocket* pair_end = UnixSocketAt(fd); pair_end != nullptr) pair_end->SetError(error);
}

}  // namespace dsim::internal
