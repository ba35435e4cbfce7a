#include "sockets/tcp.h"

#include <netinet/tcp.h>

#include <cerrno>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/strings/str_cat.h"
#include "scheduler/scheduler.h"
#include "sockets/internal/recv_into.h"
#include "sockets/socket.h"
#include "sockets/socket_status.h"

namespace dsim {
namespace {

absl::StatusOr<std::string> Name(int fd, bool peer) {
  sockaddr_storage address;
  socklen_t length = sizeof(address);
  const int r = peer ? Getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length)
                     : Getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  if (r < 0) return LastSocketError(peer ? "getpeername" : "getsockname");
  return SockaddrToString(reinterpret_cast<sockaddr*>(&address), length);
}

}  // namespace

SocketHandle& SocketHandle::operator=(SocketHandle&& other) noexcept {
  if (this != &other) {
    Reset();
    fd_ = other.release();
  }
  return *this;
}

void SocketHandle::Reset() {
  if (fd_ >= 0) dsim::Close(fd_);
  fd_ = -1;
}

absl::Status SocketHandle::Close() {
  if (fd_ < 0) return absl::OkStatus();
  const int fd = release();
  if (dsim::Close(fd) < 0) return LastSocketError("close");
  return absl::OkStatus();
}

absl::StatusOr<std::string> SocketHandle::LocalAddress() const { return Name(fd_, false); }
absl::StatusOr<std::string> SocketHandle::PeerAddress() const { return Name(fd_, true); }

uint16_t SocketHandle::LocalPort() const {
  sockaddr_storage address;
  socklen_t length = sizeof(address);
  if (Getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) < 0) return 0;
  return ntohs(address.ss_family == AF_INET
                   ? reinterpret_cast<sockaddr_in*>(&address)->sin_port
                   : reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
}

absl::Status SocketHandle::SetReadDeadline(absl::Time deadline) {
  if (dsim::SetReadDeadline(fd_, deadline) < 0) return LastSocketError("SetReadDeadline");
  return absl::OkStatus();
}

absl::Status SocketHandle::SetWriteDeadline(absl::Time deadline) {
  if (dsim::SetWriteDeadline(fd_, deadline) < 0) return LastSocketError("SetWriteDeadline");
  return absl::OkStatus();
}

absl::StatusOr<SocketHandle> SocketHandle::OpenFor(absl::string_view ip, uint16_t port,
                                                  int type, sockaddr_storage* address,
                                                  socklen_t* length) {
  absl::StatusOr<socklen_t> parsed = ParseSockaddr(ip, port, address);
  if (!parsed.ok()) return parsed.status();
  *length = *parsed;
  SocketHandle handle(Socket(address->ss_family, type, 0));
  if (!handle.valid()) return LastSocketError("socket");
  return handle;
}

absl::Status SocketHandle::SetNonblock(bool nonblocking) {
  if (dsim::SetNonblock(fd_, nonblocking) < 0) return LastSocketError("SetNonblock");
  return absl::OkStatus();
}

absl::StatusOr<TcpStream> TcpStream::Connect(absl::string_view ip, uint16_t port,
                                             SourceLocation where) {
  sockaddr_storage address;
  socklen_t length;
  absl::StatusOr<SocketHandle> opened =
      SocketHandle::OpenFor(ip, port, SOCK_STREAM, &address, &length);
  if (!opened.ok()) return opened.status();
  SocketHandle handle = *std::move(opened);
  if (dsim::Connect(handle.fd(), reinterpret_cast<sockaddr*>(&address), length, where) < 0) {
    return LastSocketError("connect");
  }
  return TcpStream(std::move(handle));
}

absl::StatusOr<TcpStream> TcpStream::Connect(absl::string_view ip, uint16_t port,
                                             absl::Time deadline, SourceLocation where) {
  sockaddr_storage address;
  socklen_t length;
  absl::StatusOr<SocketHandle> opened =
      SocketHandle::OpenFor(ip, port, SOCK_STREAM, &address, &length);
  if (!opened.ok()) return opened.status();
  SocketHandle handle = *std::move(opened);
  // A blocking connect honours the write deadline (EAGAIN exactly at it); the handle
  // closes the half-open socket on the way out.
  if (dsim::SetWriteDeadline(handle.fd(), deadline) < 0) return LastSocketError("connect");
  if (dsim::Connect(handle.fd(), reinterpret_cast<sockaddr*>(&address), length, where) < 0) {
    return LastSocketError("connect");
  }
  if (dsim::SetWriteDeadline(handle.fd(), absl::InfiniteFuture()) < 0) {
    return LastSocketError("connect");
  }
  return TcpStream(std::move(handle));
}

absl::StatusOr<TcpStream> TcpStream::Connect(absl::string_view ip, uint16_t port,
                                             absl::Duration timeout, SourceLocation where) {
  // The deadline is taken before the call's scheduling point, as a caller's would be.
  // Outside a simulation there is no clock; the connect then fails with EPERM.
  Scheduler* scheduler = Scheduler::Current();
  const absl::Time deadline =
      scheduler != nullptr ? scheduler->LocalNow() + timeout : absl::InfiniteFuture();
  return Connect(ip, port, deadline, where);
}

absl::StatusOr<size_t> TcpStream::Read(void* buffer, size_t length, SourceLocation where) {
  const ssize_t n = dsim::Read(fd(), buffer, length, where);
  if (n < 0) return LastSocketError("read");
  return static_cast<size_t>(n);
}

namespace {

// ReadFull's failures, out of line: the common call keeps a small frame.
ABSL_ATTRIBUTE_NOINLINE absl::Status ReadFullFailed(ssize_t n, size_t length) {
  if (n < 0) return LastSocketError("recv");
  return absl::OutOfRangeError(absl::StrCat("the stream ended after ", n, " of ", length,
                                            " bytes"));
}

}  // namespace

absl::Status TcpStream::ReadFull(void* buffer, size_t length, SourceLocation where) {
  const ssize_t n = internal::RecvAll(fd(), static_cast<char*>(buffer), length, where);
  if (ABSL_PREDICT_TRUE(static_cast<size_t>(n) == length)) return absl::OkStatus();
  return ReadFullFailed(n, length);
}

absl::StatusOr<size_t> TcpStream::Write(absl::string_view data, SourceLocation where) {
  const ssize_t n = dsim::Write(fd(), data.data(), data.size(), where);
  if (n < 0) return LastSocketError("write");
  return static_cast<size_t>(n);
}

absl::Status TcpStream::WriteAll(absl::string_view data, SourceLocation where) {
  if (ABSL_PREDICT_TRUE(internal::SendAll(fd(), data.data(), data.size(), where) >= 0)) {
    return absl::OkStatus();
  }
  return LastSocketError("send");
}

absl::Status TcpStream::ShutdownWrite() {
  if (dsim::Shutdown(fd(), SHUT_WR) < 0) return LastSocketError("shutdown");
  return absl::OkStatus();
}

absl::Status TcpStream::SetNoDelay(bool on) {
  const int value = on;
  if (Setsockopt(fd(), IPPROTO_TCP, TCP_NODELAY, &value, sizeof(value)) < 0) {
    return LastSocketError("setsockopt(TCP_NODELAY)");
  }
  return absl::OkStatus();
}

absl::Status TcpStream::Abort() {
  const linger reset{1, 0};
  if (Setsockopt(fd(), SOL_SOCKET, SO_LINGER, &reset, sizeof(reset)) < 0) {
    return LastSocketError("setsockopt(SO_LINGER)");
  }
  return handle_.Close();
}

absl::StatusOr<TcpListener> TcpListener::Listen(absl::string_view ip, uint16_t port,
                                                int backlog) {
  sockaddr_storage address;
  socklen_t length;
  absl::StatusOr<SocketHandle> opened =
      SocketHandle::OpenFor(ip, port, SOCK_STREAM, &address, &length);
  if (!opened.ok()) return opened.status();
  SocketHandle handle = *std::move(opened);
  const int on = 1;
  if (Setsockopt(handle.fd(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0) {
    return LastSocketError("setsockopt(SO_REUSEADDR)");
  }
  if (Bind(handle.fd(), reinterpret_cast<sockaddr*>(&address), length) < 0) {
    return LastSocketError("bind");
  }
  if (dsim::Listen(handle.fd(), backlog) < 0) return LastSocketError("listen");
  return TcpListener(std::move(handle));
}

absl::StatusOr<TcpStream> TcpListener::Accept(SourceLocation where) {
  const int fd = dsim::Accept(handle_.fd(), nullptr, nullptr, where);
  if (fd < 0) return LastSocketError("accept");
  return TcpStream(SocketHandle(fd));
}

}  // namespace dsim
