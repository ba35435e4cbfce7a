// TcpListener and TcpStream: TCP for users who would rather not hold raw descriptors.
// Both close their descriptor on destruction and report failures as absl::Status
// (ErrnoFromStatus gives back the errno; see socket_status.h).
//
// Example (inside tasks on simulated hosts):
//
//   // server
//   absl::StatusOr<dsim::TcpListener> listener = dsim::TcpListener::Listen("0.0.0.0", 80);
//   absl::StatusOr<dsim::TcpStream> connection = listener->Accept();
//   std::string request(5, '\0');
//   absl::Status read = connection->ReadFull(request.data(), request.size());
//   connection->WriteAll("world");
//
//   // client
//   absl::StatusOr<dsim::TcpStream> stream = dsim::TcpStream::Connect("10.0.0.1", 80);
//   stream->WriteAll("hello");
//
// Blocking calls block the calling task in virtual time; deadlines (SetReadDeadline)
// make them fail with kDeadlineExceeded (errno EAGAIN) exactly at the deadline.
#ifndef DSIM_SOCKETS_TCP_H_
#define DSIM_SOCKETS_TCP_H_

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "scheduler/source_location.h"

namespace dsim {

// Owns a socket descriptor; closes it on destruction. Move-only.
class SocketHandle {
 public:
  SocketHandle() = default;
  explicit SocketHandle(int fd) : fd_(fd) {}
  // Parses `ip`:`port` into `address` (and its length) and opens a socket of that
  // address's family and `type` (SOCK_STREAM, SOCK_DGRAM). InvalidArgument for a bad IP;
  // the socket() error otherwise.
  static absl::StatusOr<SocketHandle> OpenFor(absl::string_view ip, uint16_t port, int type,
                                              sockaddr_storage* address, socklen_t* length);
  SocketHandle(SocketHandle&& other) noexcept : fd_(other.release()) {}
  SocketHandle& operator=(SocketHandle&& other) noexcept;
  ~SocketHandle() { Reset(); }

  int fd() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  // Gives up ownership without closing.
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }
  // Closes now (no-op when empty).
  absl::Status Close();

  // "10.0.0.1:80" of the local and remote ends.
  absl::StatusOr<std::string> LocalAddress() const;
  absl::StatusOr<std::string> PeerAddress() const;
  // The local port (0 if unbound or on error).
  uint16_t LocalPort() const;

  absl::Status SetReadDeadline(absl::Time deadline);
  absl::Status SetWriteDeadline(absl::Time deadline);
  absl::Status SetNonblock(bool nonblocking);

 private:
  void Reset();
  int fd_ = -1;
};

class TcpStream {
 public:
  // Connects to ip:port, blocking for the handshake.
  static absl::StatusOr<TcpStream> Connect(absl::string_view ip, uint16_t port,
                                           SourceLocation where = SourceLocation::Current());
  // The same, giving up at `deadline` (virtual time) or after `timeout`: then
  // kDeadlineExceeded (errno EAGAIN), exactly at that time, and the half-open socket is
  // closed. Refusals and other errors come back as from Connect, whenever they happen
  // first. The stream returned has no deadline set.
  //
  //   auto stream = dsim::TcpStream::Connect("10.0.0.1", 80, absl::Seconds(2));
  //   if (absl::IsDeadlineExceeded(stream.status())) { /* nobody answered in 2 s */ }
  static absl::StatusOr<TcpStream> Connect(absl::string_view ip, uint16_t port,
                                           absl::Time deadline,
                                           SourceLocation where = SourceLocation::Current());
  static absl::StatusOr<TcpStream> Connect(absl::string_view ip, uint16_t port,
                                           absl::Duration timeout,
                                           SourceLocation where = SourceLocation::Current());
  explicit TcpStream(SocketHandle handle) : handle_(std::move(handle)) {}

  // Reads what is available (blocking until something is); 0 means the peer closed.
  absl::StatusOr<size_t> Read(void* buffer, size_t length,
                              SourceLocation where = SourceLocation::Current());
  // Reads exactly `length` bytes; kOutOfRange if the stream ends first.
  absl::Status ReadFull(void* buffer, size_t length,
                        SourceLocation where = SourceLocation::Current());
  // Writes what fits (blocking until something does); returns the count.
  absl::StatusOr<size_t> Write(absl::string_view data,
                               SourceLocation where = SourceLocation::Current());
  // Writes all of `data`, blocking while the buffers are full.
  absl::Status WriteAll(absl::string_view data, SourceLocation where = SourceLocation::Current());
  // Sends FIN: the peer reads 0 once it has read everything before it.
  absl::Status ShutdownWrite();
  absl::Status SetNoDelay(bool on);
  // Close with SO_LINGER {1, 0}: the peer gets RST instead of FIN.
  absl::Status Abort();

  SocketHandle& handle() { return handle_; }
  int fd() const { return handle_.fd(); }

 private:
  SocketHandle handle_;
};

class TcpListener {
 public:
  // Binds ip:port (port 0: ephemeral) with SO_REUSEADDR and listens.
  static absl::StatusOr<TcpListener> Listen(absl::string_view ip, uint16_t port,
                                            int backlog = 128);
  explicit TcpListener(SocketHandle handle) : handle_(std::move(handle)) {}

  // Blocks until a connection arrives.
  absl::StatusOr<TcpStream> Accept(SourceLocation where = SourceLocation::Current());
  uint16_t port() const { return handle_.LocalPort(); }

  SocketHandle& handle() { return handle_; }
  int fd() const { return handle_.fd(); }

 private:
  SocketHandle handle_;
};

}  // namespace dsim

#endif  // DSIM_SOCKETS_TCP_H_
