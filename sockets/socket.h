// The BSD socket API over dsim's simulated network, with Linux's results and errno.
//
// Example (an echo server and a client on two simulated hosts):
//
//   dsim::Scheduler scheduler(dsim::SchedulerOptions{.seed = 7});
//   dsim::Network network(&scheduler);
//   dsim::NetworkHost& server = network.AddHost("server", {"10.0.0.1"});
//   dsim::NetworkHost& client = network.AddHost("client", {"10.0.0.2"});
//   server.Spawn("echo", [] {
//     int listener = dsim::Socket(AF_INET, SOCK_STREAM, 0);
//     sockaddr_storage address;
//     socklen_t length = dsim::MakeSockaddr("0.0.0.0", 7, &address);
//     dsim::Bind(listener, reinterpret_cast<sockaddr*>(&address), length);
//     dsim::Listen(listener, 16);
//     int connection = dsim::Accept(listener, nullptr, nullptr);
//     char buffer[512];
//     ssize_t n;
//     while ((n = dsim::Read(connection, buffer, sizeof(buffer))) > 0) {
//       dsim::Write(connection, buffer, n);
//     }
//     dsim::Close(connection);
//   }, {.daemon = true});
//   client.Spawn("client", [] {
//     int fd = dsim::Socket(AF_INET, SOCK_STREAM, 0);
//     sockaddr_storage address;
//     socklen_t length = dsim::MakeSockaddr("10.0.0.1", 7, &address);
//     if (dsim::Connect(fd, reinterpret_cast<sockaddr*>(&address), length) < 0) {
//       // errno is ECONNREFUSED, ...; dsim::LastSocketErrorMessage() says why in words.
//     }
//     dsim::Write(fd, "hi", 2);
//     ...
//   });
//   scheduler.Run();
//
// Contract. Every call has the POSIX signature and the POSIX result convention: it
// returns -1 and sets errno to exactly what Linux sets in the same situation (see the
// divergence table in README for the documented exceptions). Types and constants are the
// real ones from <sys/socket.h>, <netinet/in.h> and <poll.h>. Descriptors belong to the
// calling task's host (see net/network.h) and start at 3, like a process's.
//
// Scheduling. Every call is a scheduling point (the strategy may run another task at
// its start). A call that blocks waits on the socket in virtual time: a deadlock report
// names it (`task "client" blocked in Read at kv.cc:88`). Nothing here reads real time.
//
// Timeouts. SO_RCVTIMEO and SO_SNDTIMEO work as in Linux. SetReadDeadline and
// SetWriteDeadline add Go's absolute deadlines: a call blocked when the deadline comes
// returns -1 with EAGAIN exactly at that virtual time (or the partial count it already
// moved); a call made after the deadline fails at once, even if data is ready. Setting a
// new deadline affects calls already blocked. absl::InfiniteFuture() clears it.
//
// Bad input. Bad descriptors, wrong families or lengths, null buffers, and calls made
// outside a simulated task fail with an errno and a message; none crashes, none touches
// another socket. Outside a task (main thread, timer callback, no Network attached, task
// not on a host) every call fails with EPERM.
//
// Not simulated: SIGPIPE (EPIPE is returned, no signal is raised), urgent data, control
// messages, socket types other than TCP and UDP.
#ifndef DSIM_SOCKETS_SOCKET_H_
#define DSIM_SOCKETS_SOCKET_H_

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "scheduler/source_location.h"

namespace dsim {

// ---- Creating, naming, connecting ---------------------------------------------------

// AF_INET or AF_INET6; SOCK_STREAM or SOCK_DGRAM, optionally | SOCK_NONBLOCK |
// SOCK_CLOEXEC; protocol 0 or the matching IPPROTO_TCP / IPPROTO_UDP.
int Socket(int domain, int type, int protocol);
// Port 0 picks an ephemeral port (32768-60999 by default); EADDRINUSE when none is free.
int Bind(int fd, const sockaddr* address, socklen_t length);
// Binds an unbound socket to an ephemeral port. The backlog is clamped to somaxconn; a
// queue of backlog + 1 connections fills it, after which SYNs are dropped (and retried).
int Listen(int fd, int backlog);
// Blocks until a connection is queued (unless nonblocking or past the read deadline).
int Accept(int fd, sockaddr* address, socklen_t* length,
           SourceLocation where = SourceLocation::Current());
// accept4: flags may hold SOCK_NONBLOCK and SOCK_CLOEXEC.
int Accept4(int fd, sockaddr* address, socklen_t* length, int flags,
            SourceLocation where = SourceLocation::Current());
// TCP: blocks for the handshake; nonblocking gives EINPROGRESS, then the outcome through
// Poll (POLLOUT) and SO_ERROR. UDP: sets the default destination and filters senders.
// AF_UNSPEC disconnects.
int Connect(int fd, const sockaddr* address, socklen_t length,
            SourceLocation where = SourceLocation::Current());
int Shutdown(int fd, int how);
// Never blocks. With unread data, or SO_LINGER {1, 0}, the peer gets RST; otherwise FIN
// follows whatever is still buffered.
int Close(int fd);
int Getsockname(int fd, sockaddr* address, socklen_t* length);
int Getpeername(int fd, sockaddr* address, socklen_t* length);

// ---- Data -------------------------------------------------------------------------------
// Flags: MSG_PEEK, MSG_DONTWAIT, MSG_WAITALL (streams), MSG_TRUNC, MSG_NOSIGNAL (no
// effect: no signals are ever raised), MSG_MORE (ignored).

ssize_t Read(int fd, void* buffer, size_t length,
             SourceLocation where = SourceLocation::Current());
ssize_t Write(int fd, const void* buffer, size_t length,
              SourceLocation where = SourceLocation::Current());
ssize_t Recv(int fd, void* buffer, size_t length, int flags,
             SourceLocation where = SourceLocation::Current());
ssize_t Send(int fd, const void* buffer, size_t length, int flags,
             SourceLocation where = SourceLocation::Current());
ssize_t Recvfrom(int fd, void* buffer, size_t length, int flags, sockaddr* address,
                 socklen_t* address_length, SourceLocation where = SourceLocation::Current());
ssize_t Sendto(int fd, const void* buffer, size_t length, int flags, const sockaddr* address,
               socklen_t address_length, SourceLocation where = SourceLocation::Current());
ssize_t Recvmsg(int fd, msghdr* message, int flags,
                SourceLocation where = SourceLocation::Current());
ssize_t Sendmsg(int fd, const msghdr* message, int flags,
                SourceLocation where = SourceLocation::Current());

// Vectored I/O, as readv(2)/writev(2): at most 1024 iovecs (EINVAL beyond), a total of
// zero bytes returns 0 at once.
ssize_t Readv(int fd, const iovec* iov, int count,
              SourceLocation where = SourceLocation::Current());
ssize_t Writev(int fd, const iovec* iov, int count,
               SourceLocation where = SourceLocation::Current());
// Several messages in one call, as sendmmsg(2)/recvmmsg(2): each entry's msg_len gets its
// count; the result is the number of entries done, or -1 if the first one failed. A
// later failure ends the batch; recvmmsg keeps that error (other than EAGAIN) for the
// next call or SO_ERROR, as Linux does. MSG_WAITFORONE makes the entries after the first
// nonblocking. recvmmsg's `timeout` is checked only after each received entry (as in
// Linux, it does not bound a wait for the first one) and is updated to the time left.
int Sendmmsg(int fd, mmsghdr* messages, unsigned count, int flags,
             SourceLocation where = SourceLocation::Current());
int Recvmmsg(int fd, mmsghdr* messages, unsigned count, int flags, timespec* timeout,
             SourceLocation where = SourceLocation::Current());

// ---- Options, modes, deadlines -------------------------------------------------------
// SOL_SOCKET: SO_TYPE, SO_DOMAIN, SO_PROTOCOL, SO_ERROR, SO_ACCEPTCONN, SO_RCVBUF,
// SO_SNDBUF, SO_REUSEADDR, SO_REUSEPORT, SO_KEEPALIVE, SO_LINGER, SO_RCVTIMEO,
// SO_SNDTIMEO. IPPROTO_TCP: TCP_NODELAY, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT (seconds,
// seconds, count; EINVAL outside Linux's ranges). IPPROTO_IPV6: IPV6_V6ONLY. Others:
// ENOPROTOOPT. SO_KEEPALIVE sends probes as Linux does: after TCP_KEEPIDLE without a
// received segment, TCP_KEEPCNT unanswered probes TCP_KEEPINTVL apart fail the
// connection with ETIMEDOUT (reported once) and send the peer an RST.

int Getsockopt(int fd, int level, int name, void* value, socklen_t* length);
int Setsockopt(int fd, int level, int name, const void* value, socklen_t length);
int SetNonblock(int fd, bool nonblocking);
// fcntl(F_GETFL): O_RDWR, plus O_NONBLOCK when set.
int GetFlags(int fd);

// ---- Descriptors ------------------------------------------------------------------------

// fcntl(2): F_GETFL/F_SETFL (O_NONBLOCK, O_APPEND, O_ASYNC, O_NOATIME are kept; O_DIRECT
// gives EINVAL), F_GETFD/F_SETFD (FD_CLOEXEC, per descriptor), F_DUPFD and
// F_DUPFD_CLOEXEC. Other commands give EINVAL. Status flags belong to the open socket,
// so every dup of it sees them.
int Fcntl(int fd, int cmd, long arg = 0);
// ioctl(2): FIONREAD/SIOCINQ (bytes readable; a datagram socket's next datagram size;
// EINVAL on a listener), SIOCOUTQ (unacknowledged bytes), FIONBIO, FIOASYNC, FIOCLEX,
// FIONCLEX. Other requests give ENOTTY. `arg` points to an int.
int Ioctl(int fd, unsigned long request, void* arg);
// dup(2), dup2(2), dup3(2) (flags: O_CLOEXEC). The copy refers to the same socket,
// which closes when its last descriptor closes. dup2 onto an open descriptor closes it
// first; onto a descriptor an accept() in progress has reserved, EBUSY.
int Dup(int fd);
int Dup2(int fd, int new_fd);
int Dup3(int fd, int new_fd, int flags);
int SetReadDeadline(int fd, absl::Time deadline);
int SetWriteDeadline(int fd, absl::Time deadline);
int SetDeadline(int fd, absl::Time deadline);  // Both.

// ---- Readiness ------------------------------------------------------------------------

// POLLIN, POLLOUT, POLLRDHUP (and POLLRDNORM, POLLWRNORM, POLLWRBAND) as requested;
// POLLERR, POLLHUP and POLLNVAL always. timeout_ms < 0 waits forever, 0 never.
int Poll(pollfd* fds, nfds_t count, int timeout_ms,
         SourceLocation where = SourceLocation::Current());

// ---- Errors and helpers ---------------------------------------------------------------

// Why the calling task's last failed socket call failed, in words ("connect to
// 10.0.0.1:80 failed: nothing listens there (RST)"). errno stays the primary channel.
// Messages belong to a simulation: in a task, the task's last failure on its host (empty
// before any); in a simulation outside any host (a timer callback, a task not on a
// host), the last such failure in that simulation; on a thread running no simulation,
// the thread's last call made there. Never text from another simulation.
const std::string& LastSocketErrorMessage();

// Fills `out` with a sockaddr_in ("10.0.0.1") or sockaddr_in6 ("fd00::1") and returns
// its length, or 0 if `ip` is not an address.
socklen_t MakeSockaddr(absl::string_view ip, uint16_t port, sockaddr_storage* out);
// "10.0.0.1:80" or "[fd00::1]:80"; "?" for other families.
std::string SockaddrToString(const sockaddr* address, socklen_t length);

}  // namespace dsim

#endif  // DSIM_SOCKETS_SOCKET_H_
