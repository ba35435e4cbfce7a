// Descriptors that are not network sockets: pipes, eventfds and socketpair()'s AF_UNIX
// pairs, in the calling task's host descriptor table, next to its sockets. dsim::Read, Write, Close, Poll, SetNonblock and
// GetFlags (sockets/socket.h) work on them; socket calls on them fail with ENOTSOCK.
//
// Example (a wakeup pipe between two tasks of one host):
//
//   host.Spawn("loop", [] {
//     int fds[2];
//     dsim::Pipe2(fds, O_NONBLOCK);
//     dsim::Spawn("waker", [w = fds[1]] { dsim::Write(w, "x", 1); });
//     pollfd p{fds[0], POLLIN, 0};
//     dsim::Poll(&p, 1, -1);                 // wakes when the waker writes
//   });
//
// Contract. POSIX signatures, -1 plus Linux's errno on failure. Blocking reads and
// writes block the task in virtual time and are scheduling points. Pipes hold 65,536
// bytes (Linux's default); writes of at most PIPE_BUF bytes are atomic. An eventfd's
// counter follows eventfd(2), EFD_SEMAPHORE included. O_CLOEXEC / EFD_CLOEXEC /
// SOCK_CLOEXEC set FD_CLOEXEC, which fcntl(F_GETFD) reports and nothing else reads (no
// exec in a simulation). Dup, Dup2, Dup3 and Fcntl(F_DUPFD) share the description (and
// its O_NONBLOCK) between the descriptors, as Linux does.
#ifndef DSIM_SOCKETS_FILES_H_
#define DSIM_SOCKETS_FILES_H_

namespace dsim {

// pipe(2) / pipe2(2): flags may hold O_NONBLOCK and O_CLOEXEC; others give EINVAL.
int Pipe(int fds[2]);
int Pipe2(int fds[2], int flags);
// eventfd(2): flags may hold EFD_NONBLOCK, EFD_SEMAPHORE and EFD_CLOEXEC.
int Eventfd(unsigned int initial_value, int flags);
// socketpair(2): AF_UNIX (or AF_LOCAL), SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET, maybe
// | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol 0. Both ends live in the caller's host. The
// socket calls (Send, Recv, Shutdown, Getsockopt, ...) work on them with Linux's
// results, buffer accounting included (sockets/internal/unix_socket.h); Bind and
// Connect with an AF_UNIX address fail with EOPNOTSUPP (no named AF_UNIX sockets).
int Socketpair(int domain, int type, int protocol, int fds[2]);

}  // namespace dsim

#endif  // DSIM_SOCKETS_FILES_H_
