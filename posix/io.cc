// Descriptors and sockets under their libc names. Inside a task on a simulated host,
// a descriptor the host's table holds is simulated (dsim's socket API, pipes, eventfds,
// epoll, timerfds); any other descriptor number is the process's real one, and the
// call is forwarded and listed (EscapedCalls). Creating sockets or descriptors in a
// task that is not on a host, connecting to an address no simulated host owns, and
// mixing real and simulated descriptors in one poll fail the run.
//
// Descriptor numbers. Each host has its own table, like a process: simulated numbers
// start at 3 and stay small (the lowest free number, as POSIX requires), so code that
// indexes arrays by descriptor works. They never collide with the process's real
// descriptors because they live in another namespace: inside a task the host's table is
// consulted first, and a real descriptor whose number the host also uses is out of
// reach of that host's tasks (a task's own writes to 1 and 2 reach the real stdout and
// stderr while the host has no descriptor 1 or 2, which it never has).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <vector>

#include "absl/strings/str_cat.h"
#include "posix/internal/files.h"
#include "posix/internal/real.h"
#include "posix/internal/real_descriptors.h"
#include "posix/internal/state.h"
#include "net/network.h"
#include "scheduler/internal/task.h"
#include "sockets/files.h"
#include "sockets/internal/pipe.h"
#include "sockets/socket.h"

namespace dsim::posix::internal {
namespace {

// The calling task's host stack, or null when the task is not on a simulated host.
HostStack* HostOf(Scheduler& scheduler) {
  auto* network = static_cast<Network*>(scheduler.extension(Scheduler::kNetworkExtension));
  if (network == nullptr) return nullptr;
  // The task's group, read inline (Scheduler::CurrentGroup is a call; every simulated
  // call asks).
  const ::dsim::internal::Task* task = scheduler.current_task();
  NetworkHost* host = network->HostOfGroup(task != nullptr ? task->group : kNoGroup);
  return host == nullptr ? nullptr : &HostStack::Of(*host);
}

}  // namespace

// The host stack when `fd` is one of its descriptors; null otherwise.
HostStack* SimulatedFd(Scheduler& scheduler, int fd) {
  HostStack* stack = HostOf(scheduler);
  return stack != nullptr && stack->IsOpen(fd) ? stack : nullptr;
}

// The same, inline, for the hottest calls (read, write, epoll_wait).
__attribute__((always_inline)) inline HostStack* SimulatedFdInline(Scheduler& scheduler,
                                                                    int fd) {
  auto* network = static_cast<Network*>(scheduler.extension(Scheduler::kNetworkExtension));
  if (network == nullptr) return nullptr;
  const ::dsim::internal::Task* task = scheduler.current_task();
  NetworkHost* host = network->HostOfGroup(task != nullptr ? task->group : kNoGroup);
  if (host == nullptr) return nullptr;
  HostStack* stack = &HostStack::Of(*host);
  return stack->IsOpen(fd) ? stack : nullptr;
}

// A task of a crashed host whose kill was deferred (it arrived inside a noexcept call)
// takes it at its next call: its calls no longer reach a scheduling point (the host's
// descriptors are gone), so without this a loop of failing calls would spin forever.
// Inside a noexcept interposer (a NoUnwindScope) or while unwinding, this only yields.
void DeliverCrashedHostsKill(Scheduler& scheduler) { scheduler.SchedulingPoint(); }

// A call on a descriptor the task's host does not hold. Returns whether it may go to the
// real descriptor of that number; if so, lists it once per call and fd. A task of a
// crashed host's incarnation (unwinding: Asio's destructors close their sockets and
// epoll descriptors) may not: its descriptors died with its host as a process's die
// with it, and the same number in the real process is someone else's (GoogleTest's
// files, Bazel's pipes). Such calls fail with EPERM and touch nothing, as dsim's socket
// calls from a crashed host do.
bool Forwarded(Scheduler& scheduler, const char* call, int fd) {
  auto* network = static_cast<Network*>(scheduler.extension(Scheduler::kNetworkExtension));
  if (network != nullptr && network->CrashedHostOfGroup(scheduler.CurrentGroup()) != nullptr) {
    DeliverCrashedHostsKill(scheduler);
    errno = EPERM;
    return false;
  }
  PosixState& state = State(scheduler);
  const std::string key = absl::StrCat(call, "#", fd);
  if (!state.forwarded_keys.insert(key).second) return true;
  RecordEscape(scheduler, call,
               absl::StrCat("descriptor ", fd,
                            " is not a simulated descriptor of the task's host: forwarded to "
                            "the real one"),
               false);
  return true;
}

// Creating a descriptor needs a host; without one the run fails. A task of a crashed
// host fails with EPERM (its host is gone, see Forwarded).
HostStack* HostOrFail(Scheduler& scheduler, const char* call) {
  HostStack* stack = HostOf(scheduler);
  auto* network = static_cast<Network*>(scheduler.extension(Scheduler::kNetworkExtension));
  if (stack == nullptr && network != nullptr &&
      network->CrashedHostOfGroup(scheduler.CurrentGroup()) != nullptr) {
    DeliverCrashedHostsKill(scheduler);
    errno = EPERM;
    return nullptr;
  }
  if (stack == nullptr) {
    RecordEscape(scheduler, call,
                 "the task is not on a simulated host (spawn it with Host::Spawn or "
                 "NetworkHost::Spawn); a real descriptor would escape the simulation",
                 true);
    errno = EPERM;
  }
  return stack;
}

int FromResult(int result) {
  if (result < 0) {
    errno = -result;
    return -1;
  }
  return result;
}

}  // namespace dsim::posix::internal

namespace {
namespace pi = ::dsim::posix::internal;
using pi::HostStack;

DSIM_DECLARE_REAL(read);
DSIM_DECLARE_REAL(write);
DSIM_DECLARE_REAL(close);
DSIM_DECLARE_REAL(readv);
DSIM_DECLARE_REAL(writev);
DSIM_DECLARE_REAL(pipe);
DSIM_DECLARE_REAL(pipe2);
DSIM_DECLARE_REAL(eventfd);
DSIM_DECLARE_REAL(eventfd_read);
DSIM_DECLARE_REAL(eventfd_write);
DSIM_DECLARE_REAL(socket);
DSIM_DECLARE_REAL(socketpair);
DSIM_DECLARE_REAL(bind);
DSIM_DECLARE_REAL(listen);
DSIM_DECLARE_REAL(accept);
DSIM_DECLARE_REAL(accept4);
DSIM_DECLARE_REAL(connect);
DSIM_DECLARE_REAL(shutdown);
DSIM_DECLARE_REAL(getsockname);
DSIM_DECLARE_REAL(getpeername);
DSIM_DECLARE_REAL(getsockopt);
DSIM_DECLARE_REAL(setsockopt);
DSIM_DECLARE_REAL(send);
DSIM_DECLARE_REAL(sendto);
DSIM_DECLARE_REAL(sendmsg);
DSIM_DECLARE_REAL(recv);
DSIM_DECLARE_REAL(recvfrom);
DSIM_DECLARE_REAL(recvmsg);
DSIM_DECLARE_REAL(poll);
DSIM_DECLARE_REAL(ppoll);
DSIM_DECLARE_REAL(select);
DSIM_DECLARE_REAL(pselect);
DSIM_DECLARE_REAL(fcntl);
DSIM_DECLARE_REAL(ioctl);
DSIM_DECLARE_REAL(dup);
DSIM_DECLARE_REAL(dup2);
DSIM_DECLARE_REAL(dup3);
DSIM_DECLARE_REAL(epoll_create);
DSIM_DECLARE_REAL(epoll_create1);
DSIM_DECLARE_REAL(epoll_ctl);
DSIM_DECLARE_REAL(epoll_wait);
DSIM_DECLARE_REAL(epoll_pwait);
DSIM_DECLARE_REAL(timerfd_create);
DSIM_DECLARE_REAL(timerfd_settime);
DSIM_DECLARE_REAL(timerfd_gettime);

dsim::SourceLocation Where(dsim::Scheduler& scheduler) {
  return pi::CachedCallerLocation(pi::State(scheduler));
}

// DSIM_CALL_SITE_AT and Where in one, inline: the split interposers' simulated path.
__attribute__((always_inline)) inline dsim::SourceLocation WhereAt(dsim::Scheduler& scheduler,
                                                                  void* caller) {
  pi::PosixState& state = pi::State(scheduler);
  state.call_site = caller;
  return pi::CachedCallerLocation(state);
}

// Both for readv/writev on sockets (as recvmsg/sendmsg) and on other files.
ssize_t VectorIo(dsim::Scheduler& scheduler, HostStack* stack, int fd, const iovec* iov,
                 int count, bool write) {
  if (count < 0 || count > 1024) {
    errno = EINVAL;
    return -1;
  }
  if (stack->LookupFile(fd) != nullptr) {
    HostStack* entered = dsim::internal::EnterHost(write ? "writev" : "readv");
    if (entered == nullptr) return -1;
    const auto span = absl::MakeConstSpan(iov, static_cast<size_t>(count));
    return pi::FromResult(static_cast<int>(write ? stack->FileWrite(fd, span, Where(scheduler))
                                                 : stack->FileRead(fd, span, Where(scheduler))));
  }
  msghdr message{};
  message.msg_iov = const_cast<iovec*>(iov);
  message.msg_iovlen = static_cast<size_t>(count);
  return write ? dsim::Sendmsg(fd, &message, 0, Where(scheduler))
               : dsim::Recvmsg(fd, &message, 0, Where(scheduler));
}

// The file at `fd` if it is exactly a T (both kinds are final): a type_info comparison,
// cheaper than dynamic_cast on every epoll_wait.
template <typename T>
T* FileOf(HostStack* stack, int fd) {
  static_assert(std::is_final_v<T>);
  dsim::internal::OpenFile* file = stack == nullptr ? nullptr : stack->LookupFile(fd);
  return file != nullptr && typeid(*file) == typeid(T) ? static_cast<T*>(file) : nullptr;
}

// By kind(), whose answer for an epoll is the address of EpollFile::kKind: one virtual
// call on every epoll_wait instead of a type_info comparison.
__attribute__((always_inline)) inline pi::EpollFile* EpollOf(HostStack* stack, int fd) {
  dsim::internal::OpenFile* file = stack == nullptr ? nullptr : stack->LookupFile(fd);
  return file != nullptr && file->kind() == pi::EpollFile::kKind
             ? static_cast<pi::EpollFile*>(file)
             : nullptr;
}

pi::TimerFd* TimerOf(HostStack* stack, int fd) { return FileOf<pi::TimerFd>(stack, fd); }

// The simulated halves of epoll_ctl and timerfd_settime/gettime: EINVAL when the
// descriptor is not of the kind.
int EpollControl(HostStack* stack, int epfd, int op, int fd, struct epoll_event* event) {
  pi::EpollFile* epoll = EpollOf(stack, epfd);
  if (epoll == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return pi::FromResult(epoll->Control(op, fd, event));
}

int TimerSet(HostStack* stack, int fd, int flags, const struct itimerspec* value,
             struct itimerspec* old) {
  pi::TimerFd* timer = TimerOf(stack, fd);
  if (timer == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return pi::FromResult(timer->Set(flags, value, old));
}

int TimerGet(HostStack* stack, int fd, struct itimerspec* value) {
  pi::TimerFd* timer = TimerOf(stack, fd);
  if (timer == nullptr) {
    errno = EINVAL;
    return -1;
  }
  timer->Get(value);
  return 0;
}

// Poll over simulated descriptors only; 1 when every descriptor is simulated (or
// negative), 0 when none is, -1 (and the run fails) when they are mixed.
int Classify(dsim::Scheduler& scheduler, const pollfd* fds, nfds_t count) {
  HostStack* stack = pi::HostOf(scheduler);
  int simulated = 0, real = 0;
  for (nfds_t i = 0; i < count; ++i) {
    if (fds[i].fd < 0) continue;
    (stack != nullptr && stack->IsOpen(fds[i].fd) ? simulated : real)++;
  }
  if (real == 0) return 1;
  if (simulated == 0 && stack == nullptr) return 0;
  if (simulated == 0) return 0;
  pi::RecordEscape(scheduler, "poll",
                   "real and simulated descriptors in one call cannot be waited on together",
                   true);
  return -1;
}

int TimeoutMs(const timespec* timeout) {
  if (timeout == nullptr) return -1;
  const int64_t ms = (timeout->tv_sec * 1000000000LL + timeout->tv_nsec + 999999) / 1000000;
  return ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms);
}

}  // namespace

namespace dsim::posix::internal {
HostStack* HostOfTask(Scheduler& scheduler) { return HostOf(scheduler); }
}  // namespace dsim::posix::internal

#define DSIM_FD_CALL(call, fd, simulated, ...)                         \
  dsim::Scheduler* scheduler = pi::TaskScheduler();                    \
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(call)(__VA_ARGS__); \
  if (HostStack* stack = pi::SimulatedFd(*scheduler, fd); stack != nullptr) { \
    (void)stack;                                                       \
    DSIM_CALL_SITE(*scheduler);                                        \
    return simulated;                                                  \
  }                                                                    \
  if (!pi::Forwarded(*scheduler, #call, fd)) return -1;                \
  return DSIM_REAL(call)(__VA_ARGS__)

// DSIM_FD_CALL for the calls glibc declares noexcept (__THROW: bind, getsockopt, ...):
// their scheduling point must not deliver a kill (host crash, teardown), which would be
// thrown through the noexcept frame and end the process; it waits for the task's next
// scheduling point outside.
#define DSIM_FD_CALL_NOEXCEPT(call, fd, simulated, ...)                 \
  dsim::Scheduler* scheduler = pi::TaskScheduler();                    \
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(call)(__VA_ARGS__); \
  dsim::Scheduler::NoUnwindScope no_unwind;                            \
  if (HostStack* stack = pi::SimulatedFd(*scheduler, fd); stack != nullptr) { \
    (void)stack;                                                       \
    DSIM_CALL_SITE(*scheduler);                                        \
    return simulated;                                                  \
  }                                                                    \
  if (!pi::Forwarded(*scheduler, #call, fd)) return -1;                \
  return DSIM_REAL(call)(__VA_ARGS__)

// The out-of-line half of a split interposer (see NoRunOnThread): DSIM_FD_CALL with
// the interposer's return address given.
// `simulated` finds the call site with WhereAt(*scheduler, caller).
#define DSIM_FD_CALL_IN_RUN(call, caller, fd, simulated, ...)           \
  dsim::Scheduler* scheduler = pi::TaskSchedulerOf(caller);            \
  if (scheduler == nullptr) return DSIM_REAL(call)(__VA_ARGS__);       \
  if (HostStack* stack = pi::SimulatedFdInline(*scheduler, fd); stack != nullptr) { \
    return simulated;                                                  \
  }                                                                    \
  if (!pi::Forwarded(*scheduler, #call, fd)) return -1;                \
  return DSIM_REAL(call)(__VA_ARGS__)

namespace {

DSIM_POSIX_HOT __attribute__((noinline)) ssize_t ReadInRun(int fd, void* buffer, size_t length,
                                                           void* caller) {
  DSIM_FD_CALL_IN_RUN(read, caller, fd,
                      dsim::internal::ReadFound(stack, fd, buffer, length,
                                                WhereAt(*scheduler, caller)),
                      fd, buffer, length);
}

DSIM_POSIX_HOT __attribute__((noinline)) ssize_t WriteInRun(int fd, const void* buffer,
                                                            size_t length, void* caller) {
  DSIM_FD_CALL_IN_RUN(write, caller, fd,
                      dsim::internal::WriteFound(stack, fd, buffer, length,
                                                 WhereAt(*scheduler, caller)),
                      fd, buffer, length);
}

}  // namespace

extern "C" {

DSIM_POSIX_HOT ssize_t read(int fd, void* buffer, size_t length) {
  if (__builtin_expect(pi::NoRunOnThread(), 1)) return DSIM_REAL(read)(fd, buffer, length);
  return ReadInRun(fd, buffer, length, __builtin_return_address(0));
}

DSIM_POSIX_HOT ssize_t write(int fd, const void* buffer, size_t length) {
  if (__builtin_expect(pi::NoRunOnThread(), 1)) return DSIM_REAL(write)(fd, buffer, length);
  return WriteInRun(fd, buffer, length, __builtin_return_address(0));
}

int close(int fd) { DSIM_FD_CALL(close, fd, dsim::Close(fd), fd); }

ssize_t readv(int fd, const struct iovec* iov, int count) {
  DSIM_FD_CALL(readv, fd, VectorIo(*scheduler, stack, fd, iov, count, false), fd, iov, count);
}

ssize_t writev(int fd, const struct iovec* iov, int count) {
  DSIM_FD_CALL(writev, fd, VectorIo(*scheduler, stack, fd, iov, count, true), fd, iov, count);
}

}  // extern "C"

namespace {

// Named AF_UNIX sockets (paths, abstract names) are not simulated; a task that uses one
// gets a loud failure instead of a silent errno.
bool RefuseUnixAddress(dsim::Scheduler& scheduler, const char* call,
                       const struct sockaddr* address, socklen_t length) {
  if (address == nullptr || length < sizeof(sa_family_t) || address->sa_family != AF_UNIX) {
    return false;
  }
  pi::RecordEscape(scheduler, call,
                   "AF_UNIX addresses (paths, abstract names) are not simulated; only "
                   "socketpair() pairs are",
                   true);
  errno = EOPNOTSUPP;
  return true;
}

const struct sockaddr* MessageName(const struct msghdr* message) {
  return message == nullptr ? nullptr : static_cast<const sockaddr*>(message->msg_name);
}

}  // namespace

extern "C" {

int bind(int fd, const struct sockaddr* address, socklen_t length) noexcept {
  DSIM_FD_CALL_NOEXCEPT(bind, fd,
               RefuseUnixAddress(*scheduler, "bind", address, length)
                   ? -1
                   : dsim::Bind(fd, address, length),
               fd, address, length);
}

int listen(int fd, int backlog) noexcept {
  DSIM_FD_CALL_NOEXCEPT(listen, fd, dsim::Listen(fd, backlog), fd, backlog);
}

int accept(int fd, struct sockaddr* address, socklen_t* length) {
  DSIM_FD_CALL(accept, fd, dsim::Accept(fd, address, length, Where(*scheduler)), fd, address,
               length);
}

int accept4(int fd, struct sockaddr* address, socklen_t* length, int flags) {
  DSIM_FD_CALL(accept4, fd, dsim::Accept4(fd, address, length, flags, Where(*scheduler)), fd,
               address, length, flags);
}

int shutdown(int fd, int how) noexcept {
  DSIM_FD_CALL_NOEXCEPT(shutdown, fd, dsim::Shutdown(fd, how), fd, how);
}

int getsockname(int fd, struct sockaddr* address, socklen_t* length) noexcept {
  DSIM_FD_CALL_NOEXCEPT(getsockname, fd, dsim::Getsockname(fd, address, length), fd, address, length);
}

int getpeername(int fd, struct sockaddr* address, socklen_t* length) noexcept {
  DSIM_FD_CALL_NOEXCEPT(getpeername, fd, dsim::Getpeername(fd, address, length), fd, address, length);
}

int getsockopt(int fd, int level, int name, void* value, socklen_t* length) noexcept {
  DSIM_FD_CALL_NOEXCEPT(getsockopt, fd, dsim::Getsockopt(fd, level, name, value, length), fd, level, name,
               value, length);
}

int setsockopt(int fd, int level, int name, const void* value, socklen_t length) noexcept {
  DSIM_FD_CALL_NOEXCEPT(setsockopt, fd, dsim::Setsockopt(fd, level, name, value, length), fd, level, name,
               value, length);
}

ssize_t send(int fd, const void* buffer, size_t length, int flags) {
  DSIM_FD_CALL(send, fd, dsim::Send(fd, buffer, length, flags, Where(*scheduler)), fd, buffer,
               length, flags);
}

ssize_t sendto(int fd, const void* buffer, size_t length, int flags,
               const struct sockaddr* address, socklen_t address_length) {
  DSIM_FD_CALL(sendto, fd,
               RefuseUnixAddress(*scheduler, "sendto", address, address_length)
                   ? -1
                   : dsim::Sendto(fd, buffer, length, flags, address, address_length,
                                  Where(*scheduler)),
               fd, buffer, length, flags, address, address_length);
}

ssize_t sendmsg(int fd, const struct msghdr* message, int flags) {
  DSIM_FD_CALL(sendmsg, fd,
               RefuseUnixAddress(*scheduler, "sendmsg", MessageName(message),
                                 message != nullptr ? message->msg_namelen : 0)
                   ? -1
                   : dsim::Sendmsg(fd, message, flags, Where(*scheduler)),
               fd, message, flags);
}

ssize_t recv(int fd, void* buffer, size_t length, int flags) {
  DSIM_FD_CALL(recv, fd, dsim::Recv(fd, buffer, length, flags, Where(*scheduler)), fd, buffer,
               length, flags);
}

ssize_t recvfrom(int fd, void* buffer, size_t length, int flags, struct sockaddr* address,
                 socklen_t* address_length) {
  DSIM_FD_CALL(recvfrom, fd,
               dsim::Recvfrom(fd, buffer, length, flags, address, address_length,
                              Where(*scheduler)),
               fd, buffer, length, flags, address, address_length);
}

ssize_t recvmsg(int fd, struct msghdr* message, int flags) {
  DSIM_FD_CALL(recvmsg, fd, dsim::Recvmsg(fd, message, flags, Where(*scheduler)), fd, message,
               flags);
}

int connect(int fd, const struct sockaddr* address, socklen_t length) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(connect)(fd, address, length);
  if (pi::SimulatedFd(*scheduler, fd) == nullptr) {
    if (!pi::Forwarded(*scheduler, "connect", fd)) return -1;
    return DSIM_REAL(connect)(fd, address, length);
  }
  if (RefuseUnixAddress(*scheduler, "connect", address, length)) return -1;
  const int result = dsim::Connect(fd, address, length, Where(*scheduler));
  if (result < 0 && errno == ENETUNREACH) {
    // No simulated host owns the address: on a real machine this would leave it.
    pi::RecordEscape(*scheduler, "connect",
                     absl::StrCat("no simulated host owns ",
                                  dsim::SockaddrToString(address, length)),
                     true);
    errno = ENETUNREACH;
  }
  return result;
}

int socket(int domain, int type, int protocol) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(socket)(domain, type, protocol);
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  if (pi::HostOrFail(*scheduler, "socket") == nullptr) return -1;
  if (domain != AF_INET && domain != AF_INET6 && domain > 0 && domain < AF_MAX) {
    // A family the kernel has but dsim does not model (AF_UNIX: hiredis's
    // redisConnectUnix; AF_NETLINK, AF_PACKET). Linux would give a socket, so an
    // EAFNOSUPPORT alone would quietly change the program's path: fail the run.
    pi::RecordEscape(*scheduler, "socket",
                     absl::StrCat("address family ", domain,
                                  " is not simulated (only AF_INET and AF_INET6",
                                  domain == AF_UNIX ? "; AF_UNIX only as socketpair() pairs, "
                                                      "no paths or abstract names)"
                                                    : ")"),
                     true);
    errno = EAFNOSUPPORT;
    return -1;
  }
  return dsim::Socket(domain, type, protocol);
}

int socketpair(int domain, int type, int protocol, int fds[2]) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(socketpair)(domain, type, protocol, fds);
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  if (pi::HostOrFail(*scheduler, "socketpair") == nullptr) return -1;
  return dsim::Socketpair(domain, type, protocol, fds);
}

int pipe(int fds[2]) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pipe)(fds);
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  if (pi::HostOrFail(*scheduler, "pipe") == nullptr) return -1;
  return dsim::Pipe(fds);
}

int pipe2(int fds[2], int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pipe2)(fds, flags);
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  if (pi::HostOrFail(*scheduler, "pipe2") == nullptr) return -1;
  return dsim::Pipe2(fds, flags);
}

int eventfd(unsigned int initial, int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(eventfd)(initial, flags);
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  if (pi::HostOrFail(*scheduler, "eventfd") == nullptr) return -1;
  return dsim::Eventfd(initial, flags);
}

// glibc's eventfd_read/eventfd_write call its internal __read/__write, which no
// interposer sees: without these a task's eventfd_write (gRPC's wakeup fd) reached the
// real descriptor of that number.
int eventfd_read(int fd, eventfd_t* value) {
  DSIM_FD_CALL(eventfd_read, fd,
               dsim::Read(fd, value, sizeof(*value), Where(*scheduler)) == sizeof(*value) ? 0 : -1,
               fd, value);
}

int eventfd_write(int fd, eventfd_t value) {
  DSIM_FD_CALL(eventfd_write, fd,
               dsim::Write(fd, &value, sizeof(value), Where(*scheduler)) == sizeof(value) ? 0 : -1,
               fd, value);
}

int poll(struct pollfd* fds, nfds_t count, int timeout_ms) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(poll)(fds, count, timeout_ms);
  const int kind = Classify(*scheduler, fds, count);
  if (kind < 0) {
    errno = EPERM;
    return -1;
  }
  if (kind == 0) {
    if (!pi::Forwarded(*scheduler, "poll", count > 0 ? fds[0].fd : -1)) return -1;
    return DSIM_REAL(poll)(fds, count, timeout_ms);
  }
  if (pi::HostOf(*scheduler) == nullptr) {  // Only negative descriptors: a sleep.
    if (timeout_ms != 0) dsim::SleepFor(timeout_ms < 0 ? absl::InfiniteDuration()
                                                       : absl::Milliseconds(timeout_ms));
    return 0;
  }
  return dsim::Poll(fds, count, timeout_ms, Where(*scheduler));
}

int ppoll(struct pollfd* fds, nfds_t count, const struct timespec* timeout,
          const sigset_t* mask) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(ppoll)(fds, count, timeout, mask);
  return poll(fds, count, TimeoutMs(timeout));  // Signals are never delivered in a task.
}

}  // extern "C"

namespace {

int SelectSimulated(dsim::Scheduler& scheduler, int nfds, fd_set* readers, fd_set* writers,
                    fd_set* errors, int timeout_ms, bool* handled) {
  *handled = false;
  if (nfds < 0 || nfds > FD_SETSIZE) {
    *handled = true;
    errno = EINVAL;
    return -1;
  }
  std::vector<pollfd> fds;
  for (int fd = 0; fd < nfds; ++fd) {
    short events = 0;
    if (readers != nullptr && FD_ISSET(fd, readers)) events |= POLLIN;
    if (writers != nullptr && FD_ISSET(fd, writers)) events |= POLLOUT;
    if (errors != nullptr && FD_ISSET(fd, errors)) events |= POLLPRI;
    if (events != 0) fds.push_back(pollfd{fd, events, 0});
  }
  const int kind = Classify(scheduler, fds.data(), fds.size());
  if (kind == 0 && !fds.empty()) return 0;  // All real: the caller forwards.
  *handled = true;
  if (kind < 0) {
    errno = EPERM;
    return -1;
  }
  if (fds.empty()) {
    if (timeout_ms != 0) dsim::SleepFor(timeout_ms < 0 ? absl::InfiniteDuration()
                                                       : absl::Milliseconds(timeout_ms));
    return 0;
  }
  const int ready = dsim::Poll(fds.data(), fds.size(), timeout_ms, Where(scheduler));
  if (ready < 0) return -1;
  for (const pollfd& p : fds) {
    if (p.revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
  }
  if (readers != nullptr) FD_ZERO(readers);
  if (writers != nullptr) FD_ZERO(writers);
  if (errors != nullptr) FD_ZERO(errors);
  int count = 0;
  for (const pollfd& p : fds) {
    // As the kernel's select: readable includes hang-up and error, writable includes error.
    if ((p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      FD_SET(p.fd, readers);
      ++count;
    }
    if ((p.events & POLLOUT) && (p.revents & (POLLOUT | POLLERR))) {
      FD_SET(p.fd, writers);
      ++count;
    }
    if ((p.events & POLLPRI) && (p.revents & POLLPRI)) {
      FD_SET(p.fd, errors);
      ++count;
    }
  }
  return count;
}

}  // namespace

extern "C" {

int select(int nfds, fd_set* readers, fd_set* writers, fd_set* errors, struct timeval* timeout) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(select)(nfds, readers, writers, errors, timeout);
  const int timeout_ms =
      timeout == nullptr ? -1
                         : static_cast<int>(timeout->tv_sec * 1000 + (timeout->tv_usec + 999) / 1000);
  bool handled;
  const int result =
      SelectSimulated(*scheduler, nfds, readers, writers, errors, timeout_ms, &handled);
  if (handled) {
    if (timeout != nullptr && result >= 0) *timeout = timeval{0, 0};  // Linux updates it.
    return result;
  }
  if (!pi::Forwarded(*scheduler, "select", nfds)) return -1;
  return DSIM_REAL(select)(nfds, readers, writers, errors, timeout);
}

int pselect(int nfds, fd_set* readers, fd_set* writers, fd_set* errors,
            const struct timespec* timeout, const sigset_t* mask) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(pselect)(nfds, readers, writers, errors, timeout, mask);
  bool handled;
  const int result = SelectSimulated(*scheduler, nfds, readers, writers, errors,
                                     TimeoutMs(timeout), &handled);
  if (handled) return result;
  if (!pi::Forwarded(*scheduler, "pselect", nfds)) return -1;
  return DSIM_REAL(pselect)(nfds, readers, writers, errors, timeout, mask);
}

// Defined by //posix:files (simulated disks) when a test links it: record and OFD locks.
int dsim_posix_file_lock_fcntl(int fd, int command, void* argument) __attribute__((weak));

int fcntl(int fd, int command, ...) {
  va_list args;
  va_start(args, command);
  const long arg = va_arg(args, long);
  va_end(args);
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(fcntl)(fd, command, arg);
  if (pi::SimulatedFd(*scheduler, fd) == nullptr) {
    if (!pi::Forwarded(*scheduler, "fcntl", fd)) return -1;
    return DSIM_REAL(fcntl)(fd, command, arg);
  }
  switch (command) {
    case F_GETLK: case F_SETLK: case F_SETLKW:
    case F_OFD_GETLK: case F_OFD_SETLK: case F_OFD_SETLKW:
      if (dsim_posix_file_lock_fcntl != nullptr) {
        return dsim_posix_file_lock_fcntl(fd, command, reinterpret_cast<void*>(arg));
      }
      break;
    default:
      break;
  }
  return dsim::Fcntl(fd, command, arg);
}

int ioctl(int fd, unsigned long request, ...) noexcept {
  va_list args;
  va_start(args, request);
  void* arg = va_arg(args, void*);
  va_end(args);
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(ioctl)(fd, request, arg);
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  if (pi::SimulatedFd(*scheduler, fd) == nullptr) {
    if (!pi::Forwarded(*scheduler, "ioctl", fd)) return -1;
    return DSIM_REAL(ioctl)(fd, request, arg);
  }
  return dsim::Ioctl(fd, request, arg);
}

// noexcept in glibc's headers: a kill (host crash, teardown) must not unwind through
// them, so it waits for the task's next scheduling point.
// A copy of a real descriptor (dup(1), to save stdout) is moved to the real range, as
// real files are: the kernel's lowest free number may be one the host holds or hands
// out next.
int dup(int fd) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (__builtin_expect(scheduler == nullptr, 1)) return DSIM_REAL(dup)(fd);
  dsim::Scheduler::NoUnwindScope no_unwind;
  if (pi::SimulatedFd(*scheduler, fd) != nullptr) {
    DSIM_CALL_SITE(*scheduler);
    return dsim::Dup(fd);
  }
  if (!pi::Forwarded(*scheduler, "dup", fd)) return -1;
  return pi::MoveToRealRange(*scheduler, "dup", DSIM_REAL(dup)(fd));
}

int dup2(int fd, int new_fd) noexcept {
  DSIM_FD_CALL_NOEXCEPT(dup2, fd, dsim::Dup2(fd, new_fd), fd,
               new_fd);
}

int dup3(int fd, int new_fd, int flags) noexcept {
  DSIM_FD_CALL_NOEXCEPT(dup3, fd, dsim::Dup3(fd, new_fd, flags), fd,
               new_fd, flags);
}

}  // extern "C"

namespace {

// epoll_wait's cold paths, out of line: the hot half stays a few cache lines.
[[gnu::cold, gnu::noinline]] int EpollWaitForwarded(dsim::Scheduler& scheduler, int epfd,
                                                     struct epoll_event* events, int max,
                                                     int timeout_ms) {
  if (!pi::Forwarded(scheduler, "epoll_wait", epfd)) return -1;
  return DSIM_REAL(epoll_wait)(epfd, events, max, timeout_ms);
}

[[gnu::cold, gnu::noinline]] int EpollWaitNotEpoll(HostStack* stack, int epfd) {
  errno = stack->IsOpen(epfd) ? EINVAL : EBADF;
  return -1;
}

[[gnu::noinline]] absl::Time EpollDeadline(dsim::Scheduler& scheduler, int timeout_ms) {
  // The timeout lasts its length on the host's clock (scheduler/clock.h).
  return scheduler.TrueDeadlineAfterLocal(absl::Milliseconds(timeout_ms));
}

// The out-of-line half of epoll_wait (see NoRunOnThread).
DSIM_POSIX_HOT __attribute__((noinline)) int EpollWaitInRun(int epfd,
                                                            struct epoll_event* events,
                                                            int max, int timeout_ms,
                                                            void* caller) {
  dsim::Scheduler* scheduler = pi::TaskSchedulerOf(caller);
  if (scheduler == nullptr) return DSIM_REAL(epoll_wait)(epfd, events, max, timeout_ms);
  HostStack* stack = pi::SimulatedFdInline(*scheduler, epfd);
  if (__builtin_expect(stack == nullptr, 0)) {
    return EpollWaitForwarded(*scheduler, epfd, events, max, timeout_ms);
  }
  if (__builtin_expect(EpollOf(stack, epfd) == nullptr, 0)) return EpollWaitNotEpoll(stack, epfd);
  const dsim::SourceLocation where = WhereAt(*scheduler, caller);
  if (dsim::internal::EnterFoundHost(stack, "epoll_wait") == nullptr) return -1;
  // Another task may have closed (or replaced) epfd at the scheduling point just taken,
  // so the instance is found again (a pointer comparison would not tell a new
  // description at a reused address).
  pi::EpollFile* epoll = EpollOf(stack, epfd);
  if (__builtin_expect(epoll == nullptr, 0)) return EpollWaitNotEpoll(stack, epfd);
  pi::EpollFile::Pin pin(epoll);
  const absl::Time deadline =
      timeout_ms < 0 ? absl::InfiniteFuture() : EpollDeadline(*scheduler, timeout_ms);
  return pi::FromResult(epoll->Wait(events, max, deadline, where));
}

}  // namespace

extern "C" {

// ---- epoll --------------------------------------------------------------------------------

int epoll_create1(int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(epoll_create1)(flags);
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  HostStack* stack = pi::HostOrFail(*scheduler, "epoll_create1");
  if (stack == nullptr) return -1;
  if ((flags & ~EPOLL_CLOEXEC) != 0) {
    errno = EINVAL;
    return -1;
  }
  if (dsim::internal::EnterHost("epoll_create1") == nullptr) return -1;
  return pi::FromResult(stack->InstallFile(pi::EpollFile::Create(stack),
                                           (flags & EPOLL_CLOEXEC) != 0));
}

int epoll_create(int size) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(epoll_create)(size);
  if (size <= 0) {
    errno = EINVAL;
    return -1;
  }
  return epoll_create1(0);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) noexcept {
  DSIM_FD_CALL_NOEXCEPT(epoll_ctl, epfd, EpollControl(stack, epfd, op, fd, event), epfd, op, fd,
                        event);
}

DSIM_POSIX_HOT int epoll_wait(int epfd, struct epoll_event* events, int max, int timeout_ms) {
  if (__builtin_expect(pi::NoRunOnThread(), 1)) {
    return DSIM_REAL(epoll_wait)(epfd, events, max, timeout_ms);
  }
  return EpollWaitInRun(epfd, events, max, timeout_ms, __builtin_return_address(0));
}

int epoll_pwait(int epfd, struct epoll_event* events, int max, int timeout_ms,
                const sigset_t* mask) {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(epoll_pwait)(epfd, events, max, timeout_ms, mask);
  return epoll_wait(epfd, events, max, timeout_ms);
}

// ---- timerfd -------------------------------------------------------------------------------

int timerfd_create(int clock, int flags) noexcept {
  dsim::Scheduler* scheduler = pi::TaskScheduler();
  if (scheduler == nullptr) return DSIM_REAL(timerfd_create)(clock, flags);
  dsim::Scheduler::NoUnwindScope no_unwind;  // noexcept: a kill waits for a later point.
  HostStack* stack = pi::HostOrFail(*scheduler, "timerfd_create");
  if (stack == nullptr) return -1;
  const pi::ClockKind kind = pi::KindOf(clock);
  if ((kind != pi::ClockKind::kRealtime && kind != pi::ClockKind::kMonotonic) ||
      (flags & ~(TFD_NONBLOCK | TFD_CLOEXEC)) != 0) {
    errno = EINVAL;
    return -1;
  }
  if (dsim::internal::EnterHost("timerfd_create") == nullptr) return -1;
  return pi::FromResult(stack->InstallFile(std::make_shared<pi::TimerFd>(
      scheduler, scheduler->CurrentGroup(), kind,
      O_RDWR | ((flags & TFD_NONBLOCK) ? O_NONBLOCK : 0)), (flags & TFD_CLOEXEC) != 0));
}

int timerfd_settime(int fd, int flags, const struct itimerspec* value,
                    struct itimerspec* old) noexcept {
  DSIM_FD_CALL_NOEXCEPT(timerfd_settime, fd, TimerSet(stack, fd, flags, value, old), fd, flags,
                        value, old);
}

int timerfd_gettime(int fd, struct itimerspec* value) noexcept {
  DSIM_FD_CALL_NOEXCEPT(timerfd_gettime, fd, TimerGet(stack, fd, value), fd, value);
}

}  // extern "C"
