#include "sockets/files.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <memory>

#include "absl/strings/str_cat.h"
#include "sockets/internal/pipe.h"
#include "sockets/internal/stack.h"
#include "sockets/internal/unix_socket.h"

namespace dsim {
namespace {

using internal::HostStack;

int Result(int result) {
  if (result < 0) {
    errno = -result;
    return -1;
  }
  return result;
}

}  // namespace

int Pipe(int fds[2]) { return Pipe2(fds, 0); }

int Pipe2(int fds[2], int flags) {
  HostStack* stack = internal::EnterHost("Pipe2");
  if (stack == nullptr) return -1;
  if ((flags & ~(O_NONBLOCK | O_CLOEXEC)) != 0) {
    return Result(stack->Fail(EINVAL, absl::StrCat("pipe2: unsupported flags ", flags)));
  }
  if (fds == nullptr) return Result(stack->Fail(EFAULT, "pipe2: the array is null"));
  std::shared_ptr<internal::PipeEnd> read_end, write_end;
  internal::PipeEnd::MakePair(flags, &read_end, &write_end);
  const bool cloexec = (flags & O_CLOEXEC) != 0;
  const int read_fd = stack->InstallFile(read_end, cloexec);
  if (read_fd < 0) return Result(read_fd);
  const int write_fd = stack->InstallFile(write_end, cloexec);
  if (write_fd < 0) {
    stack->Close(read_fd);
    return Result(write_fd);
  }
  fds[0] = read_fd;
  fds[1] = write_fd;
  return 0;
}

int Eventfd(unsigned int initial_value, int flags) {
  HostStack* stack = internal::EnterHost("Eventfd");
  if (stack == nullptr) return -1;
  if ((flags & ~(EFD_NONBLOCK | EFD_SEMAPHORE | EFD_CLOEXEC)) != 0) {
    return Result(stack->Fail(EINVAL, absl::StrCat("eventfd: unsupported flags ", flags)));
  }
  auto file = std::make_shared<internal::EventFd>(initial_value, (flags & EFD_SEMAPHORE) != 0,
                                                  O_RDWR | (flags & EFD_NONBLOCK ? O_NONBLOCK : 0));
  return Result(stack->InstallFile(std::move(file), (flags & EFD_CLOEXEC) != 0));
}

int Socketpair(int domain, int type, int protocol, int fds[2]) {
  HostStack* stack = internal::EnterHost("Socketpair");
  if (stack == nullptr) return -1;
  // __sys_socketpair: flags, then the family (sock_create), the type, the protocol.
  constexpr int kTypeMask = 0xf;  // SOCK_TYPE_MASK
  const int flags = type & ~kTypeMask;
  int kind = type & kTypeMask;
  if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) {
    return Result(stack->Fail(EINVAL, absl::StrCat("socketpair: unknown type flags ", flags)));
  }
  if (domain != AF_UNIX) {
    if (domain == AF_INET || domain == AF_INET6) {
      return Result(stack->Fail(EOPNOTSUPP, "socketpair: only AF_UNIX makes pairs"));
    }
    return Result(stack->Fail(EAFNOSUPPORT, absl::StrCat("socketpair: family ", domain,
                                                         " is not simulated (AF_UNIX is)")));
  }
  if (kind == SOCK_RAW) kind = SOCK_DGRAM;  // unix_create: SOCK_RAW means SOCK_DGRAM.
  if (kind != SOCK_STREAM && kind != SOCK_DGRAM && kind != SOCK_SEQPACKET) {
    return Result(stack->Fail(ESOCKTNOSUPPORT, absl::StrCat("socketpair: type ", kind)));
  }
  if (protocol != 0 && protocol != AF_UNIX) {
    return Result(stack->Fail(EPROTONOSUPPORT, "socketpair: protocol must be 0"));
  }
  if (fds == nullptr) return Result(stack->Fail(EFAULT, "socketpair: the array is null"));
  std::shared_ptr<internal::UnixSocket> first, second;
  internal::UnixSocket::MakePair(kind, (flags & SOCK_NONBLOCK) ? O_NONBLOCK : 0, &first, &second);
  const bool cloexec = (flags & SOCK_CLOEXEC) != 0;
  const int a = stack->InstallFile(first, cloexec);
  if (a < 0) return Result(a);
  const int b = stack->InstallFile(second, cloexec);
  if (b < 0) {
    stack->Close(a);
    return Result(b);
  }
  fds[0] = a;
  fds[1] = b;
  return 0;
}

}  // namespace dsim
