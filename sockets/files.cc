#include "sockets/files.h"

#include <fcntl.h>
#include <sys/eventfd.h>

#include <cerrno>
#include <memory>

#include "absl/strings/str_cat.h"
#include "sockets/internal/pipe.h"
#include "sockets/internal/stack.h"

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
  const int read_fd = stack->InstallFile(read_end);
  if (read_fd < 0) return Result(read_fd);
  const int write_fd = stack->InstallFile(write_end);
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
  return Result(stack->InstallFile(std::move(file)));
}

}  // namespace dsim
