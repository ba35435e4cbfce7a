#include "sockets/socket.h"

#include <arpa/inet.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/str_cat.h"
#include "scheduler/internal/task.h"
#include "scheduler/scheduler.h"
#include "scheduler/trace_sink.h"
#include "net/network.h"
#include "sockets/internal/recv_into.h"
#include "sockets/internal/stack.h"

namespace dsim {
namespace {

using internal::HostStack;

// The highest user address on x86-64 Linux (TASK_SIZE_MAX): a buffer reaching past it
// fails access_ok() with EFAULT before anything else happens.
constexpr uintptr_t kUserAddressLimit = (uintptr_t{1} << 47) - 4096;
constexpr size_t kMaxIovecs = 1024;  // UIO_MAXIOV.
// The kernel's MSG_CMSG_COMPAT: the mmsg calls refuse it from user space.
constexpr int kMsgCmsgCompat = static_cast<int>(0x80000000u);

bool AccessOk(const void* buffer, size_t length) {
  const uintptr_t start = reinterpret_cast<uintptr_t>(buffer);
  return length <= kUserAddressLimit && start <= kUserAddressLimit - length;
}

// Message for calls made on a thread where no simulation runs. Per thread, because
// each thread runs its own simulations; no call inside a simulation reads or writes it.
std::string& NoSimulationMessage() {
  thread_local std::string message;
  return message;
}

// What LastSocketErrorMessage answers in a simulation without a Network: every socket
// call there fails for this one reason.
const std::string& NoNetworkMessage() {
  static const std::string* const kText = new std::string(
      "dsim socket calls fail here: no dsim::Network is attached to this simulation's "
      "scheduler");
  return *kText;
}

// Whether a call's scheduling point may deliver a kill (a host crash) to the caller.
// Close and Shutdown run in destructors (TcpStream's), which must not throw.
enum class KillPoint { kDeliver, kDefer };

// Enter's failure, out of line: the message's temporaries stay off every call's frame.
ABSL_ATTRIBUTE_NOINLINE HostStack* EnterFailed(Scheduler* scheduler, const char* call,
                                               const char* problem) {
  std::string message =
      absl::StrCat("dsim::", call, " was called outside a simulated task: ", problem);
  if (scheduler == nullptr) {
    NoSimulationMessage() = std::move(message);
  } else if (auto* network = static_cast<Network*>(
                 scheduler->extension(Scheduler::kNetworkExtension))) {
    network->outside_host_message() = std::move(message);
  }
  errno = EPERM;
  return nullptr;
}

// The calling task's host stack (the task's group's host), or EnterFailed's answer.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline HostStack* StackOfCaller(Scheduler* scheduler,
                                                             const char* call) {
  auto* network = static_cast<Network*>(scheduler->extension(Scheduler::kNetworkExtension));
  NetworkHost* host =
      network == nullptr ? nullptr : network->HostOfGroup(scheduler->CurrentGroup());
  if (ABSL_PREDICT_TRUE(host != nullptr)) return &HostStack::Of(*host);
  return EnterFailed(scheduler, call,
                     network == nullptr
                         ? "no dsim::Network is attached to this simulation's scheduler"
                         : "the calling task is not on a host (or its host crashed); spawn "
                           "it with NetworkHost::Spawn or Host::Spawn");
}

// Enter's failure outside a task, out of line.
ABSL_ATTRIBUTE_NOINLINE HostStack* EnterOutsideTask(Scheduler* scheduler, const char* call) {
  return EnterFailed(scheduler, call,
                     scheduler == nullptr ? "no dsim simulation runs on this thread"
                                          : "the caller is a timer callback or the run loop");
}

// Finds the calling task's host stack, after the scheduling point every call is.
// Fails with EPERM outside a simulated task. Always inline: the hot calls (read,
// write, recvfrom, sendto) pay no call for it; the others go through Enter.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline HostStack* EnterInline(const char* call,
                                                           KillPoint kill_point) {
  Scheduler* scheduler = Scheduler::Current();
  if (ABSL_PREDICT_FALSE(scheduler == nullptr || !scheduler->InTask())) {
    return EnterOutsideTask(scheduler, call);
  }
  // The preemption point comes first, before the host lookup: a task of a crashed
  // host must be unwound here even though its host no longer answers to it, or a
  // loop that retries a failing call would spin forever. While unwinding a killed
  // task, destructors that close sockets must not give the CPU away.
  if (scheduler->UncaughtExceptions() == 0) {
    if (kill_point == KillPoint::kDefer) {
      Scheduler::NoUnwindScope no_unwind;
      scheduler->SchedulingPoint();
    } else {
      scheduler->SchedulingPoint();
    }
  }
  return StackOfCaller(scheduler, call);
}

HostStack* Enter(const char* call, KillPoint kill_point = KillPoint::kDeliver) {
  return EnterInline(call, kill_point);
}

// Enter for //posix, which found the calling task's stack just before the call (to tell
// simulated descriptors from real ones): the same scheduling point, then that stack
// without a second lookup. It stays the task's across the point unless the task was
// killed there (its host crashed): then the kill unwinds it at the point, or, deferred
// by an enclosing noexcept call, the full lookup answers as in Enter.
// In //posix's hot section (posix/internal/state.h, DSIM_POSIX_HOT): these run only
// for it.
#define DSIM_POSIX_HOT __attribute__((section(".text.hot.dsim_posix")))

DSIM_POSIX_HOT HostStack* EnterFound(HostStack* found, const char* call) {
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler->UncaughtExceptions() == 0) scheduler->SchedulingPoint();
  if (ABSL_PREDICT_TRUE(!scheduler->current_task()->kill_requested)) return found;
  return StackOfCaller(scheduler, call);
}

// "Recvfrom(3) = 32", "Connect(4) = -1 ECONNREFUSED": made only when a trace is read.
void FormatCall(const AnnotationPayload& payload, std::string* out) {
  const int fd = static_cast<int>(payload.words[0]);
  const int64_t result = static_cast<int64_t>(payload.words[1]);
  if (result < 0) {
    absl::StrAppend(out, payload.text, "(", fd, ") = -1 ",
                    strerrorname_np(static_cast<int>(-result)));
  } else {
    absl::StrAppend(out, payload.text, "(", fd, ") = ", result);
  }
}

constexpr AnnotationKind kSocketCall("socket.call", FormatCall);

// As an Annotation for every listener (the trace records the same as below).
ABSL_ATTRIBUTE_NOINLINE void AnnotateCallForListeners(Scheduler& scheduler, HostStack* stack,
                                                      const char* call, int fd,
                                                      int64_t result) {
  Annotation annotation;  // Not aggregate-initialized: the payload words stay unset.
  annotation.category = "socket.call";
  annotation.group = stack->host().group();
  annotation.format = FormatCall;
  annotation.payload.text = call;
  annotation.payload.word_count = 2;
  annotation.payload.words[0] = static_cast<uint64_t>(static_cast<int64_t>(fd));
  annotation.payload.words[1] = static_cast<uint64_t>(result);
  scheduler.Annotate(annotation);
}

// AnnotateCall when its fast path cannot serve: the trace's block is full or the call
// is new to it, or listeners hear socket calls.
ABSL_ATTRIBUTE_NOINLINE void AnnotateCallSlow(Scheduler& scheduler, HostStack* stack,
                                              const char* call, int fd, int64_t result) {
  if (TraceSink* sink = scheduler.SoleTraceSink(kSocketCall)) {
    uint64_t* words = sink->BeginAnnotation(kSocketCall, stack->host().group(),
                                            CurrentTaskIdOf(scheduler), scheduler.NowNanos(),
                                            /*flow_id=*/0, /*flow_phase=*/0, call);
    words[0] = static_cast<uint64_t>(static_cast<int64_t>(fd));
    words[1] = static_cast<uint64_t>(result);
    sink->EndAnnotation(words, 2);
    return;
  }
  AnnotateCallForListeners(scheduler, stack, call, fd, result);
}

// Out of line: the annotation must not weigh on every call's frame. Straight into the
// trace's block when the trace alone hears it (a Simulation's case): a leaf, no frame.
ABSL_ATTRIBUTE_NOINLINE void AnnotateCall(Scheduler& scheduler, HostStack* stack,
                                          const char* call, int fd, int64_t result) {
  if (TraceSink* sink = scheduler.SoleTraceSink(kSocketCall)) {
    // Socket calls come from tasks (Enter checked), so a task runs.
    DSIM_DCHECK(scheduler.current_task() != nullptr);
    if (ABSL_PREDICT_TRUE(sink->TryAnnotateTwoWords(
            kSocketCall, stack->host().group(), scheduler.current_task()->id,
            scheduler.NowNanos(), call, static_cast<uint64_t>(static_cast<int64_t>(fd)),
            static_cast<uint64_t>(result)))) {
      return;
    }
  }
  AnnotateCallSlow(scheduler, stack, call, fd, result);
}

template <typename T>
T Finish(HostStack* stack, const char* call, int fd, T result) {
  Scheduler& scheduler = stack->scheduler();
  if (ABSL_PREDICT_FALSE(scheduler.has_listeners())) {
    AnnotateCall(scheduler, stack, call, fd, static_cast<int64_t>(result));
  }
  if (result < 0) {
    errno = static_cast<int>(-result);
    return -1;
  }
  return result;
}

ssize_t FaultOutside(HostStack* stack, const char* what) {
  return stack->Fail(EFAULT, absl::StrCat(what, ": the buffer is outside the address space"));
}

// Validates a msghdr as Linux's copy_msghdr_from_user does, and collects its iovecs.
int ReadMessage(HostStack* stack, const msghdr* message, const char* what,
                absl::InlinedVector<iovec, 4>* iov) {
  if (message == nullptr) return stack->Fail(EFAULT, absl::StrCat(what, ": the msghdr is null"));
  if (static_cast<int>(message->msg_namelen) < 0) {
    return stack->Fail(EINVAL, absl::StrCat(what, ": negative msg_namelen"));
  }
  if (message->msg_iovlen > kMaxIovecs) {
    return stack->Fail(EMSGSIZE, absl::StrCat(what, ": more than 1024 iovecs"));
  }
  if (message->msg_iovlen > 0 && message->msg_iov == nullptr) {
    return stack->Fail(EFAULT, absl::StrCat(what, ": msg_iov is null"));
  }
  size_t total = 0;
  for (size_t i = 0; i < message->msg_iovlen; ++i) {
    const iovec& v = message->msg_iov[i];
    if (static_cast<ssize_t>(v.iov_len) < 0) {
      return stack->Fail(EINVAL, absl::StrCat(what, ": an iovec length is negative"));
    }
    if (!AccessOk(v.iov_base, v.iov_len)) return FaultOutside(stack, what);
    total += v.iov_len;
    if (static_cast<ssize_t>(total) < 0) {
      return stack->Fail(EINVAL, absl::StrCat(what, ": the total length overflows"));
    }
    iov->push_back(v);
  }
  return 0;
}

}  // namespace

namespace internal {
HostStack* EnterHost(const char* call) { return Enter(call); }
}  // namespace internal

int Socket(int domain, int type, int protocol) {
  HostStack* stack = Enter("Socket");
  if (stack == nullptr) return -1;
  return Finish(stack, "Socket", -1, stack->Socket(domain, type, protocol));
}

int Bind(int fd, const sockaddr* address, socklen_t length) {
  HostStack* stack = Enter("Bind");
  if (stack == nullptr) return -1;
  return Finish(stack, "Bind", fd, stack->Bind(fd, address, length));
}

int Listen(int fd, int backlog) {
  HostStack* stack = Enter("Listen");
  if (stack == nullptr) return -1;
  return Finish(stack, "Listen", fd, stack->Listen(fd, backlog));
}

int Accept(int fd, sockaddr* address, socklen_t* length, SourceLocation where) {
  return Accept4(fd, address, length, 0, where);
}

int Accept4(int fd, sockaddr* address, socklen_t* length, int flags, SourceLocation where) {
  HostStack* stack = Enter("Accept");
  if (stack == nullptr) return -1;
  return Finish(stack, "Accept", fd, stack->Accept(fd, address, length, flags, where));
}

int Connect(int fd, const sockaddr* address, socklen_t length, SourceLocation where) {
  HostStack* stack = Enter("Connect");
  if (stack == nullptr) return -1;
  return Finish(stack, "Connect", fd, stack->Connect(fd, address, length, where));
}

int Shutdown(int fd, int how) {
  HostStack* stack = Enter("Shutdown", KillPoint::kDefer);
  if (stack == nullptr) return -1;
  return Finish(stack, "Shutdown", fd, stack->Shutdown(fd, how));
}

int Close(int fd) {
  HostStack* stack = Enter("Close", KillPoint::kDefer);
  if (stack == nullptr) return -1;
  return Finish(stack, "Close", fd, stack->Close(fd));
}

int Getsockname(int fd, sockaddr* address, socklen_t* length) {
  HostStack* stack = Enter("Getsockname");
  if (stack == nullptr) return -1;
  return Finish(stack, "Getsockname", fd, stack->GetName(fd, address, length, false));
}

int Getpeername(int fd, sockaddr* address, socklen_t* length) {
  HostStack* stack = Enter("Getpeername");
  if (stack == nullptr) return -1;
  return Finish(stack, "Getpeername", fd, stack->GetName(fd, address, length, true));
}

namespace {

ABSL_ATTRIBUTE_ALWAYS_INLINE inline ssize_t ReadOn(HostStack* stack, int fd, void* buffer,
                                                  size_t length, SourceLocation where) {
  // read(2): the descriptor is checked first, then the buffer; a zero-length read of a
  // socket returns 0 at once.
  if (internal::SocketState* s = stack->SocketAt(fd); ABSL_PREDICT_TRUE(s != nullptr)) {
    // A socket (its slot holds no other file): the checks below, looking it up once.
    if (!AccessOk(buffer, length)) return Finish(stack, "Read", fd, FaultOutside(stack, "read"));
    if (length == 0) return Finish<ssize_t>(stack, "Read", fd, 0);
    return Finish(stack, "Read", fd, stack->RecvRead(s, fd, buffer, length, where));
  }
  if (!stack->CheckOpen(fd)) return Finish<ssize_t>(stack, "Read", fd, -EBADF);
  if (!AccessOk(buffer, length)) return Finish(stack, "Read", fd, FaultOutside(stack, "read"));
  // Open and not a socket: another kind of file. Those answer a zero-length read
  // themselves: Linux checks the access mode first (EBADF on a write-only descriptor)
  // and a directory says EISDIR.
  DSIM_DCHECK(stack->LookupFile(fd) != nullptr);
  const iovec v{buffer, length};
  return Finish(stack, "Read", fd, stack->FileRead(fd, absl::MakeConstSpan(&v, 1), where));
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline ssize_t WriteOn(HostStack* stack, int fd,
                                                   const void* buffer, size_t length,
                                                   SourceLocation where) {
  if (internal::SocketState* s = stack->SocketAt(fd); ABSL_PREDICT_TRUE(s != nullptr)) {
    // A socket (its slot holds no other file): the checks below, looking it up once.
    if (!AccessOk(buffer, length)) {
      return Finish(stack, "Write", fd, FaultOutside(stack, "write"));
    }
    return Finish(stack, "Write", fd, stack->SendOneOn(s, fd, buffer, length, 0, "write", where));
  }
  if (!stack->CheckOpen(fd)) return Finish<ssize_t>(stack, "Write", fd, -EBADF);
  if (!AccessOk(buffer, length)) return Finish(stack, "Write", fd, FaultOutside(stack, "write"));
  // Open and not a socket: another kind of file.
  DSIM_DCHECK(stack->LookupFile(fd) != nullptr);
  const iovec v{const_cast<void*>(buffer), length};
  return Finish(stack, "Write", fd, stack->FileWrite(fd, absl::MakeConstSpan(&v, 1), where));
}

}  // namespace

ssize_t Read(int fd, void* buffer, size_t length, SourceLocation where) {
  HostStack* stack = EnterInline("Read", KillPoint::kDeliver);
  if (stack == nullptr) return -1;
  return ReadOn(stack, fd, buffer, length, where);
}

ssize_t Write(int fd, const void* buffer, size_t length, SourceLocation where) {
  HostStack* stack = EnterInline("Write", KillPoint::kDeliver);
  if (stack == nullptr) return -1;
  return WriteOn(stack, fd, buffer, length, where);
}

namespace internal {

DSIM_POSIX_HOT HostStack* EnterFoundHost(HostStack* found, const char* call) {
  return EnterFound(found, call);
}

DSIM_POSIX_HOT ssize_t ReadFound(HostStack* found, int fd, void* buffer, size_t length,
                                 SourceLocation where) {
  HostStack* stack = EnterFound(found, "Read");
  if (stack == nullptr) return -1;
  return ReadOn(stack, fd, buffer, length, where);
}

DSIM_POSIX_HOT ssize_t WriteFound(HostStack* found, int fd, const void* buffer,
                                  size_t length, SourceLocation where) {
  HostStack* stack = EnterFound(found, "Write");
  if (stack == nullptr) return -1;
  return WriteOn(stack, fd, buffer, length, where);
}

}  // namespace internal

ssize_t Recv(int fd, void* buffer, size_t length, int flags, SourceLocation where) {
  return Recvfrom(fd, buffer, length, flags, nullptr, nullptr, where);
}

ssize_t Send(int fd, const void* buffer, size_t length, int flags, SourceLocation where) {
  return Sendto(fd, buffer, length, flags, nullptr, 0, where);
}

namespace {

// The bodies of recvfrom and sendto, in line in Recvfrom/Sendto and in the wrappers'
// whole-buffer loops (internal::RecvAll/SendAll), so a loop costs no extra call.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline ssize_t RecvfromCall(int fd, void* buffer, size_t length,
                                                         int flags, sockaddr* address,
                                                         socklen_t* address_length,
                                                         SourceLocation where) {
  HostStack* stack = EnterInline("Recvfrom", KillPoint::kDeliver);
  if (stack == nullptr) return -1;
  // recvfrom(2) checks the buffer before the descriptor.
  if (!AccessOk(buffer, length)) {
    return Finish(stack, "Recvfrom", fd, FaultOutside(stack, "recvfrom"));
  }
  if (address == nullptr) {
    // No address to fill (recv, and the wrappers' RecvAll): the stream path knows it.
    return Finish(stack, "Recvfrom", fd,
                  stack->RecvOne(fd, buffer, length, flags, "recvfrom", where));
  }
  const iovec v{buffer, length};
  internal::RecvArgs args;
  args.iov = absl::MakeConstSpan(&v, 1);
  args.flags = flags;
  args.name = address;
  args.name_length = address_length;
  args.what = "recvfrom";
  return Finish(stack, "Recvfrom", fd, stack->Recv(fd, args, where));
}

ABSL_ATTRIBUTE_ALWAYS_INLINE inline ssize_t SendtoCall(int fd, const void* buffer, size_t length,
                                                       int flags, const sockaddr* address,
                                                       socklen_t address_length,
                                                       SourceLocation where) {
  HostStack* stack = EnterInline("Sendto", KillPoint::kDeliver);
  if (stack == nullptr) return -1;
  if (!AccessOk(buffer, length)) {
    return Finish(stack, "Sendto", fd, FaultOutside(stack, "sendto"));
  }
  if (address == nullptr) {
    // No address (send, and the wrappers' SendAll): SendOne builds SendArgs only when
    // its short path does not serve.
    return Finish(stack, "Sendto", fd, stack->SendOne(fd, buffer, length, flags, "sendto", where));
  }
  const iovec v{const_cast<void*>(buffer), length};
  internal::SendArgs args;
  args.iov = absl::MakeConstSpan(&v, 1);
  args.flags = flags;
  args.name = address;
  args.name_length = address_length;
  args.what = "sendto";
  if (address != nullptr && address_length > 0 &&
      address_length <= sizeof(sockaddr_storage) && !AccessOk(address, address_length)) {
    return Finish(stack, "Sendto", fd, FaultOutside(stack, "sendto"));
  }
  return Finish(stack, "Sendto", fd, stack->Send(fd, args, where));
}

}  // namespace

ssize_t Recvfrom(int fd, void* buffer, size_t length, int flags, sockaddr* address,
                 socklen_t* address_length, SourceLocation where) {
  return RecvfromCall(fd, buffer, length, flags, address, address_length, where);
}

ssize_t Sendto(int fd, const void* buffer, size_t length, int flags, const sockaddr* address,
               socklen_t address_length, SourceLocation where) {
  return SendtoCall(fd, buffer, length, flags, address, address_length, where);
}

namespace internal {

ssize_t RecvInto(int fd, std::string* data, size_t max_bytes, int flags, IpAddress* from_address,
                 uint16_t* from_port, SourceLocation where) {
  // The call entry inline, as in Recvfrom: UdpSocket::ReceiveFrom pays what recvfrom does.
  HostStack* stack = EnterInline("Recvfrom", KillPoint::kDeliver);
  if (stack == nullptr) return -1;
  internal::RecvArgs args;
  args.flags = flags;
  args.what = "recvfrom";
  args.into = data;
  args.into_max = max_bytes;
  args.from_address = from_address;
  args.from_port = from_port;
  return Finish(stack, "Recvfrom", fd, stack->Recv(fd, args, where));
}

ssize_t RecvAll(int fd, char* buffer, size_t length, SourceLocation where) {
  size_t done = 0;
  while (done < length) {
    const ssize_t n =
        RecvfromCall(fd, buffer + done, length - done, MSG_WAITALL, nullptr, nullptr, where);
    if (n < 0) return n;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

ssize_t SendAll(int fd, const char* data, size_t length, SourceLocation where) {
  size_t done = 0;
  while (done < length) {
    const ssize_t n =
        SendtoCall(fd, data + done, length - done, MSG_NOSIGNAL, nullptr, 0, where);
    if (n < 0) return n;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

}  // namespace internal

namespace {

// recvmsg after the scheduling point: shared by Recvmsg and Recvmmsg.
ssize_t RecvmsgOn(HostStack* stack, int fd, msghdr* message, int flags, SourceLocation where) {
  if (!stack->CheckOpen(fd)) return -EBADF;
  absl::InlinedVector<iovec, 4> iov;
  if (int r = ReadMessage(stack, message, "recvmsg", &iov); r < 0) return r;
  internal::RecvArgs args;
  args.iov = absl::MakeConstSpan(iov);
  args.flags = flags;
  args.msg = message;
  args.what = "recvmsg";
  return stack->Recv(fd, args, where);
}

// sendmsg after the scheduling point: shared by Sendmsg and Sendmmsg.
ssize_t SendmsgOn(HostStack* stack, int fd, const msghdr* message, int flags,
                  SourceLocation where) {
  if (!stack->CheckOpen(fd)) return -EBADF;
  absl::InlinedVector<iovec, 4> iov;
  if (int r = ReadMessage(stack, message, "sendmsg", &iov); r < 0) return r;
  internal::SendArgs args;
  args.iov = absl::MakeConstSpan(iov);
  args.flags = flags;
  if (message->msg_name != nullptr && message->msg_namelen > 0) {
    args.name = static_cast<const sockaddr*>(message->msg_name);
    args.name_length = std::min<socklen_t>(message->msg_namelen, sizeof(sockaddr_storage));
  }
  args.what = "sendmsg";
  return stack->Send(fd, args, where);
}

size_t MessageBytes(const msghdr& message) {
  size_t total = 0;
  for (size_t i = 0; i < message.msg_iovlen; ++i) total += message.msg_iov[i].iov_len;
  return total;
}

// Validates readv/writev's iovec array as import_iovec does: more than 1024 entries or a
// negative length is EINVAL, an array or buffer outside the address space EFAULT; the
// total is clamped to MAX_RW_COUNT.
int ReadIovecs(HostStack* stack, const iovec* iov, int count, const char* what,
               absl::InlinedVector<iovec, 4>* out, size_t* total) {
  constexpr size_t kMaxRwCount = 0x7ffff000;  // INT_MAX & PAGE_MASK.
  *total = 0;
  if (count < 0 || static_cast<size_t>(count) > kMaxIovecs) {
    return stack->Fail(EINVAL, absl::StrCat(what, ": ", count, " iovecs (at most 1024)"));
  }
  if (count > 0 && !AccessOk(iov, sizeof(iovec) * count)) return FaultOutside(stack, what);
  if (count > 0 && iov == nullptr) return stack->Fail(EFAULT, absl::StrCat(what, ": iov is null"));
  for (int i = 0; i < count; ++i) {
    iovec v = iov[i];
    if (static_cast<ssize_t>(v.iov_len) < 0) {
      return stack->Fail(EINVAL, absl::StrCat(what, ": an iovec length is negative"));
    }
    if (!AccessOk(v.iov_base, v.iov_len)) return FaultOutside(stack, what);
    v.iov_len = std::min(v.iov_len, kMaxRwCount - *total);
    *total += v.iov_len;
    out->push_back(v);
  }
  return 0;
}

}  // namespace

ssize_t Recvmsg(int fd, msghdr* message, int flags, SourceLocation where) {
  HostStack* stack = Enter("Recvmsg");
  if (stack == nullptr) return -1;
  return Finish(stack, "Recvmsg", fd, RecvmsgOn(stack, fd, message, flags, where));
}

ssize_t Sendmsg(int fd, const msghdr* message, int flags, SourceLocation where) {
  HostStack* stack = Enter("Sendmsg");
  if (stack == nullptr) return -1;
  return Finish(stack, "Sendmsg", fd, SendmsgOn(stack, fd, message, flags, where));
}

ssize_t Readv(int fd, const iovec* iov, int count, SourceLocation where) {
  HostStack* stack = Enter("Readv");
  if (stack == nullptr) return -1;
  if (!stack->CheckOpen(fd)) return Finish<ssize_t>(stack, "Readv", fd, -EBADF);
  absl::InlinedVector<iovec, 4> pieces;
  size_t total;
  if (int r = ReadIovecs(stack, iov, count, "readv", &pieces, &total); r < 0) {
    return Finish<ssize_t>(stack, "Readv", fd, r);
  }
  if (stack->LookupFile(fd) != nullptr) {
    return Finish(stack, "Readv", fd, stack->FileRead(fd, absl::MakeConstSpan(pieces), where));
  }
  if (total == 0) return Finish<ssize_t>(stack, "Readv", fd, 0);
  internal::RecvArgs args;
  args.iov = absl::MakeConstSpan(pieces);
  args.what = "readv";
  return Finish(stack, "Readv", fd, stack->Recv(fd, args, where));
}

ssize_t Writev(int fd, const iovec* iov, int count, SourceLocation where) {
  HostStack* stack = Enter("Writev");
  if (stack == nullptr) return -1;
  if (!stack->CheckOpen(fd)) return Finish<ssize_t>(stack, "Writev", fd, -EBADF);
  absl::InlinedVector<iovec, 4> pieces;
  size_t total;
  if (int r = ReadIovecs(stack, iov, count, "writev", &pieces, &total); r < 0) {
    return Finish<ssize_t>(stack, "Writev", fd, r);
  }
  if (stack->LookupFile(fd) != nullptr) {
    return Finish(stack, "Writev", fd, stack->FileWrite(fd, absl::MakeConstSpan(pieces), where));
  }
  if (total == 0) return Finish<ssize_t>(stack, "Writev", fd, 0);
  internal::SendArgs args;
  args.iov = absl::MakeConstSpan(pieces);
  args.what = "writev";
  return Finish(stack, "Writev", fd, stack->Send(fd, args, where));
}

int Sendmmsg(int fd, mmsghdr* messages, unsigned count, int flags, SourceLocation where) {
  HostStack* stack = Enter("Sendmmsg");
  if (stack == nullptr) return -1;
  if (flags & kMsgCmsgCompat) {
    return Finish(stack, "Sendmmsg", fd, stack->Fail(EINVAL, "sendmmsg: MSG_CMSG_COMPAT"));
  }
  if (!stack->CheckOpen(fd)) return Finish(stack, "Sendmmsg", fd, -EBADF);
  count = std::min<unsigned>(count, kMaxIovecs);  // Linux clamps vlen to UIO_MAXIOV.
  int done = 0;
  ssize_t error = 0;
  while (static_cast<unsigned>(done) < count) {
    msghdr* message = messages != nullptr ? &messages[done].msg_hdr : nullptr;
    const ssize_t n = SendmsgOn(stack, fd, message, flags, where);
    if (n < 0) {
      error = n;
      break;
    }
    messages[done].msg_len = static_cast<unsigned>(n);
    ++done;
    if (static_cast<size_t>(n) < MessageBytes(*message)) break;  // A partial send ends it.
  }
  // An error is returned only if no message went out (__sys_sendmmsg).
  return Finish(stack, "Sendmmsg", fd, done > 0 ? done : static_cast<int>(error));
}

int Recvmmsg(int fd, mmsghdr* messages, unsigned count, int flags, timespec* timeout,
             SourceLocation where) {
  HostStack* stack = Enter("Recvmmsg");
  if (stack == nullptr) return -1;
  auto finish = [&](int result) { return Finish(stack, "Recvmmsg", fd, result); };
  if (flags & kMsgCmsgCompat) return finish(stack->Fail(EINVAL, "recvmmsg: MSG_CMSG_COMPAT"));
  Scheduler& scheduler = stack->host().network().scheduler();
  absl::Time end = absl::InfiniteFuture();
  if (timeout != nullptr) {
    if (!AccessOk(timeout, sizeof(*timeout))) return finish(FaultOutside(stack, "recvmmsg"));
    if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1'000'000'000) {
      return finish(stack->Fail(EINVAL, "recvmmsg: the timeout is not a valid timespec"));
    }
    end = scheduler.TrueDeadlineAfterLocal(absl::DurationFromTimespec(*timeout));
  }
  if (!stack->CheckOpen(fd)) return finish(-EBADF);
  if (!(flags & MSG_ERRQUEUE)) {
    if (int pending = stack->TakePendingError(fd); pending != 0) {
      return finish(stack->Fail(pending, "recvmmsg: a pending socket error"));
    }
  }
  int done = 0;
  int error = 0;
  timespec left{};
  while (static_cast<unsigned>(done) < count) {
    msghdr* message = messages != nullptr ? &messages[done].msg_hdr : nullptr;
    const ssize_t n = RecvmsgOn(stack, fd, message, flags & ~MSG_WAITFORONE, where);
    if (n < 0) {
      error = static_cast<int>(n);
      break;
    }
    messages[done].msg_len = static_cast<unsigned>(n);
    ++done;
    if (flags & MSG_WAITFORONE) flags |= MSG_DONTWAIT;  // Only the first one may wait.
    if (timeout != nullptr) {
      // What is left, measured on the host's clock as the caller measures it.
      const absl::Duration remaining =
          scheduler.LocalDurationOfTrue(scheduler.CurrentGroup(), end - scheduler.Now());
      left = absl::ToTimespec(std::max(remaining, absl::ZeroDuration()));
      if (remaining <= absl::ZeroDuration()) break;
    }
  }
  if (error == 0 || done == 0) {
    if (done > 0 && timeout != nullptr) *timeout = left;
    return finish(done > 0 ? done : error);
  }
  // Some arrived, then an error: it is kept for the next call or SO_ERROR (do_recvmmsg),
  // except EAGAIN, which only means the queue ran dry.
  if (error != -EAGAIN) stack->SetPendingError(fd, -error);
  if (timeout != nullptr) *timeout = left;
  return finish(done);
}

int Getsockopt(int fd, int level, int name, void* value, socklen_t* length) {
  HostStack* stack = Enter("Getsockopt");
  if (stack == nullptr) return -1;
  return Finish(stack, "Getsockopt", fd, stack->Getsockopt(fd, level, name, value, length));
}

int Setsockopt(int fd, int level, int name, const void* value, socklen_t length) {
  HostStack* stack = Enter("Setsockopt");
  if (stack == nullptr) return -1;
  return Finish(stack, "Setsockopt", fd, stack->Setsockopt(fd, level, name, value, length));
}

int SetNonblock(int fd, bool nonblocking) {
  HostStack* stack = Enter("SetNonblock");
  if (stack == nullptr) return -1;
  return Finish(stack, "SetNonblock", fd, stack->SetNonblock(fd, nonblocking));
}

int GetFlags(int fd) {
  HostStack* stack = Enter("GetFlags");
  if (stack == nullptr) return -1;
  return Finish(stack, "GetFlags", fd, stack->GetFlags(fd));
}

// A deadline the caller read off its host's wall clock, as true virtual time (the
// stack's timers run on it). See scheduler/clock.h.
static absl::Time HostDeadline(absl::Time deadline) {
  Scheduler* scheduler = Scheduler::Current();
  return scheduler == nullptr ? deadline : scheduler->TrueTimeOfLocal(deadline);
}

int SetReadDeadline(int fd, absl::Time deadline) {
  HostStack* stack = Enter("SetReadDeadline");
  if (stack == nullptr) return -1;
  return Finish(stack, "SetReadDeadline", fd, stack->SetDeadline(fd, HostDeadline(deadline), true, false));
}

int SetWriteDeadline(int fd, absl::Time deadline) {
  HostStack* stack = Enter("SetWriteDeadline");
  if (stack == nullptr) return -1;
  return Finish(stack, "SetWriteDeadline", fd, stack->SetDeadline(fd, HostDeadline(deadline), false, true));
}

int SetDeadline(int fd, absl::Time deadline) {
  HostStack* stack = Enter("SetDeadline");
  if (stack == nullptr) return -1;
  return Finish(stack, "SetDeadline", fd, stack->SetDeadline(fd, HostDeadline(deadline), true, true));
}

int Poll(pollfd* fds, nfds_t count, int timeout_ms, SourceLocation where) {
  HostStack* stack = Enter("Poll");
  if (stack == nullptr) return -1;
  return Finish(stack, "Poll", -1, stack->Poll(fds, count, timeout_ms, where));
}

int Fcntl(int fd, int cmd, long arg) {
  HostStack* stack = Enter("Fcntl");
  if (stack == nullptr) return -1;
  return Finish(stack, "Fcntl", fd, stack->Fcntl(fd, cmd, arg));
}

int Ioctl(int fd, unsigned long request, void* arg) {
  HostStack* stack = Enter("Ioctl");
  if (stack == nullptr) return -1;
  return Finish(stack, "Ioctl", fd, stack->Ioctl(fd, request, arg));
}

int Dup(int fd) {
  HostStack* stack = Enter("Dup");
  if (stack == nullptr) return -1;
  return Finish(stack, "Dup", fd, stack->Dup(fd, -1, -1, "dup"));
}

int Dup2(int fd, int new_fd) {
  HostStack* stack = Enter("Dup2");
  if (stack == nullptr) return -1;
  // dup2's descriptors are unsigned in the kernel: a negative target is out of range.
  const int target = new_fd < 0 ? INT32_MAX : new_fd;
  return Finish(stack, "Dup2", fd, stack->Dup(fd, target, -1, "dup2"));
}

int Dup3(int fd, int new_fd, int flags) {
  HostStack* stack = Enter("Dup3");
  if (stack == nullptr) return -1;
  if (flags < 0) return Finish(stack, "Dup3", fd, stack->Fail(EINVAL, "dup3: unknown flags"));
  const int target = new_fd < 0 ? INT32_MAX : new_fd;
  return Finish(stack, "Dup3", fd, stack->Dup(fd, target, flags, "dup3"));
}

const std::string& LastSocketErrorMessage() {
  static const std::string* const kNone = new std::string();
  Scheduler* scheduler = Scheduler::Current();
  if (scheduler == nullptr) return NoSimulationMessage();
  auto* network = static_cast<Network*>(scheduler->extension(Scheduler::kNetworkExtension));
  if (network == nullptr) return NoNetworkMessage();
  NetworkHost* host =
      scheduler->InTask() ? network->HostOfGroup(scheduler->CurrentGroup()) : nullptr;
  if (host == nullptr) return network->outside_host_message();
  // A host whose socket layer does not exist yet has seen no call, so no failure.
  if (host->stack() == nullptr) return *kNone;
  return static_cast<HostStack*>(host->stack())->LastMessage(scheduler->CurrentTaskId());
}

socklen_t MakeSockaddr(absl::string_view ip, uint16_t port, sockaddr_storage* out) {
  std::memset(out, 0, sizeof(*out));
  const std::string text(ip);
  auto* in = reinterpret_cast<sockaddr_in*>(out);
  if (inet_pton(AF_INET, text.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    return sizeof(sockaddr_in);
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(out);
  if (inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    return sizeof(sockaddr_in6);
  }
  return 0;
}

std::string SockaddrToString(const sockaddr* address, socklen_t length) {
  if (address == nullptr) return "?";
  if (address->sa_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(address);
    return Endpoint{IpAddress::FromInAddr(in->sin_addr), ntohs(in->sin_port)}.ToString();
  }
  if (address->sa_family == AF_INET6 && length >= 24) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(address);
    return Endpoint{IpAddress::FromIn6Addr(in6->sin6_addr), ntohs(in6->sin6_port)}.ToString();
  }
  return "?";
}

}  // namespace dsim
